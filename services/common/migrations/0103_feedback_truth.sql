-- What a user's feedback says a photo really shows, defined once for every query that judges
-- an answer (canary analysis, model watch, digest, dashboard and its roll-ups): the true label
-- when the user gave one, else the answer when they said it was right, else the other class.
-- A plain SQL expression, so the planner inlines it.
CREATE FUNCTION feedback_truth(true_label text, satisfaction text, answered text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(true_label,
                    CASE WHEN satisfaction = 'satisfied' THEN answered
                         WHEN answered = 'cat' THEN 'dog' ELSE 'cat' END)
$$;
