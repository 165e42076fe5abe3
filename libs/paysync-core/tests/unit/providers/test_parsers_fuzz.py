"""Every byte string gets a Parsed or MalformedPayload from every parser, never another error.

Inputs: random bytes, random JSON (NaN, huge numbers, lone surrogates, deep nesting), documented
payloads with fields replaced, deleted, retyped or re-targeted at another event type, truncated
and byte-flipped bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from paysync_core.contracts.common import Provider
from paysync_core.contracts.observation import PaymentObservation
from paysync_core.errors import MalformedPayload
from paysync_core.providers import MpesaAdapter, PaystackAdapter, StripeAdapter
from paysync_core.providers.base import Parsed, ProviderAdapter
from paysync_core.testing.builders import mpesa as mb
from paysync_core.testing.builders import paystack as pb
from paysync_core.testing.builders import stripe as sb
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.requests import parse_context

CTX = parse_context(observed_at=datetime(2026, 3, 1, tzinfo=UTC))
FUZZ = settings(
    max_examples=3_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T0 = 1_767_225_600
META = {"paysync_domain": "bookings", "paysync_entity_id": "b-1"}

# Fixed ids keep the seeds (nearly) identical from run to run, so a failing example replays.
STRIPE_SEEDS: list[dict[str, Any]] = [
    sb.stripe_event(
        "checkout.session.completed",
        sb.checkout_session(id="cs_test_1", payment_intent="pi_1", invoice="in_1", metadata=META, created=T0),
        id="evt_1",
        created=T0,
    ),
    sb.stripe_event(
        "checkout.session.completed",
        sb.checkout_session(
            id="cs_test_2", payment_status="no_payment_required", payment_intent=None, created=T0
        ),
        id="evt_2",
        created=T0,
    ),
    sb.stripe_event(
        "checkout.session.expired",
        sb.checkout_session(id="cs_test_3", status="expired", payment_intent=None, created=T0),
        id="evt_3",
        created=T0,
    ),
    sb.stripe_event(
        "payment_intent.payment_failed",
        sb.payment_intent(
            id="pi_4",
            status="requires_payment_method",
            latest_charge="ch_4",
            last_payment_error={"code": "card_declined"},
            created=T0,
        ),
        id="evt_4",
        created=T0,
    ),
    sb.stripe_event(
        "payment_intent.succeeded",
        sb.payment_intent(id="pi_5", latest_charge="ch_5", metadata=META, created=T0),
        id="evt_5",
        created=T0,
    ),
    sb.stripe_event(
        "invoice.payment_failed",
        sb.invoice(id="in_6", status="open", payment_intent="pi_6", next_payment_attempt=T0, created=T0),
        id="evt_6",
        created=T0,
    ),
    sb.stripe_event(
        "invoice.paid",
        sb.invoice(id="in_7", payment_intent="pi_7", payment_intent_field="legacy", created=T0),
        id="evt_7",
        created=T0,
    ),
    sb.stripe_event(
        "charge.refunded",
        sb.charge(id="ch_8", amount_refunded=500, payment_intent="pi_8", created=T0),
        id="evt_8",
        created=T0,
    ),
    sb.stripe_event(
        "charge.dispute.created",
        sb.dispute(id="dp_9", charge="ch_9", payment_intent="pi_9", created=T0),
        id="evt_9",
        created=T0,
    ),
    sb.stripe_event(
        "charge.dispute.closed",
        sb.dispute(id="dp_10", status="lost", charge="ch_10", payment_intent=None, created=T0),
        id="evt_10",
        created=T0,
    ),
]
STRIPE_TYPES = sorted(
    {e["type"] for e in STRIPE_SEEDS}
    | {
        "checkout.session.async_payment_succeeded",
        "payment_intent.processing",
        "invoice.voided",
        "customer.created",
    }
)

PAID = datetime(2026, 2, 1, tzinfo=UTC)
PAYSTACK_SEEDS: list[dict[str, Any]] = [
    pb.paystack_charge_success(reference="ref_1", id=1, paid_at=PAID, metadata=META),
    pb.paystack_charge_success(reference="ref_2", id=2, paid_at=PAID, metadata=json.dumps(META)),
    pb.paystack_refund("refund.processed", transaction_reference="ref_3", amount="5000"),
    pb.paystack_refund(
        "refund.processed",
        transaction_reference="ref_4",
        amount=7,
        transaction={"id": 4, "reference": "ref_4", "amount": 7},
    ),
    pb.paystack_refund("refund.failed", transaction_reference="ref_5", refund_reference="TRF_5"),
    pb.paystack_dispute(
        "charge.dispute.create", reference="ref_6", id=6, created_at=PAID, transaction_metadata=META
    ),
    pb.paystack_dispute(
        "charge.dispute.resolve",
        reference="ref_7",
        id=7,
        resolution="declined",
        created_at=PAID,
        resolved_at=PAID,
    ),
]
PAYSTACK_TYPES = sorted({p["event"] for p in PAYSTACK_SEEDS} | {"charge.dispute.remind", "transfer.success"})

MPESA_SEEDS: list[dict[str, Any]] = [
    mb.stk_callback(
        checkout_request_id="ws_CO_1",
        merchant_request_id="1-1-1",
        result_code=0,
        amount=150,
        receipt="NE10MHGI7K",
        transaction_date=PAID,
    ),
    mb.stk_callback(
        checkout_request_id="ws_CO_2",
        merchant_request_id="2-2-1",
        result_code=0,
        amount=1.0,
        receipt="QKH94M1Z11",
        transaction_date=PAID,
    ),
    mb.stk_callback(checkout_request_id="ws_CO_3", merchant_request_id="3-3-1", result_code=1032),
    mb.stk_callback(checkout_request_id="ws_CO_4", merchant_request_id="4-4-1", result_code=4242),
]

# --- Inputs ------------------------------------------------------------------------------------
#
# Hypothesis draws one byte string per example and a small interpreter turns it into the input:
# which kind of damage, which seed, which paths, which values. One draw keeps an example cheap
# (10,000 of them run in seconds) while shrinking the bytes still shrinks the damage.

KINDS = ("raw_bytes", "random_json", "mutated", "retargeted", "truncated", "flipped", "pathological")
PATHOLOGICAL = (
    b"[" * 5000,
    b'{"a":' * 3000,
    b'{"type": 1e999}',
    b"\xef\xbb\xbf{}",
    b'"\\ud800"',
    b"NaN",
    b'{"Body": {"stkCallback": {"CheckoutRequestID": "\\udfff"}}}',
    b"\x00" * 64,
    b"{}" * 100,
)
SPECIAL = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    2**64,
    10**400,
    -(10**400),
    253_402_300_800,
    10**19,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    1e308,
    "",
    "usd",
    "KES",
    "0",
    "-5",
    "1.5",
    "5000",
    "20190501212916",
    "2026-01-01T00:00:00Z",
    "x" * 300,
    "é",
    "\ud800",
    "ws_CO_1",
    "pi_1",
    [],
    {},
)
KEYS = (
    "id",
    "type",
    "event",
    "object",
    "data",
    "amount",
    "amount_total",
    "amount_refunded",
    "currency",
    "created",
    "metadata",
    "payment_intent",
    "payment_status",
    "status",
    "reference",
    "resolution",
    "transaction",
    "transaction_reference",
    "Body",
    "stkCallback",
    "CheckoutRequestID",
    "ResultCode",
    "CallbackMetadata",
    "Item",
    "Name",
    "Value",
    "paysync_domain",
    "paysync_entity_id",
    "",
)


class Program:
    """Reads choices from fuzz bytes, then zeros: every byte string is a complete program."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        """The next byte, or 0 past the end."""
        value = self.data[self.at] if self.at < len(self.data) else 0
        self.at += 1
        return value

    def number(self, limit: int) -> int:
        """A number below `limit` from two bytes."""
        return ((self.byte() << 8) | self.byte()) % max(limit, 1)

    def pick(self, options: Any) -> Any:
        """One of the options."""
        return options[self.byte() % len(options)]

    def value(self, depth: int = 0) -> Any:
        """A JSON-ish value: special cases, integers, text, lists or objects."""
        kind = self.byte() % 8
        if kind < 3 or depth >= 3:
            special = self.pick(SPECIAL)
            return type(special)() if isinstance(special, (list, dict)) else special
        if kind == 3:
            return int.from_bytes(bytes(self.byte() for _ in range(self.byte() % 10)), "big", signed=True)
        if kind == 4:
            return bytes(self.byte() for _ in range(self.byte() % 12)).decode("latin-1")
        if kind == 5:
            return [self.value(depth + 1) for _ in range(self.byte() % 4)]
        return {self.pick(KEYS): self.value(depth + 1) for _ in range(self.byte() % 4)}


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path inside a JSON value, containers included."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _mutate(doc: Any, program: Program) -> None:
    paths = _paths(doc)
    if not paths:
        return
    path = paths[program.number(len(paths))]
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    key, op = path[-1], program.byte() % 5
    if op == 0:
        del parent[key]
    elif op == 1:
        parent[key] = json.dumps(parent[key])  # the right value, as text
    elif op == 2:
        parent[key] = [parent[key]]
    else:
        parent[key] = program.value()


def make_body(fuzz: bytes, seeds: list[dict], type_key: str | None, types: list[str]) -> bytes:
    """The input a fuzz byte string stands for."""
    program = Program(fuzz)
    kind = program.pick(KINDS)
    if kind == "raw_bytes":
        return fuzz[1:]
    if kind == "random_json":
        return json.dumps(program.value()).encode()
    if kind == "pathological":
        return program.pick(PATHOLOGICAL)
    seed = program.pick(seeds)
    if kind in ("truncated", "flipped"):
        body = bytearray(to_body(seed))
        if kind == "truncated":
            return bytes(body[: program.number(len(body) + 1)])
        for _ in range(1 + program.byte() % 4):
            body[program.number(len(body))] = program.byte()
        return bytes(body)
    doc = json.loads(json.dumps(seed))
    if kind == "retargeted" and type_key:
        doc[type_key] = program.pick(types)
    for _ in range(1 + program.byte() % 3):
        _mutate(doc, program)
    return json.dumps(doc).encode()


def fuzz_bytes() -> st.SearchStrategy[bytes]:
    """The one draw each example makes."""
    return st.binary(max_size=64)


def _answers_with_value_or_malformed(adapter: ProviderAdapter, body: bytes) -> Parsed | None:
    hint = adapter.reference_hint(body)  # must never raise
    assert hint is None or isinstance(hint, str)
    try:
        parsed = adapter.parse(body, CTX)
    except MalformedPayload as error:
        assert error.reason
        return None
    assert isinstance(parsed, Parsed) and isinstance(parsed.event_type, str)
    assert parsed.unmapped == (not parsed.observations)
    for obs in parsed.observations:
        assert isinstance(obs, PaymentObservation)
        assert obs.provider is adapter.provider
        assert obs.provider_time.utcoffset() is not None
        assert obs.amount_minor is None or obs.amount_minor >= 0
        assert obs.currency is None or (obs.currency.isupper() and len(obs.currency) == 3)
        assert hint == obs.provider_ref  # the record key names the payment the record is about
        assert PaymentObservation.from_bytes(obs.to_bytes()) == obs  # publishable as it stands
    return parsed


@dataclass(frozen=True)
class Gateway:
    """One parser under test, with the documented payloads its inputs are grown from."""

    adapter: ProviderAdapter
    seeds: list[dict[str, Any]]
    type_key: str | None
    types: list[str]


GATEWAYS = (
    Gateway(StripeAdapter(), STRIPE_SEEDS, "type", STRIPE_TYPES),
    Gateway(PaystackAdapter(), PAYSTACK_SEEDS, "event", PAYSTACK_TYPES),
    Gateway(MpesaAdapter(), MPESA_SEEDS, None, []),
)


# One example feeds all three parsers: each still gets 10,000 inputs, while Hypothesis's own
# per-example cost (most of the runtime) is paid once instead of three times.
@FUZZ
@given(fuzz=fuzz_bytes())
def test_every_parser_answers_every_body_with_a_value_or_malformed(fuzz):
    for gateway in GATEWAYS:
        body = make_body(fuzz, gateway.seeds, gateway.type_key, gateway.types)
        note(f"{gateway.adapter.provider.value}: {body[:400]!r}")
        parsed = _answers_with_value_or_malformed(gateway.adapter, body)
        if parsed is not None and gateway.adapter.provider is Provider.MPESA:
            assert all(not obs.verified for obs in parsed.observations)


AWKWARD = (
    None,
    True,
    -1,
    1.5,
    10**400,
    2**64,
    float("nan"),
    "",
    "x" * 300,
    "\ud800",
    "2026-13-45T99:00:00Z",
    [],
    {},
    [{"id": "x"}],
)


def test_every_field_of_every_documented_payload_survives_every_awkward_value():
    """Exhaustive where random sampling is thin: each field deleted, retyped, or made absurd."""
    checked = 0
    for gateway in GATEWAYS:
        for seed in gateway.seeds:
            for path in _paths(seed):
                for replacement in ("delete", "stringify", *AWKWARD):
                    doc = json.loads(json.dumps(seed))
                    parent = doc
                    for step in path[:-1]:
                        parent = parent[step]
                    if replacement == "delete":
                        del parent[path[-1]]
                    elif replacement == "stringify":
                        parent[path[-1]] = json.dumps(parent[path[-1]])
                    else:
                        parent[path[-1]] = replacement
                    _answers_with_value_or_malformed(gateway.adapter, json.dumps(doc).encode())
                    checked += 1
    assert checked > 5_000


def test_the_seeds_themselves_parse():
    for adapter, seeds in (
        (StripeAdapter(), STRIPE_SEEDS),
        (PaystackAdapter(), PAYSTACK_SEEDS),
        (MpesaAdapter(), MPESA_SEEDS),
    ):
        for seed in seeds:
            parsed = _answers_with_value_or_malformed(adapter, to_body(seed))
            assert parsed is not None and parsed.observations, seed
