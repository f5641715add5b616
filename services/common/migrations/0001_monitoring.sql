-- The predictions table. It keeps the original columns (created_at, prediction_result,
-- proba_cat, proba_dog, inference_time_ms, user_feedback, rgpd_consent) with their meaning so
-- the original SQL still runs; user_feedback is 1 (satisfied), 0 (unsatisfied) or NULL, so
-- AVG(user_feedback) is the satisfaction rate.
CREATE TABLE monitoring (
    id                 uuid PRIMARY KEY,
    created_at         timestamptz NOT NULL DEFAULT now(),
    prediction_result  text NOT NULL CHECK (prediction_result IN ('cat', 'dog')),
    proba_cat          double precision NOT NULL CHECK (proba_cat BETWEEN 0 AND 1),
    proba_dog          double precision NOT NULL CHECK (proba_dog BETWEEN 0 AND 1),
    confidence         double precision NOT NULL,
    pet_score          double precision,
    inference_time_ms  double precision NOT NULL,
    model_version      text NOT NULL,
    user_feedback      smallint CHECK (user_feedback IN (0, 1)),
    rgpd_consent       boolean NOT NULL DEFAULT false
);

-- Time-range scans by the dashboard, Grafana and retention.
CREATE INDEX monitoring_created_at_idx ON monitoring (created_at);

-- Photos kept only with the separate consent to improve the model; erased with their prediction.
CREATE TABLE prediction_photos (
    prediction_id  uuid PRIMARY KEY REFERENCES monitoring (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    content_type   text NOT NULL,
    image          bytea NOT NULL
);
