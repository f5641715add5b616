-- One living Discord message per alert group: an episode is a group's life on one route, from
-- its first alert until every alert of it is resolved. The message is posted once and edited
-- as alerts change; a group that fires again after resolving opens a new episode (a new
-- message). `alerts` holds each alert as last received, in first-seen order; `parts` the
-- fingerprints of each Discord message the episode needs (an alert keeps its part).
CREATE TABLE notifier_episodes (
    id            bigserial PRIMARY KEY,
    group_key     text NOT NULL,
    route         text NOT NULL,
    receiver      text NOT NULL DEFAULT '',
    group_labels  jsonb NOT NULL DEFAULT '{}',
    alerts        jsonb NOT NULL DEFAULT '[]',
    parts         jsonb NOT NULL DEFAULT '[]',
    opened_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz
);

-- At most one open episode per group and route: concurrent webhooks find the same one.
CREATE UNIQUE INDEX notifier_episodes_open_idx
    ON notifier_episodes (group_key, route) WHERE resolved_at IS NULL;
-- Pruning of old resolved episodes.
CREATE INDEX notifier_episodes_resolved_at_idx
    ON notifier_episodes (resolved_at) WHERE resolved_at IS NOT NULL;

-- The Discord message each part of an episode became: later rows of the episode edit it.
CREATE TABLE notifier_episode_messages (
    episode_id  bigint NOT NULL REFERENCES notifier_episodes (id) ON DELETE CASCADE,
    part        integer NOT NULL,
    message_id  text NOT NULL,
    PRIMARY KEY (episode_id, part)
);

-- An outbox row of an episode is a rendering of one part: posted when the part has no message
-- yet, an edit of that message otherwise (decided when sending, in the group's order).
ALTER TABLE notifier_outbox ADD COLUMN episode_id bigint, ADD COLUMN part integer;
