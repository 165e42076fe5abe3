"""Nothing answered 200 is ever lost: the broker goes away, or webhook-ingest is killed, under load.

Each test runs its own broker (free ports, own data) and webhook-ingest as a separate process,
so stopping them disturbs no other test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from paysync_core import topics
from paysync_core.contracts import RawWebhook
from paysync_dev.fixtures import broker_of_its_own
from paysync_dev.kafka import KafkaProcess
from paysync_dev.stack import ServiceProcess, free_port
from paysync_dev.topic_reader import read_topic

from .conftest import stripe_body, stripe_headers

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaProcess]:
    with broker_of_its_own(tmp_path / "kafka", [topics.WEBHOOKS_RAW]) as broker:
        yield broker


def start_ingest(
    broker: KafkaProcess, database: str, keys: str, log: Path, produce_timeout: float
) -> ServiceProcess:
    """webhook-ingest as its own process on `broker`, answering 503 past `produce_timeout` seconds."""
    proc = ServiceProcess(
        "webhook-ingest",
        free_port(),
        {
            "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PAYSYNC_DATABASE_URL": database,
            "PAYSYNC_CREDENTIALS_KEYS": keys,
            "PAYSYNC_WEBHOOK_INGEST_PRODUCE_TIMEOUT_SECONDS": str(produce_timeout),
            "PAYSYNC_WEBHOOK_INGEST_RUN_NORMALIZER": "false",
        },
        log,
    )
    proc.start()
    proc.wait_ready()
    return proc


@pytest.fixture
def ingest_process(own_broker, migrated_database, credentials_keys, tmp_path) -> Iterator[ServiceProcess]:
    """webhook-ingest that gives up on the broker after 2 s (outage tests see 503s quickly)."""
    proc = start_ingest(own_broker, migrated_database, credentials_keys, tmp_path / "webhook-ingest.log", 2)
    yield proc
    proc.stop()


@pytest.fixture
def patient_ingest_process(
    own_broker, migrated_database, credentials_keys, tmp_path
) -> Iterator[ServiceProcess]:
    """webhook-ingest that waits up to 60 s for the broker: a stall the test makes is never a 503."""
    proc = start_ingest(own_broker, migrated_database, credentials_keys, tmp_path / "webhook-ingest.log", 60)
    yield proc
    proc.stop()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def in_flight(ingest: ServiceProcess) -> float:
    """The webhooks ingest is answering now, from its /metrics."""
    for line in httpx.get(f"{ingest.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("paysync_webhooks_in_flight "):
            return float(line.split()[1])
    raise AssertionError("paysync_webhooks_in_flight is not on /metrics")


@dataclass
class Load:
    """Senders POSTing distinct signed webhooks; every answer (or its absence) is recorded."""

    url: str
    secret: str
    answers: dict[str, int | None] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, threads: int = 4) -> list[threading.Thread]:
        workers = [threading.Thread(target=self._send_until_stopped, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        return workers

    def stop(self, workers: list[threading.Thread]) -> None:
        self._stop.set()
        for worker in workers:
            worker.join(30)

    def _send_until_stopped(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                body, session_id = stripe_body()
                try:
                    status: int | None = client.post(
                        self.url, content=body, headers=stripe_headers(body, self.secret)
                    ).status_code
                except httpx.HTTPError:
                    status = None  # never answered: the gateway will retry
                    time.sleep(0.05)
                with self._lock:
                    self.answers[session_id] = status

    def with_status(self, status: int | None) -> set[str]:
        return {ref for ref, got in self.answers.items() if got == status}


def refs_in_raw_topic(bootstrap: str) -> set[str]:
    refs = set()
    for record in asyncio.run(read_topic(bootstrap, topics.WEBHOOKS_RAW.name, timeout=30)):
        raw = RawWebhook.from_bytes(record.value)
        refs.add(record.key.decode().rsplit(":", 1)[-1])
        assert raw.verdict.value == "verified"
    return refs


def assert_nothing_acknowledged_was_lost(load: Load, bootstrap: str) -> None:
    in_topic = refs_in_raw_topic(bootstrap)
    acknowledged = load.with_status(200)
    assert acknowledged, "no request was answered 200"
    assert acknowledged <= in_topic, f"{len(acknowledged - in_topic)} acknowledged webhooks are missing"
    missing = set(load.answers) - in_topic
    assert {load.answers[ref] for ref in missing} <= {503, None}


def test_broker_outage_answers_503_loses_nothing_and_recovers(own_broker, ingest_process, tenant) -> None:
    load = Load(f"{ingest_process.url}/webhooks/{tenant.id}/stripe", tenant.stripe_webhook_secret)
    workers = load.run()
    # Each phase lasts until what it is for has happened, however fast or slow this host is.
    wait_until(lambda: len(load.with_status(200)) >= 50, "webhooks accepted before the outage", 60)
    own_broker.stop()
    wait_until(lambda: bool(load.with_status(503)), "a webhook answered 503 during the outage", 60)
    own_broker.start()
    accepted = len(load.with_status(200))
    wait_until(lambda: len(load.with_status(200)) >= accepted + 50, "webhooks accepted after the outage", 90)
    load.stop(workers)

    after = Load(load.url, load.secret)
    workers = after.run(threads=1)
    wait_until(lambda: len(after.answers) >= 20, "answers once the broker is back", 60)
    after.stop(workers)
    assert set(after.answers.values()) == {200}, "ingest did not recover by itself"
    load.answers.update(after.answers)
    assert_nothing_acknowledged_was_lost(load, own_broker.bootstrap)


def test_sigkill_under_load_loses_nothing_acknowledged(own_broker, ingest_process, tenant) -> None:
    load = Load(f"{ingest_process.url}/webhooks/{tenant.id}/stripe", tenant.stripe_webhook_secret)
    workers = load.run()
    wait_until(lambda: len(load.with_status(200)) >= 50, "webhooks accepted before the crash", 60)
    ingest_process.kill()
    wait_until(lambda: bool(load.with_status(None)), "a sender noticed the crash", 60)
    ingest_process.start()
    ingest_process.wait_ready()
    accepted = len(load.with_status(200))
    wait_until(lambda: len(load.with_status(200)) >= accepted + 50, "webhooks accepted after the restart", 90)
    load.stop(workers)

    assert_nothing_acknowledged_was_lost(load, own_broker.bootstrap)


def test_sigterm_answers_the_webhooks_in_flight_before_it_exits(
    own_broker, patient_ingest_process, tenant
) -> None:
    ingest = patient_ingest_process
    url = f"{ingest.url}/webhooks/{tenant.id}/stripe"
    bodies = [stripe_body() for _ in range(8)]
    answers: dict[str, int | None] = {}

    def send(body: bytes, session_id: str) -> None:
        try:
            answers[session_id] = httpx.post(
                url, content=body, headers=stripe_headers(body, tenant.stripe_webhook_secret), timeout=60
            ).status_code
        except httpx.HTTPError:
            answers[session_id] = None

    broker_pid = own_broker.pid()
    assert broker_pid is not None
    os.kill(broker_pid, signal.SIGSTOP)  # the broker stalls: every webhook now waits for its ack
    try:
        senders = [threading.Thread(target=send, args=pair) for pair in bodies]
        for sender in senders:
            sender.start()
        wait_until(lambda: in_flight(ingest) == len(bodies), "every webhook waiting for the broker")
        ingest.process.send_signal(signal.SIGTERM)  # shutdown begins with 8 requests in flight
        wait_until(lambda: "Waiting for connections to close" in ingest.log_tail(), "shutdown under way")
    finally:
        os.kill(broker_pid, signal.SIGCONT)  # well within the produce timeout
    for sender in senders:
        sender.join(60)

    assert answers == {session_id: 200 for _, session_id in bodies}
    # uvicorn re-raises SIGTERM once its shutdown is complete, so the exit status names the signal.
    assert ingest.process.wait(30) == -signal.SIGTERM
    assert "Application shutdown complete." in ingest.log_tail()
    assert {session_id for _, session_id in bodies} <= refs_in_raw_topic(own_broker.bootstrap)
