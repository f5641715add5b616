"""The notifier's domain metrics; labels are bounded sets (outcomes, reasons, Discord codes)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Discord error codes we name; anything else is counted as "other" to keep cardinality bounded.
KNOWN_DISCORD_CODES = frozenset({0, 10008, 10015, 40005, 50006, 50035, 50027, 40060, 20028})

QUEUED = Counter(
    "cv_notifier_messages_queued_total",
    "Discord messages committed to the outbox, by source.",
    ["source"],
)
REFUSED = Counter(
    "cv_notifier_requests_refused_total",
    "Requests answered 429 because their caller already had NOTIFIER_MAX_PENDING_PER_CALLER "
    "messages pending in the request's severity lane, by source and lane.",
    ["source", "severity"],
)
DUPLICATES = Counter(
    "cv_notifier_duplicates_total",
    "Alerts or notifications not queued again because they already were, by source.",
    ["source"],
)
ATTEMPTS = Counter(
    "cv_notifier_delivery_attempts_total",
    "Requests to Discord, by outcome and Discord error code ('none' when there is none).",
    ["outcome", "discord_code"],
)
DELIVERED = Counter("cv_notifier_messages_delivered_total", "Messages Discord confirmed.")
EDITED = Counter(
    "cv_notifier_messages_edited_total",
    "Of the confirmed messages, those that edited an alert group's living message.",
)
RETRIED = Counter(
    "cv_notifier_messages_retried_total",
    "Messages put back in the outbox for a later attempt, by reason.",
    ["reason"],
)
COLLAPSED = Counter(
    "cv_notifier_messages_collapsed_total",
    "Queued messages never sent as rendered: replaced by a later rendering of the same part "
    "(superseded), or folded into one summary line of a group resolved before any of it "
    "reached Discord (resolved_unsent).",
    ["reason"],
)
DROPPED = Counter(
    "cv_notifier_messages_dropped_total",
    "Messages given up on (Discord refused even the plain-text rendering), by reason.",
    ["reason"],
)
LOGGED = Counter(
    "cv_notifier_messages_logged_total", "Messages only logged because Discord is not configured."
)
RATE_LIMITED = Counter(
    "cv_notifier_rate_limited_total", "429 answers from Discord, by scope.", ["scope"]
)
QUEUE_DEPTH = Gauge(
    "cv_notifier_queue_depth",
    "Messages pending in the outbox (all replicas).",
    multiprocess_mode="livemax",
)
OLDEST_AGE = Gauge(
    "cv_notifier_oldest_queued_age_seconds",
    "Age of the oldest pending message in the outbox (0 when empty).",
    multiprocess_mode="livemax",
)
WEBHOOK_MISCONFIGURED = Gauge(
    "cv_notifier_webhook_misconfigured",
    "1 while Discord answers that a configured webhook is unknown or unauthorised.",
    multiprocess_mode="livemax",
)
DISCORD_LATENCY = Histogram(
    "cv_notifier_discord_request_seconds",
    "Duration of requests to Discord, by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)


def code_label(code: int | None) -> str:
    """A Discord error code as a bounded label value."""
    if code is None:
        return "none"
    return str(code) if code in KNOWN_DISCORD_CODES else "other"
