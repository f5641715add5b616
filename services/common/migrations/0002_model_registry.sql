-- The model registry: every version the inference replicas may serve, and what each one does.
-- Model files live in MODEL_STORE_DIR (a shared volume); the row holds the path inside it, the
-- card (evaluation figures and the exact training data included) and the file's sha256.
CREATE TABLE model_versions (
    version        text PRIMARY KEY,
    name           text NOT NULL,
    sha256         text NOT NULL,
    file_name      text NOT NULL,
    card           jsonb NOT NULL,
    role           text NOT NULL DEFAULT 'registered'
                   CHECK (role IN ('registered', 'active', 'shadow', 'canary', 'retired')),
    canary_share   double precision CHECK (canary_share > 0 AND canary_share < 1),
    registered_at  timestamptz NOT NULL DEFAULT now(),
    role_since     timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'canary') = (canary_share IS NOT NULL))
);

-- At most one version in each serving role: replicas must all agree on who answers.
CREATE UNIQUE INDEX model_versions_one_active ON model_versions (role) WHERE role = 'active';
CREATE UNIQUE INDEX model_versions_one_shadow ON model_versions (role) WHERE role = 'shadow';
CREATE UNIQUE INDEX model_versions_one_canary ON model_versions (role) WHERE role = 'canary';

-- Every role change, who made it and why: the audit trail, and what `rollback` undoes.
CREATE TABLE model_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    version     text NOT NULL REFERENCES model_versions (version),
    from_role   text,
    to_role     text NOT NULL,
    actor       text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    figures     jsonb
);

-- A shadow's answers, stored apart and never shown; erased with their prediction.
CREATE TABLE shadow_predictions (
    prediction_id      uuid NOT NULL REFERENCES monitoring (id) ON DELETE CASCADE,
    model_version      text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    prediction_result  text NOT NULL CHECK (prediction_result IN ('cat', 'dog')),
    proba_cat          double precision NOT NULL CHECK (proba_cat BETWEEN 0 AND 1),
    confidence         double precision NOT NULL,
    inference_time_ms  double precision NOT NULL,
    PRIMARY KEY (prediction_id, model_version)
);
-- A shadow's figures are read per version since it took its role (canary analysis, dashboard).
CREATE INDEX shadow_predictions_model_version_created_at_idx
    ON shadow_predictions (model_version, created_at);

-- Per-version comparisons (dashboard, canary analysis) scan one version over a time range.
CREATE INDEX monitoring_model_version_created_at_idx ON monitoring (model_version, created_at);
