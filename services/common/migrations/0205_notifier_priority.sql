-- Delivery by severity first: each row carries its lane's rank (0 critical, 1 warning, 2 info
-- and every other severity), and the claim takes due group heads by rank before age. A group
-- still goes out in order on each route: only its oldest pending row can be claimed, at the
-- most urgent rank pending in the group, so its earlier rows are never left behind.
-- `caller` is who queued the row (route and client address; NULL for the notifier's own, the
-- digest): each caller may have only so many rows pending in each lane.
ALTER TABLE notifier_outbox
    ADD COLUMN severity_rank smallint NOT NULL DEFAULT 2 CHECK (severity_rank BETWEEN 0 AND 2),
    ADD COLUMN caller text;
-- Rows queued before this migration: their route tells critical and warning apart.
UPDATE notifier_outbox
SET severity_rank = CASE route WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END
WHERE state = 'pending';
-- The claim walks each group's pending rows in order with their rank, from the index alone.
CREATE INDEX notifier_outbox_pending_rank_idx
    ON notifier_outbox (group_key, route, id) INCLUDE (severity_rank) WHERE state = 'pending';
DROP INDEX notifier_outbox_pending_route_idx;
-- Counting what one caller has pending in a lane.
CREATE INDEX notifier_outbox_pending_caller_idx
    ON notifier_outbox (caller, severity_rank) WHERE state = 'pending' AND caller IS NOT NULL;
