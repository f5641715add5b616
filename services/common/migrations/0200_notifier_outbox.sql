-- The notifier's durable outbox: a message is committed here before the sender is answered,
-- so it survives restarts of the notifier and outages of Discord. Senders claim rows with a
-- lease (taken under FOR UPDATE SKIP LOCKED) so several replicas never post the same row at
-- once; only the oldest pending row of a group may be claimed, which keeps each group in order.
-- Webhook URLs are never stored: `route` names one, resolved from the settings at send time.
CREATE TABLE notifier_outbox (
    id                  bigserial PRIMARY KEY,
    group_key           text NOT NULL,
    route               text NOT NULL,
    source              text NOT NULL,
    payload             jsonb NOT NULL,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'delivered', 'dropped')),
    attempts            integer NOT NULL DEFAULT 0,
    failures            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner         text,
    lease_until         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    delivered_at        timestamptz,
    discord_message_id  text,
    last_error          text
);

-- The claim query walks the pending rows group by group, oldest first.
CREATE INDEX notifier_outbox_pending_idx ON notifier_outbox (group_key, id) WHERE state = 'pending';
-- Pruning of old delivered rows.
CREATE INDEX notifier_outbox_delivered_idx ON notifier_outbox (delivered_at) WHERE state <> 'pending';

-- One row per alert occurrence (group key, fingerprint, status, start) or notification key
-- already queued: a webhook retried by Alertmanager, or received by two replicas, is queued once.
CREATE TABLE notifier_dedup (
    dedup_key       text PRIMARY KEY,
    last_queued_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notifier_dedup_last_queued_idx ON notifier_dedup (last_queued_at);
