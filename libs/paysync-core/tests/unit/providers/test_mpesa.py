"""M-Pesa: the callback token, the IP allowlist, and STK Push callbacks as unverified hints."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from paysync_core.contracts.common import Provider, Verdict
from paysync_core.credentials import GatewayCredentials, MpesaCredentials
from paysync_core.domain.merge import Expectation, merge_all
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import AuthenticityError, MalformedPayload
from paysync_core.providers.mpesa import MpesaAdapter, status_for_result_code
from paysync_core.testing.builders import mpesa as mb
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.requests import webhook_request

adapter = MpesaAdapter()
TOKEN = "cb_4f9d2c7e1a"


def _creds(**overrides) -> MpesaCredentials:
    return MpesaCredentials(
        consumer_key="ck",
        consumer_secret="cs",
        shortcode="174379",
        passkey="pk",
        callback_token=TOKEN,
        **overrides,
    )


def _request(token: str | None, remote_addr: str | None = "196.201.214.200"):
    return webhook_request(to_body(mb.stk_callback()), path_token=token, remote_addr=remote_addr)


def _reason(request, creds) -> str:
    with pytest.raises(AuthenticityError) as caught:
        adapter.authenticate(request, creds)
    return caught.value.reason


# --- Authenticity ------------------------------------------------------------------------------


def test_the_right_token_is_accepted_but_unverifiable():
    assert adapter.authenticate(_request(TOKEN), _creds()) is Verdict.UNVERIFIABLE


@pytest.mark.parametrize(
    "token, reason",
    [
        ("cb_wrong", "bad_callback_token"),
        (TOKEN + "x", "bad_callback_token"),
        ("ćb_ünïcode", "bad_callback_token"),
        (None, "missing_callback_token"),
        ("", "missing_callback_token"),
    ],
)
def test_a_wrong_or_missing_token_is_refused(token, reason):
    assert _reason(_request(token), _creds()) == reason


def test_during_a_rotation_the_current_and_previous_tokens_are_accepted():
    creds = _creds(previous_callback_tokens=("cb_before_rotation",))
    assert adapter.authenticate(_request(TOKEN), creds) is Verdict.UNVERIFIABLE
    assert adapter.authenticate(_request("cb_before_rotation"), creds) is Verdict.UNVERIFIABLE
    assert _reason(_request("cb_before_rotation"), _creds()) == "bad_callback_token"


def test_credentials_stored_before_rotations_existed_still_load():
    stored = json.dumps(
        {
            "mpesa": {
                "consumer_key": "ck",
                "consumer_secret": "cs",
                "shortcode": "174379",
                "passkey": "pk",
                "callback_token": TOKEN,
            }
        }
    )
    creds = GatewayCredentials.model_validate_json(stored).mpesa
    assert creds is not None and creds.accepted_callback_tokens() == (TOKEN,)


def test_an_enforced_allowlist_refuses_other_senders():
    creds = _creds(allowed_ips=("196.201.214.0/24",), ip_policy="enforce")
    assert adapter.authenticate(_request(TOKEN, "196.201.214.200"), creds) is Verdict.UNVERIFIABLE
    assert _reason(_request(TOKEN, "198.51.100.1"), creds) == "ip_not_allowed"


def test_a_logged_allowlist_accepts_and_reports():
    creds = _creds(allowed_ips=("196.201.214.0/24",), ip_policy="log")
    request = _request(TOKEN, "198.51.100.1")
    assert adapter.authenticate(request, creds) is Verdict.UNVERIFIABLE
    assert adapter.ip_allowed(request, creds) is False


# --- Parsing -----------------------------------------------------------------------------------


def test_a_successful_callback_is_an_unverified_success_hint(ctx):
    paid = datetime(2019, 5, 1, 18, 29, 16, tzinfo=UTC)  # 21:29:16 in Nairobi
    payload = mb.stk_callback(
        checkout_request_id="ws_CO_DMZ_464152318_01052019212834424",
        amount=150,
        receipt="NE10MHGI7K",
        transaction_date=paid,
        phone=254708374149,
    )
    assert payload["Body"]["stkCallback"]["CallbackMetadata"]["Item"][3]["Value"] == 20190501212916
    body = to_body(payload)
    parsed = adapter.parse(body, ctx)
    assert (parsed.event_type, parsed.unmapped, len(parsed.observations)) == ("stkCallback", False, 1)
    obs = parsed.observations[0]
    assert obs.provider is Provider.MPESA
    assert obs.status is S.SUCCEEDED
    assert obs.verified is False  # even though the context says verified: the content is unsigned
    assert (obs.provider_ref, obs.amount_minor, obs.currency) == (
        "ws_CO_DMZ_464152318_01052019212834424",
        15_000,
        "KES",
    )
    assert obs.provider_time == paid
    assert obs.evidence.receipt_number == "NE10MHGI7K"
    assert obs.evidence.phone_masked == "254***149"
    assert "254708374149" not in obs.model_dump_json()
    assert obs.evidence.ingest_id == "ing-1"
    assert adapter.reference_hint(body) == adapter.reference_hint(json.loads(body)) == obs.provider_ref


def test_a_hint_alone_never_changes_the_merged_status(ctx):
    obs = adapter.parse(to_body(mb.stk_callback()), ctx).observations[0]
    assert obs.status is S.SUCCEEDED
    assert merge_all([obs.to_domain()], Expectation(100, "KES")).paid_at is None


def test_a_decimal_amount_like_1_00_is_whole_shillings(ctx):
    assert adapter.parse(to_body(mb.stk_callback(amount=1.0)), ctx).observations[0].amount_minor == 100


def test_observation_ids_are_deterministic_per_request_code_and_receipt(ctx):
    payload = mb.stk_callback(receipt="QKH94M1Z11")
    first = adapter.parse(to_body(payload), ctx).observations[0].observation_id
    assert first == adapter.parse(to_body(payload), ctx).observations[0].observation_id
    assert first.startswith("mpesa:")
    payload["Body"]["stkCallback"]["CallbackMetadata"]["Item"][1]["Value"] = "QKH94M1Z12"
    assert adapter.parse(to_body(payload), ctx).observations[0].observation_id != first


@pytest.mark.parametrize(
    "code, status",
    [
        (0, S.SUCCEEDED),
        (1, S.FAILED),
        (17, S.FAILED),
        (26, S.FAILED),
        (1001, S.FAILED),
        (1019, S.EXPIRED),
        (1025, S.FAILED),
        (1032, S.CANCELED),
        (1037, S.EXPIRED),
        (2001, S.FAILED),
        (9999, S.FAILED),
        (4242, None),
        (-1, None),
    ],
)
def test_result_codes(ctx, observed_at, code, status):
    payload = mb.stk_callback(result_code=code)
    obs = adapter.parse(to_body(payload), ctx).observations[0]
    assert obs.status is status
    assert obs.evidence.detail == payload["Body"]["stkCallback"]["ResultDesc"]
    if code != 0:
        assert (obs.amount_minor, obs.evidence.receipt_number, obs.provider_time) == (None, None, observed_at)
    assert status_for_result_code(code) is status


def test_a_result_code_sent_as_text_is_read(ctx):
    payload = mb.stk_callback(result_code=1032)
    payload["Body"]["stkCallback"]["ResultCode"] = "1032"
    assert adapter.parse(to_body(payload), ctx).observations[0].status is S.CANCELED


def test_an_impossible_transaction_date_falls_back_to_the_observation_time(ctx, observed_at):
    payload = mb.stk_callback()
    payload["Body"]["stkCallback"]["CallbackMetadata"]["Item"][3]["Value"] = 20171125153789  # seconds=89
    assert adapter.parse(to_body(payload), ctx).observations[0].provider_time == observed_at


def test_other_daraja_callbacks_are_unmapped(ctx):
    body = b'{"Body": {"someOtherResult": {"ResultCode": 0}}}'
    parsed = adapter.parse(body, ctx)
    assert (parsed.unmapped, parsed.event_type) == (True, "Body.someOtherResult")


def _broken(mutate) -> bytes:
    payload = mb.stk_callback()
    mutate(payload["Body"]["stkCallback"])
    return to_body(payload)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"ResultCode": 0}', "missing:Body"),
        (b'{"Body": {}}', "missing:Body.stkCallback"),
        (b'{"Body": {"stkCallback": []}}', "type:Body.stkCallback"),
        (_broken(lambda cb: cb.pop("CheckoutRequestID")), "missing:Body.stkCallback.CheckoutRequestID"),
        (_broken(lambda cb: cb.pop("MerchantRequestID")), "missing:Body.stkCallback.MerchantRequestID"),
        (_broken(lambda cb: cb.pop("ResultCode")), "missing:Body.stkCallback.ResultCode"),
        (_broken(lambda cb: cb.update(ResultCode=1.5)), "type:Body.stkCallback.ResultCode"),
        (
            _broken(lambda cb: cb["CallbackMetadata"].update(Item={})),
            "type:Body.stkCallback.CallbackMetadata.Item",
        ),
        (
            _broken(lambda cb: cb["CallbackMetadata"]["Item"][0].update(Value=1.005)),
            "value:Body.stkCallback.CallbackMetadata.Amount",
        ),
        (
            _broken(lambda cb: cb["CallbackMetadata"]["Item"][0].update(Value=-3)),
            "value:Body.stkCallback.CallbackMetadata.Amount",
        ),
        (
            _broken(lambda cb: cb["CallbackMetadata"]["Item"][1].update(Value=12345)),
            "type:Body.stkCallback.CallbackMetadata.MpesaReceiptNumber",
        ),
    ],
)
def test_broken_callbacks_are_malformed(ctx, body, reason):
    with pytest.raises(MalformedPayload) as caught:
        adapter.parse(body, ctx)
    assert caught.value.reason == reason


def test_reference_hint_is_none_for_garbage():
    assert adapter.reference_hint(b"\xff\x00") is None
    assert adapter.reference_hint(b'{"Body": {"stkCallback": {"CheckoutRequestID": 5}}}') is None
