"""The audit service's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ENTRIES_APPENDED = Counter(
    "verbund_audit_entries_appended", "Entries appended to the audit log, by kind.", ["kind"]
)
RECORDS_SKIPPED = Counter(
    "verbund_audit_records_skipped",
    "Consumed records not appended: duplicate (already in the log) or not_audited "
    "(partner events other than acknowledgements).",
    ["reason"],
)
LAST_SEQ = Gauge("verbund_audit_last_seq", "Sequence number of the last entry in the audit log.")
VERIFY_FAILURES = Counter(
    "verbund_audit_verify_failures", "Verifications of the audit log that found tampering."
)
LOG_INTACT = Gauge(
    "verbund_audit_log_intact", "1 when the last verification found the chain intact, else 0."
)
CONSUMER_LAG = Gauge(
    "verbund_audit_consumer_lag",
    "Records not yet audited per source topic (end offset - committed). tansu under-reports "
    "end offsets after multi-record writes, so this can read low there.",
    ["topic"],
)
