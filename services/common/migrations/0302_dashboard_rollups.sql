-- Hourly and daily roll-ups of `monitoring` and `shadow_predictions` for the dashboard's long
-- ranges (docs/dashboard.md, "Roll-ups").
--
-- A roll-up row is a pure function of the raw rows of its hour: `monitoring_rollup_rows` and
-- `monitoring_rollup_bins` compute it, and every change re-computes the hours it touched
-- instead of adding deltas, so an erased or purged prediction leaves no trace in any aggregate
-- (not even in a maximum). Hours are rolled once they are closed, up to the watermark
-- `monitoring_rollup_state.rolled_until`, by `monitoring_rollup_advance` (the dashboard's
-- roll-up loop). A later insert, update or delete of a prediction, its feedback or its shadow
-- answers in a rolled hour re-computes that hour, and its day, in the same transaction.
--
-- Locks (transaction-scoped advisory locks): rolling closed hours takes the roll-up lock
-- exclusively; a write that may touch a rolled hour takes it shared before it reads the
-- watermark, so either it sees the hours rolled or the roll-up waits for it and sees its rows.
-- Re-computing rolled hours takes the refresh lock, one for all hours: two re-computations
-- never interleave, a transaction that writes to several past hours in several statements
-- cannot deadlock with another, and a statement touching thousands of hours takes one lock,
-- not thousands. Writes to past hours are rare (late predictions, feedback, erasure,
-- retention), so they can take turns. In READ COMMITTED each statement after a lock sees every
-- transaction that held it before. The functions that add days run in UTC, whatever the
-- writer's session TimeZone (a day is 24 hours there, even on a daylight-saving change).

-- The constants below are also Python constants, held equal by
-- services/dashboard/tests/test_rollups.py: LOW_CONFIDENCE (0.8), the latency bars
-- (queries.LATENCY_EDGES_MS), the confidence bins (25 over [0.5, 1]) and the fine latency
-- bins (rollups.LATENCY_BIN_*: edges 0.1 ms × 1.05^k, for interpolated percentiles).

CREATE TABLE monitoring_hourly (
    period_start       timestamptz NOT NULL,
    model_version      text NOT NULL,
    prediction_result  text NOT NULL,
    shadow             boolean NOT NULL,      -- a shadow's answers, scored but never shown
    predictions        integer NOT NULL,
    low_confidence     integer NOT NULL,      -- served answers under LOW_CONFIDENCE
    consented          integer NOT NULL,
    confidence_sum     double precision NOT NULL,
    latency_max_ms     double precision NOT NULL,
    feedback           integer NOT NULL,      -- served answers with user_feedback
    satisfied          integer NOT NULL,
    labelled           integer NOT NULL,      -- joined to a feedback row
    correct            integer NOT NULL,      -- labelled and equal to feedback_truth
    agreed             integer NOT NULL,      -- shadows: equal to the served answer
    PRIMARY KEY (period_start, model_version, prediction_result, shadow)
);
CREATE TABLE monitoring_daily (LIKE monitoring_hourly INCLUDING ALL);

-- Histograms: only the bins that hold something. `latency` is the fine log-scale histogram
-- percentiles are interpolated from, `latency_bar` the latency graph's bars, `confidence`
-- the confidence graph's bins.
CREATE TABLE monitoring_hourly_bins (
    period_start   timestamptz NOT NULL,
    histogram      text NOT NULL CHECK (histogram IN ('latency', 'latency_bar', 'confidence')),
    model_version  text NOT NULL,
    shadow         boolean NOT NULL,
    bin            integer NOT NULL,
    n              integer NOT NULL,
    -- Histogram first: each query reads one histogram over a range of periods.
    PRIMARY KEY (histogram, period_start, model_version, shadow, bin)
);
CREATE TABLE monitoring_daily_bins (LIKE monitoring_hourly_bins INCLUDING ALL);

CREATE TABLE monitoring_rollup_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_until  timestamptz  -- every hour before it is rolled; NULL: nothing yet
);
INSERT INTO monitoring_rollup_state DEFAULT VALUES;

