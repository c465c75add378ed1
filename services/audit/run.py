"""Process entry point of the audit service (``verbund audit``)."""

from __future__ import annotations

import asyncio

from services.audit import metrics
from services.audit.service import AuditService, report_verification
from services.audit.settings import AuditSettings
from services.audit.store import AuditLog, AuditLogError
from services.common.kafka import ensure_topics, kafka_client_options
from services.common.logging import configure_logging, get_logger
from services.common.metrics import serve_metrics
from services.common.runner import run_until_signalled
from services.common.settings import SettingsError


def run_audit(settings: AuditSettings) -> int:
    configure_logging("audit", settings.log_level, settings.log_json)
    log = get_logger("audit")
    bootstrap = settings.require_bootstrap()
    asyncio.run(ensure_topics(bootstrap, options=kafka_client_options(settings)))
    path = settings.audit_log_path
    try:
        audit_log = AuditLog(path)
    except (AuditLogError, OSError) as exc:
        raise SettingsError(f"audit log {path}: {exc}") from exc
    try:
        recovery = audit_log.recovery
        if recovery.torn_bytes:
            log.warning(
                "audit_log_torn_tail",
                bytes=recovery.torn_bytes,
                moved_to=str(path) + ".torn",
            )
        report_verification(recovery.verified)
        metrics.LAST_SEQ.set(audit_log.head.next_seq - 1)
        port = serve_metrics(settings.metrics_host, settings.metrics_port)
        log.info(
            "audit_starting",
            bootstrap=bootstrap,
            log=str(path),
            next_seq=audit_log.head.next_seq,
            metrics=f"http://{settings.metrics_host}:{port}/metrics",
        )
        service = AuditService(settings, bootstrap, audit_log)
        return run_until_signalled(service.run())
    finally:
        audit_log.close()
        log.info("audit_stopped", next_seq=audit_log.head.next_seq)
