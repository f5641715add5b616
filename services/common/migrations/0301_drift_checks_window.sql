-- The dashboard's model-watch section reads every version's checks of a time window, so it
-- needs `at` first; 0003's (model_version, at) index serves the newest check of each version.
CREATE INDEX drift_checks_at_idx ON drift_checks (at);