CREATE FUNCTION monitoring_rollup_hour(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT date_bin('1 hour', at, TIMESTAMPTZ '2000-01-01 00:00:00+00') $$;

CREATE FUNCTION monitoring_rollup_day(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT date_bin('1 day', at, TIMESTAMPTZ '2000-01-01 00:00:00+00') $$;

CREATE FUNCTION monitoring_latency_bin(ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- Clamped at 1 000 s, so that no value (infinity included) can stop the roll-up.
AS $$ SELECT floor(ln(least(greatest(ms, 0.1), 1e6) / 0.1) / ln(1.05))::integer $$;

-- The hourly rows of the predictions made in [lower, upper).
CREATE FUNCTION monitoring_rollup_rows(lower timestamptz, upper timestamptz)
RETURNS SETOF monitoring_hourly
LANGUAGE sql STABLE
AS $$
    SELECT monitoring_rollup_hour(m.created_at), m.model_version, m.prediction_result, false,
           count(*)::integer,
           (count(*) FILTER (WHERE m.confidence < 0.8))::integer,
           (count(*) FILTER (WHERE m.rgpd_consent))::integer,
           sum(m.confidence),
           max(m.inference_time_ms),
           (count(*) FILTER (WHERE m.user_feedback IS NOT NULL))::integer,
           (count(*) FILTER (WHERE m.user_feedback = 1))::integer,
           (count(f.prediction_id) FILTER (WHERE m.user_feedback IS NOT NULL))::integer,
           (count(*) FILTER (WHERE m.user_feedback IS NOT NULL AND f.prediction_id IS NOT NULL
                             AND m.prediction_result
                                 = feedback_truth(f.true_label, f.satisfaction,
                                                  m.prediction_result)))::integer,
           0
    FROM monitoring m LEFT JOIN feedback f ON f.prediction_id = m.id
    WHERE m.created_at >= lower AND m.created_at < upper
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT monitoring_rollup_hour(m.created_at), s.model_version, s.prediction_result, true,
           count(*)::integer, 0, 0,
           sum(s.confidence),
           max(s.inference_time_ms),
           0, 0,
           count(f.prediction_id)::integer,
           (count(*) FILTER (WHERE f.prediction_id IS NOT NULL
                             AND s.prediction_result
                                 = feedback_truth(f.true_label, f.satisfaction,
                                                  m.prediction_result)))::integer,
           (count(*) FILTER (WHERE s.prediction_result = m.prediction_result))::integer
    FROM monitoring m
    JOIN shadow_predictions s ON s.prediction_id = m.id
    LEFT JOIN feedback f ON f.prediction_id = m.id
    WHERE m.created_at >= lower AND m.created_at < upper
    GROUP BY 1, 2, 3
$$;

-- The histogram bins of the predictions made in [lower, upper).
CREATE FUNCTION monitoring_rollup_bins(lower timestamptz, upper timestamptz)
RETURNS SETOF monitoring_hourly_bins
LANGUAGE sql STABLE
AS $$
    WITH served AS (
        SELECT monitoring_rollup_hour(created_at) AS period_start, model_version,
               inference_time_ms, confidence
        FROM monitoring WHERE created_at >= lower AND created_at < upper
    )
    SELECT period_start, 'latency', model_version, false,
           monitoring_latency_bin(inference_time_ms), count(*)::integer
    FROM served GROUP BY 1, 3, 5
    UNION ALL
    SELECT period_start, 'latency_bar', model_version, false,
           width_bucket(inference_time_ms,
                        ARRAY[0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300,
                              500, 1000]::double precision[]),
           count(*)::integer
    FROM served GROUP BY 1, 3, 5
    UNION ALL
    SELECT period_start, 'confidence', model_version, false,
           least(width_bucket(confidence, 0.5, 1.0, 25), 25), count(*)::integer
    FROM served GROUP BY 1, 3, 5
    UNION ALL
    SELECT monitoring_rollup_hour(m.created_at), 'latency', s.model_version, true,
           monitoring_latency_bin(s.inference_time_ms), count(*)::integer
    FROM monitoring m JOIN shadow_predictions s ON s.prediction_id = m.id
    WHERE m.created_at >= lower AND m.created_at < upper
    GROUP BY 1, 3, 5
$$;

-- Re-derives the given days from their hourly rows; the caller holds the roll-up lock or the
-- refresh lock.
CREATE FUNCTION monitoring_rollup_days(days timestamptz[]) RETURNS void
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $$
BEGIN
    days := ARRAY(SELECT DISTINCT d FROM unnest(days) d ORDER BY 1);
    DELETE FROM monitoring_daily WHERE period_start = ANY (days);
    INSERT INTO monitoring_daily
    SELECT monitoring_rollup_day(period_start), model_version, prediction_result, shadow,
           sum(predictions), sum(low_confidence), sum(consented), sum(confidence_sum),
           max(latency_max_ms), sum(feedback), sum(satisfied), sum(labelled), sum(correct),
           sum(agreed)
    FROM monitoring_hourly h JOIN unnest(days) d
      ON h.period_start >= d AND h.period_start < d + interval '1 day'
    GROUP BY 1, 2, 3, 4;
    DELETE FROM monitoring_daily_bins WHERE period_start = ANY (days);
    INSERT INTO monitoring_daily_bins
    SELECT monitoring_rollup_day(period_start), histogram, model_version, shadow, bin, sum(n)
    FROM monitoring_hourly_bins h JOIN unnest(days) d
      ON h.period_start >= d AND h.period_start < d + interval '1 day'
    GROUP BY 1, 2, 3, 4, 5;
END
$$;

-- Re-computes the given hours that are already rolled, and their days.
CREATE FUNCTION monitoring_rollup_refresh(hours timestamptz[]) RETURNS void
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $$
DECLARE
    rolled timestamptz;
BEGIN
    IF cardinality(hours) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(7302000);
    SELECT rolled_until INTO rolled FROM monitoring_rollup_state;
    hours := ARRAY(SELECT DISTINCT h FROM unnest(hours) h WHERE h < rolled ORDER BY 1);
    IF cardinality(hours) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(7302001);
    DELETE FROM monitoring_hourly WHERE period_start = ANY (hours);
    INSERT INTO monitoring_hourly
    SELECT r.* FROM unnest(hours) h, monitoring_rollup_rows(h, h + interval '1 hour') r;
    DELETE FROM monitoring_hourly_bins WHERE period_start = ANY (hours);
    INSERT INTO monitoring_hourly_bins
    SELECT b.* FROM unnest(hours) h, monitoring_rollup_bins(h, h + interval '1 hour') b;
    PERFORM monitoring_rollup_days(ARRAY(SELECT monitoring_rollup_day(h) FROM unnest(hours) h));
END
$$;

-- Rolls the closed hours after the watermark, at most `max_hours` of them, up to `upto` and
-- never within a minute of now by the database's clock (a prediction written in its own hour
-- takes no lock, so its transaction must have committed by then); returns the watermark,
-- which never moves back. One call at a time, holding the roll-up lock until it commits.
CREATE FUNCTION monitoring_rollup_advance(upto timestamptz, max_hours integer)
RETURNS timestamptz
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $$
DECLARE
    rolled timestamptz;
    target timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(7302000);
    SELECT rolled_until INTO rolled FROM monitoring_rollup_state;
    upto := monitoring_rollup_hour(least(upto, clock_timestamp() - interval '1 minute'));
    IF rolled IS NULL THEN
        -- Nothing rolled yet: start at the oldest prediction (shadow answers follow theirs).
        SELECT monitoring_rollup_hour(min(created_at)) INTO rolled FROM monitoring;
        rolled := least(coalesce(rolled, upto), upto);
    END IF;
    target := greatest(rolled, least(upto, rolled + max_hours * interval '1 hour'));
    IF target > rolled THEN
        DELETE FROM monitoring_hourly WHERE period_start >= rolled AND period_start < target;
        INSERT INTO monitoring_hourly SELECT * FROM monitoring_rollup_rows(rolled, target);
        DELETE FROM monitoring_hourly_bins WHERE period_start >= rolled AND period_start < target;
        INSERT INTO monitoring_hourly_bins SELECT * FROM monitoring_rollup_bins(rolled, target);
        PERFORM monitoring_rollup_days(ARRAY(
            SELECT generate_series(monitoring_rollup_day(rolled),
                                   target - interval '1 hour', interval '1 day')));
    END IF;
    UPDATE monitoring_rollup_state SET rolled_until = target;
    RETURN target;
END
$$;

-- Triggers: the hours a statement touched, re-computed when they are already rolled. Only
-- hours before the current one can be rolled, so a prediction written in its own hour (nearly
-- all of them) takes no lock at all.
CREATE FUNCTION monitoring_rollup_touch_predictions() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM monitoring_rollup_refresh(ARRAY(
        SELECT DISTINCT monitoring_rollup_hour(created_at) FROM changed
        WHERE created_at < monitoring_rollup_hour(clock_timestamp())));
    RETURN NULL;
END
$$;

-- Feedback and shadow answers count in the hour of the prediction they belong to. When the
-- prediction itself is being deleted, its own trigger re-computes the hour.
CREATE FUNCTION monitoring_rollup_touch_answers() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM monitoring_rollup_refresh(ARRAY(
        SELECT DISTINCT monitoring_rollup_hour(m.created_at)
        FROM changed c JOIN monitoring m ON m.id = c.prediction_id
        WHERE m.created_at < monitoring_rollup_hour(clock_timestamp())));
    RETURN NULL;
END
$$;

-- An update may move what it changes to another hour (or prediction): both hours count.
CREATE FUNCTION monitoring_rollup_touch_updated_predictions() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM monitoring_rollup_refresh(ARRAY(
        SELECT DISTINCT monitoring_rollup_hour(created_at)
        FROM (SELECT created_at FROM old_rows UNION ALL SELECT created_at FROM new_rows) moved
        WHERE created_at < monitoring_rollup_hour(clock_timestamp())));
    RETURN NULL;
END
$$;

CREATE FUNCTION monitoring_rollup_touch_updated_answers() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM monitoring_rollup_refresh(ARRAY(
        SELECT DISTINCT monitoring_rollup_hour(m.created_at)
        FROM (SELECT prediction_id FROM old_rows UNION SELECT prediction_id FROM new_rows) c
        JOIN monitoring m ON m.id = c.prediction_id
        WHERE m.created_at < monitoring_rollup_hour(clock_timestamp())));
    RETURN NULL;
END
$$;

CREATE TRIGGER monitoring_rollup_insert AFTER INSERT ON monitoring
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_predictions();
CREATE TRIGGER monitoring_rollup_update AFTER UPDATE ON monitoring
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_updated_predictions();
CREATE TRIGGER monitoring_rollup_delete AFTER DELETE ON monitoring
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_predictions();

CREATE TRIGGER feedback_rollup_insert AFTER INSERT ON feedback
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_answers();
CREATE TRIGGER feedback_rollup_update AFTER UPDATE ON feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_updated_answers();
CREATE TRIGGER feedback_rollup_delete AFTER DELETE ON feedback
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_answers();

CREATE TRIGGER shadow_predictions_rollup_insert AFTER INSERT ON shadow_predictions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_answers();
CREATE TRIGGER shadow_predictions_rollup_update AFTER UPDATE ON shadow_predictions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_updated_answers();
CREATE TRIGGER shadow_predictions_rollup_delete AFTER DELETE ON shadow_predictions
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_touch_answers();

-- TRUNCATE fires no row or statement DELETE trigger: emptying the predictions empties the
-- roll-ups with them.
CREATE FUNCTION monitoring_rollup_truncate() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7302000);
    TRUNCATE monitoring_hourly, monitoring_hourly_bins, monitoring_daily, monitoring_daily_bins;
    UPDATE monitoring_rollup_state SET rolled_until = NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER monitoring_rollup_truncate AFTER TRUNCATE ON monitoring
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_rollup_truncate();
