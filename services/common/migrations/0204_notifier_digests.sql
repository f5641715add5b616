-- The days whose model-health digest is queued: the first replica past the digest hour marks
-- the day in the transaction that queues it, so the others do not queue it again.
CREATE TABLE notifier_digests (
    day        date PRIMARY KEY,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
