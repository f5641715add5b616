-- Rows that were never sent as rendered, on purpose: a rendering of a living message replaced
-- by a later one of the same part before it went out, or the messages of a group that resolved
-- before any of it reached Discord, folded into one summary line that names each alert.
ALTER TABLE notifier_outbox DROP CONSTRAINT notifier_outbox_state_check;
ALTER TABLE notifier_outbox ADD CONSTRAINT notifier_outbox_state_check
    CHECK (state IN ('pending', 'delivered', 'dropped', 'collapsed'));
-- Finding the later renderings of a part, and the pending rows of an episode.
CREATE INDEX notifier_outbox_episode_idx
    ON notifier_outbox (episode_id, part, id) WHERE state = 'pending';
-- A part whose message was deleted in Discord keeps its row without an id: it is posted anew,
-- and its group still counts as having reached Discord (it is not folded into a summary).
ALTER TABLE notifier_episode_messages ALTER COLUMN message_id DROP NOT NULL;
