-- An erased prediction must not come back. Inference writes rows asynchronously and re-sends a
-- batch whose commit it could not confirm, so a row erased in between would be written again.
-- Erasure leaves the SHA-256 of the id (never the id: nothing here leads back to a person),
-- and triggers drop any later insert of that prediction or its photo. Tombstones are purged by
-- the retention job once no writer can still hold the row.
CREATE TABLE erased_predictions (
    id_sha256  bytea PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX erased_predictions_erased_at_idx ON erased_predictions (erased_at);

CREATE FUNCTION skip_erased_prediction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM erased_predictions
        WHERE id_sha256 = sha256(uuid_send((to_jsonb(NEW) ->> TG_ARGV[0])::uuid))
    ) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER monitoring_skip_erased BEFORE INSERT ON monitoring
    FOR EACH ROW EXECUTE FUNCTION skip_erased_prediction('id');

CREATE TRIGGER prediction_photos_skip_erased BEFORE INSERT ON prediction_photos
    FOR EACH ROW EXECUTE FUNCTION skip_erased_prediction('prediction_id');
