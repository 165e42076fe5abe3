"""Each service's AsyncAPI document, built by FastStream from its code, names the contract of every topic.

A subscriber or publisher typed with its contract shows the contract's schema; one that reads bytes
(or a dict) shows none, and must be listed below with the reason its code gives.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from paysync_core import topics

ROOT = Path(__file__).resolve().parents[2]

#: (service, topic) subscribers that read bytes, and why (the same reason is a comment at the subscriber).
READS_BYTES = {
    ("webhook-ingest", topics.WEBHOOKS_RAW.name): "hot batch path; a bad record is dead-lettered",
    ("reconciler", topics.RECONCILE_TICKS.name): "a tick that does not parse is dead-lettered",
    ("reconciler", topics.RECONCILE_REQUESTS.name): "a request that does not parse is dead-lettered",
    # (its live-stream subscriber is typed; the app-webhook intake reads bytes)
    ("notifier", topics.PAYMENT_STATUS.name): "app-webhook intake: a bad change is dead-lettered",
    ("notifier", topics.ALERTS.name): "an alert that does not parse is dead-lettered",
}


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asyncapi_tool", ROOT / "tools" / "asyncapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


TOOL = _tool()


@pytest.mark.parametrize("service", sorted(TOOL.SERVICES))
def test_every_channel_carries_its_topics_contract(service: str) -> None:
    found = TOOL.channels(TOOL.document(service))
    assert found, f"{service} declares no subscriber or publisher"
    for channel in found:
        contract = topics.by_name(channel.address).message
        if channel.action == "receive" and (service, channel.address) in READS_BYTES:
            continue
        expected = set(contract.model_json_schema(mode="serialization")["properties"])
        assert (channel.payload, channel.fields) == (contract.__name__, expected), (
            f"{service}: {channel.action} on {channel.address} is typed {channel.payload}, not "
            f"{contract.__name__}: type it with its contract, or list why it reads bytes in READS_BYTES"
        )


def test_the_documents_cover_every_topic_a_service_reads() -> None:
    received = {
        channel.address
        for service in TOOL.SERVICES
        for channel in TOOL.channels(TOOL.document(service))
        if channel.action == "receive"
    }
    # paysync.payment-status.v1 is read by the notifier's own aiokafka feed (`StatusFeed`: every
    # partition, no group), like the projector's observations: not a FastStream subscriber.
    assert {topics.RECONCILE_REPLIES.name, topics.ALERTS.name} <= received
