-- What inference derives from a prediction (a shadow's answer, the embedding kept for drift)
-- is written after it and may be re-sent like it: an erased prediction's must stay erased too.
CREATE TRIGGER prediction_embeddings_skip_erased BEFORE INSERT ON prediction_embeddings
    FOR EACH ROW EXECUTE FUNCTION skip_erased_prediction('prediction_id');

CREATE TRIGGER shadow_predictions_skip_erased BEFORE INSERT ON shadow_predictions
    FOR EACH ROW EXECUTE FUNCTION skip_erased_prediction('prediction_id');
