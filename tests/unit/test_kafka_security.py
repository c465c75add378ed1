"""Kafka security settings (VERBUND_KAFKA_SECURITY_PROTOCOL, SASL credentials) and the one
function every aiokafka client and the Faust app take them through."""

from __future__ import annotations

import ssl

import faust
import pytest

from services.common.kafka import durable_producer, kafka_client_options
from services.common.settings import ServiceSettings, SettingsError, load_settings
from services.ledger.app import faust_credentials
from services.ledger.settings import LedgerSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "VERBUND_SETTINGS_FILE",
        "VERBUND_KAFKA_SECURITY_PROTOCOL",
        "VERBUND_KAFKA_SASL_MECHANISM",
        "VERBUND_KAFKA_USERNAME",
        "VERBUND_KAFKA_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)


def test_default_is_plaintext_without_any_client_option() -> None:
    settings = load_settings(ServiceSettings)
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert kafka_client_options(settings) == {}
    assert faust_credentials(load_settings(LedgerSettings)) == {}


async def test_plaintext_producer_is_built_exactly_as_before() -> None:
    producer = durable_producer("127.0.0.1:1", kafka_client_options(ServiceSettings()))
    assert producer.client._security_protocol == "PLAINTEXT"
    assert producer.client._sasl_mechanism == "PLAIN"  # aiokafka's default, unused
    assert producer.client._sasl_plain_username is None


def test_sasl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBUND_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("VERBUND_KAFKA_USERNAME", "ledger")
    monkeypatch.setenv("VERBUND_KAFKA_PASSWORD", "s3cret")
    settings = load_settings(ServiceSettings)
    assert kafka_client_options(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ledger",
        "sasl_plain_password": "s3cret",
    }
    # the password is a secret: not in the settings' repr or string
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize(
    ("username", "password", "missing"),
    [
        (None, None, "VERBUND_KAFKA_USERNAME and VERBUND_KAFKA_PASSWORD"),
        ("ledger", None, "VERBUND_KAFKA_PASSWORD"),
        (None, "s3cret", "VERBUND_KAFKA_USERNAME"),
        ("ledger", "", "VERBUND_KAFKA_PASSWORD"),
    ],
)
def test_sasl_without_credentials_fails_fast(
    protocol: str, username: str | None, password: str | None, missing: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            ServiceSettings,
            kafka_security_protocol=protocol,
            kafka_username=username,
            kafka_password=password,
        )
    message = str(info.value)
    assert message.count("\n") == 0 and f"needs {missing}" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("kafka_security_protocol", "SSL"), ("kafka_sasl_mechanism", "GSSAPI")],
)
def test_unsupported_protocol_or_mechanism_is_refused(field: str, value: str) -> None:
    with pytest.raises(SettingsError, match=field):
        load_settings(ServiceSettings, **{field: value})


def test_sasl_ssl_verifies_the_broker_certificate() -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_username="gateway",
        kafka_password="pw",
    )
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


async def test_producer_and_admin_accept_the_options() -> None:
    """aiokafka refuses unknown keyword arguments: producer, consumer and admin take them."""
    from aiokafka.admin import AIOKafkaAdminClient

    options = kafka_client_options(
        ServiceSettings(
            kafka_security_protocol="SASL_PLAINTEXT", kafka_username="audit", kafka_password="pw"
        )
    )
    producer = durable_producer("127.0.0.1:1", options, request_timeout_ms=1000)
    assert producer.client._sasl_plain_username == "audit"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:1", **options)
    assert admin._client._security_protocol == "SASL_PLAINTEXT"


async def test_consumer_accepts_the_options() -> None:
    from aiokafka import AIOKafkaConsumer

    options = kafka_client_options(
        ServiceSettings(
            kafka_security_protocol="SASL_PLAINTEXT", kafka_username="console", kafka_password="pw"
        )
    )
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **options)
    assert consumer._client._sasl_plain_username == "console"


def test_faust_app_gets_sasl_credentials() -> None:
    settings = LedgerSettings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_username="ledger", kafka_password="pw"
    )
    [(key, credentials)] = faust_credentials(settings).items()
    assert key == "broker_credentials"
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("ledger", "pw")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    tls = LedgerSettings(
        kafka_security_protocol="SASL_SSL", kafka_username="ledger", kafka_password="pw"
    )
    assert faust_credentials(tls)["broker_credentials"].protocol.value == "SASL_SSL"
