"""A real Prometheus server (Debian package) scrapes a running ledger process on the embedded
broker, loads the project's alert rules, and answers PromQL over its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.common.broker import free_port
from services.common.topics import PARTNER_EVENTS
from tests.deploy.metric_names import ROOT
from tests.deploy.promtool import require
from tests.integration.kafka_helpers import ServiceProcess, dumps, metric_value

pytestmark = pytest.mark.integration

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
PARTNER = "klinik-prom"
MATERIAL = "NACL-PROM-500ML"
T = TypeVar("T")


def _alliance_file(directory: Path) -> Path:
    partner = {
        "id": PARTNER,
        "name": "Klinik Prom",
        "sector": "hospital",
        "region": "DE-BY",
        "criticality": "hospital",
        "sites": [{"id": "s1", "name": "Main", "latitude": 48.1, "longitude": 11.5}],
    }
    path = directory / "alliance.yaml"
    path.write_text(yaml.safe_dump({"name": "Prometheus test", "partners": [partner]}))
    return path


def _stock_out_event() -> dict[str, Any]:
    """Stock-out of a hospital's material: a critical shortage."""
    return {
        "type": "StockReported",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "partner_id": PARTNER,
        "occurred_at": datetime.now(UTC).isoformat(),
        "positions": [
            {
                "site_id": "s1",
                "material_id": MATERIAL,
                "unit": "pcs",
                "on_hand": 0,
                "safety_stock": 50.0,
                "daily_consumption": 10.0,
            }
        ],
    }


def _wait(what: str, probe: Callable[[], T | None], timeout: float, poll: float = 0.5) -> T:
    """Poll until probe returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error = exc
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last_error!r})")


class PrometheusServer:
    """The Debian ``prometheus`` binary with a generated config and a temporary TSDB."""

    def __init__(self, directory: Path, targets: dict[str, str]) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log_path = directory / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                require("prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        _wait("Prometheus to be ready", self._ready, timeout=60)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def stop(self, timeout: float = 20.0) -> int | None:
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.process = None
        return proc.returncode


@pytest.fixture(scope="module")
def ledger(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    require("prometheus")
    directory = tmp_path_factory.mktemp("prom-ledger")
    (directory / "var").mkdir()  # the ledger creates var/faust, not its parents
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(_alliance_file(directory)),
        "VERBUND_GROUP_ID": f"ledger-prom-{uuid.uuid4().hex[:8]}",
        "VERBUND_KAFKA_SESSION_TIMEOUT": "6",
        "VERBUND_DATA_DIR": str(directory / "var"),
    }
    service = ServiceProcess(["ledger"], env, directory / "ledger.log").start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def prometheus(
    ledger: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    directory = tmp_path_factory.mktemp("prometheus")
    server = PrometheusServer(directory, {"ledger": f"127.0.0.1:{ledger.metrics_port}"})
    try:
        yield server.start()
    finally:
        code = server.stop()
        assert code == 0, f"prometheus did not stop cleanly ({code}): {server.log_path}"


@pytest.fixture(scope="module")
async def critical_shortage_sent(bootstrap: str, ledger: ServiceProcess) -> AsyncIterator[None]:
    def serving() -> bool:
        assert ledger.alive, ledger.log_text()[-2000:]
        return bool(ledger.metrics())

    _wait("the ledger's /metrics", serving, timeout=60)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            PARTNER_EVENTS.name, dumps(_stock_out_event()), key=PARTNER.encode()
        )
    finally:
        await producer.stop()
    yield


def _critical_series(prometheus: PrometheusServer) -> list[dict[str, Any]]:
    data = prometheus.api("query", query='verbund_open_shortages{severity="critical"}')
    return [s for s in data["result"] if s["metric"].get("material") == MATERIAL]


async def test_prometheus_scrapes_the_critical_shortage(
    ledger: ServiceProcess, prometheus: PrometheusServer, critical_shortage_sent: None
) -> None:
    # the ledger itself reports it first (consumer-group join can take tens of seconds)
    _wait(
        "the ledger to report the critical shortage",
        lambda: metric_value(
            ledger.metrics(), "verbund_open_shortages", severity="critical", material=MATERIAL
        ),
        timeout=120,
    )
    [series] = _wait("the series in Prometheus", lambda: _critical_series(prometheus), 30)
    assert series["metric"]["job"] == "ledger"
    assert series["metric"]["instance"] == f"127.0.0.1:{ledger.metrics_port}"
    assert float(series["value"][1]) == 1.0

    [up] = prometheus.api("query", query='up{job="ledger"}')["result"]
    assert up["value"][1] == "1"
    age = prometheus.api("query", query=f'verbund_partner_data_age_seconds{{partner="{PARTNER}"}}')
    assert len(age["result"]) == 1


async def test_prometheus_loaded_the_project_rules_and_evaluates_them(
    prometheus: PrometheusServer, critical_shortage_sent: None
) -> None:
    rules_file = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    expected = {r["alert"] for g in rules_file["groups"] for r in g["rules"] if "alert" in r}

    def loaded() -> set[str]:
        groups = prometheus.api("rules")["groups"]
        return {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}

    names = _wait("the alert rules to load", loaded, timeout=30)
    assert names == expected

    def evaluated() -> bool:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        bad = {r["name"]: r.get("lastError") for r in rules if r["health"] == "err"}
        assert not bad, f"rules failing to evaluate: {bad}"
        return all(r["health"] == "ok" for r in rules)

    _wait("every rule to be evaluated", evaluated, timeout=30)

    # the rule's expression matches the real exported series: pending (it needs 30 minutes)
    def pending() -> list[dict[str, Any]]:
        return [
            a
            for a in prometheus.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "VerbundCriticalShortageOpen"
            and a["labels"].get("material") == MATERIAL
        ]

    [alert] = _wait("VerbundCriticalShortageOpen to be pending", pending, timeout=120)
    assert alert["state"] == "pending"
    assert alert["labels"]["severity"] == "critical"
