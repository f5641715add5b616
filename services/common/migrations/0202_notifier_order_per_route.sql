-- Each route (webhook) keeps its own order: the messages of a group are delivered in order per
-- route, so a channel that is refused or rate-limited never holds back another channel's.
CREATE INDEX notifier_outbox_pending_route_idx
    ON notifier_outbox (group_key, route, id) WHERE state = 'pending';
DROP INDEX notifier_outbox_pending_idx;
