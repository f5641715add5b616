-- Indexes for the dashboard, which aggregates whole time windows of `monitoring` in SQL.
-- Window scans use the created_at btree of 0001 (rows arrive in time order, so its heap visits
-- are nearly sequential); a wider covering index was measured and the planner does not pick it.
-- Satisfaction and live accuracy read only rows with feedback, a small share: this partial
-- index carries user_feedback so those queries are index-only scans (no heap visits).
CREATE INDEX monitoring_feedback_window_idx ON monitoring (created_at)
    INCLUDE (user_feedback)
    WHERE user_feedback IS NOT NULL;
