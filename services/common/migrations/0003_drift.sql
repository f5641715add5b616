-- Embedding drift and label-free accuracy: the vectors behind each check, and each check's result.

-- A sample of the backbone's pooled features of answered photos: vectors only, never the
-- photo (float16, little-endian, the model card's `embedding` width). Erased with their
-- prediction, so retention and RGPD erasure reach them; each version keeps a bounded number.
CREATE TABLE prediction_embeddings (
    prediction_id  uuid PRIMARY KEY REFERENCES monitoring (id) ON DELETE CASCADE,
    model_version  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    embedding      bytea NOT NULL
);
-- The drift check reads the newest window of one version, and pruning its oldest rows.
CREATE INDEX prediction_embeddings_model_version_created_at_idx
    ON prediction_embeddings (model_version, created_at);

-- One row per check of one version's window, written by whichever replica ran it: the history
-- the dashboard and Grafana draw, and what every replica's gauges show.
CREATE TABLE drift_checks (
    id                      bigserial PRIMARY KEY,
    at                      timestamptz NOT NULL DEFAULT now(),
    model_version           text NOT NULL,
    window_size             integer NOT NULL,
    reference_size          integer,
    drift_score             double precision,
    drift_threshold         double precision,
    drift_p_value           double precision,
    estimated_accuracy      double precision,
    estimated_stderr        double precision,
    predictions             integer NOT NULL,
    labelled                integer NOT NULL,
    feedback_accuracy       double precision,
    labelled_estimate       double precision,
    labelled_stderr         double precision,
    calibration_error       double precision,
    reliability             jsonb
);
CREATE INDEX drift_checks_model_version_at_idx ON drift_checks (model_version, at);
