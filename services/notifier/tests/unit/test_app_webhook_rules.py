"""The pure rules of app webhooks: signatures receivers verify, secret rotation, URLs, retry timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from standardwebhooks import Webhook

from paysync_core.app_webhooks import EndpointSpec, SigningSecret, new_secret, rotated, signature_header
from paysync_notifier.hooks import retry_after_seconds, retry_delay

NOW = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)


def test_a_signature_verifies_with_the_standardwebhooks_library_and_a_changed_body_does_not() -> None:
    secret = new_secret()
    body = b'{"type":"payment.status_changed"}'
    headers = signature_header([SigningSecret(secret=secret)], "msg_1", datetime.now(UTC), body)
    assert Webhook(secret).verify(body, headers) == {"type": "payment.status_changed"}
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body.replace(b"status", b"stat_s"), headers)


def test_a_rotation_keeps_the_old_secret_signing_until_the_overlap_ends() -> None:
    old, new = new_secret(), new_secret()
    keys = rotated([SigningSecret(secret=old)], new, NOW, timedelta(hours=1))
    assert [k.secret for k in keys if k.valid_at(NOW + timedelta(minutes=59))] == [new, old]
    assert [k.secret for k in keys if k.valid_at(NOW + timedelta(hours=1))] == [new]
    assert [k.secret for k in rotated(keys, new_secret(), NOW, timedelta(0))][1:] == []


@pytest.mark.parametrize(
    "url",
    ["http://example.com/hooks", "ftp://example.com/", "https://user:pw@example.com/", "example.com/hooks"],
)
def test_an_endpoint_must_be_https_except_on_this_machine(url: str) -> None:
    with pytest.raises(ValueError, match="url"):  # pydantic's ValidationError
        EndpointSpec(url=url)


@pytest.mark.parametrize(
    "url", ["https://example.com/hooks", "http://127.0.0.1:8080/h", "http://localhost/h"]
)
def test_https_and_local_http_endpoints_are_accepted(url: str) -> None:
    assert EndpointSpec(url=url).url == url


def test_retries_follow_the_schedule_then_give_up() -> None:
    schedule = [5.0, 60.0]
    assert retry_delay(1, schedule, 0, None) == 5.0
    assert retry_delay(2, schedule, 0, None) == 60.0
    assert retry_delay(3, schedule, 0, None) is None
    assert 4.0 <= retry_delay(1, schedule, 0.2, None) <= 6.0  # type: ignore[operator]
    assert retry_delay(1, schedule, 0, 30.0) == 30.0, "a later Retry-After wins"


def test_retry_after_is_read_from_429_and_503_as_seconds_or_a_date_and_capped() -> None:
    def answer(status: int, value: str) -> httpx.Response:
        return httpx.Response(status, headers={"retry-after": value})

    assert retry_after_seconds(answer(429, "120"), cap=3600) == 120
    assert retry_after_seconds(answer(503, "99999"), cap=3600) == 3600
    assert retry_after_seconds(answer(500, "120"), cap=3600) is None
    assert retry_after_seconds(answer(429, "soon"), cap=3600) is None
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    assert 500 < retry_after_seconds(answer(429, later), cap=3600) <= 600  # type: ignore[operator]
