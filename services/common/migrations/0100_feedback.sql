-- User feedback on predictions, kept only with the user's explicit consent (RGPD). One row per
-- prediction: a later opinion replaces the earlier one, so the row always holds the latest.
-- Erasing or purging a prediction removes its feedback through the foreign key.
CREATE TABLE feedback (
    prediction_id  uuid PRIMARY KEY REFERENCES monitoring (id) ON DELETE CASCADE,
    satisfaction   text NOT NULL CHECK (satisfaction IN ('satisfied', 'unsatisfied')),
    true_label     text CHECK (true_label IN ('cat', 'dog')),
    consent_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    revision       integer NOT NULL DEFAULT 1 CHECK (revision >= 1)
);

-- The live-accuracy gauge reads the feedback updated in a recent time window.
CREATE INDEX feedback_updated_at_idx ON feedback (updated_at);
