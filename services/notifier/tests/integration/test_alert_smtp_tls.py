"""Alert email over TLS, end to end: a real SMTP server (aiosmtpd) that requires STARTTLS, or speaks TLS
from the first byte, and a login, with a certificate from a CA made for the test; the notifier as its
own process, trusting that CA through `PAYSYNC_NOTIFIER_SMTP_CA_FILE`."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.alerting import AlertConfig
from paysync_core.contracts import AlertKind
from paysync_core.db.schema import alert_deliveries
from paysync_dev.alerts import configure_alerts, issue_alert, open_issues
from paysync_dev.service_fixtures import fetch, wait_until
from paysync_dev.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration
USER, PASSWORD = "alerts", "tls-password-0451"


@dataclass(frozen=True)
class MadeCa:
    """A CA made for one test, and a server certificate it signed for 127.0.0.1."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """What the SMTP server presents."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _signed(subject: str, issuer: str, public_key, signer, *, ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def made_ca(tmp_path: Path) -> MadeCa:
    """A fresh CA and a server certificate for 127.0.0.1, as PEM files."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = _signed("paysync test CA", "paysync test CA", ca_key.public_key(), ca_key, ca=True)
    server_cert = _signed("127.0.0.1", "paysync test CA", server_key.public_key(), ca_key, ca=False)
    pem = serialization.Encoding.PEM
    found = MadeCa(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    found.ca_file.write_bytes(ca_cert.public_bytes(pem))
    found.cert_file.write_bytes(server_cert.public_bytes(pem))
    found.key_file.write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return found


async def email_rows(engine: AsyncEngine, tenant: str) -> list:
    query = select(alert_deliveries).where(
        alert_deliveries.c.tenant_id == tenant, alert_deliveries.c.channel == "email"
    )
    return await fetch(engine, query)


async def alert_once(engine: AsyncEngine, keys: str, kafka: str, tenant: str) -> str:
    """Email alerts to ops@; raise one alert; its id."""
    await configure_alerts(
        engine, keys, tenant, AlertConfig(emails=["ops@example.com"], reminder_after_seconds=None)
    )
    alert = issue_alert(tenant, AlertKind.AMOUNT_MISMATCH)
    await open_issues(engine, kafka, [alert])
    return alert.alert_id


@pytest.mark.parametrize(
    ("implicit", "mode"),
    [(False, {"smtp_starttls": True}), (True, {"smtp_tls": True})],
    ids=["starttls", "implicit-tls"],
)
async def test_alerts_are_emailed_over_tls_with_a_login_to_a_server_signed_by_a_trusted_ca(
    start_notifiers: Callable,
    engine,
    credentials_keys,
    tenant,
    kafka_topics,
    smtp_sink: SmtpSink,
    made_ca,
    implicit,
    mode,
) -> None:
    smtp_sink.require_tls(made_ca.server_context(), implicit=implicit)
    smtp_sink.require_login(USER, PASSWORD)
    await start_notifiers(smtp_ca_file=made_ca.ca_file, smtp_username=USER, smtp_password=PASSWORD, **mode)
    alert_id = await alert_once(engine, credentials_keys, kafka_topics, tenant.id)

    await smtp_sink.wait_for(lambda m: len(m) >= 1)
    assert alert_id in smtp_sink.text_of(smtp_sink.messages[0]) and smtp_sink.logins == [USER]

    async def marked_sent() -> bool:  # marked after the server took the message, so it can trail it
        return [r.status for r in await email_rows(engine, tenant.id)] == ["sent"]

    await wait_until(marked_sent, 60, "the delivery to be marked sent")
    (row,) = await email_rows(engine, tenant.id)
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_certificate_the_notifier_does_not_trust_is_retried_then_dead_with_the_reason(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, made_ca
) -> None:
    smtp_sink.require_tls(made_ca.server_context())
    # No PAYSYNC_NOTIFIER_SMTP_CA_FILE: the system's trust store, which has never heard of this CA.
    await start_notifiers(smtp_starttls=True, alerts_max_attempts=2)
    await alert_once(engine, credentials_keys, kafka_topics, tenant.id)

    async def dead() -> bool:
        return [r.status for r in await email_rows(engine, tenant.id)] == ["dead"]

    await wait_until(dead, 60, "the untrusted server's delivery to be given up")
    (row,) = await email_rows(engine, tenant.id)
    assert row.attempts == 2 and "CERTIFICATE_VERIFY_FAILED" in row.last_error, row.last_error
    assert smtp_sink.messages == []


async def test_a_wrong_password_over_starttls_is_retried_then_dead_with_a_clear_reason(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, made_ca
) -> None:
    smtp_sink.require_tls(made_ca.server_context())
    smtp_sink.require_login(USER, PASSWORD)
    (notifier,) = await start_notifiers(
        smtp_starttls=True,
        smtp_ca_file=made_ca.ca_file,
        smtp_username=USER,
        smtp_password="wrong-password-9",
        alerts_max_attempts=3,
    )
    await alert_once(engine, credentials_keys, kafka_topics, tenant.id)

    async def dead() -> bool:
        return [r.status for r in await email_rows(engine, tenant.id)] == ["dead"]

    await wait_until(dead, 60, "the refused login to be given up")
    (row,) = await email_rows(engine, tenant.id)
    assert row.attempts == 3
    assert row.last_error == ("smtp login refused (535): check PAYSYNC_NOTIFIER_SMTP_USERNAME and _PASSWORD")
    assert smtp_sink.messages == [] and smtp_sink.logins == []
    assert notifier.metric("paysync_notifier_alerts_retried_total", channel="email") == 2

    # Counted once the notifier has marked it dead, not before.
    await notifier.wait_for_metric(
        "paysync_notifier_alerts_failed_total", 1, "the email counted as given up", channel="email"
    )
    log = notifier.process.log_path.read_text()
    assert "wrong-password-9" not in log and PASSWORD not in log
