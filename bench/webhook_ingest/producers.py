"""Producer A/B: aiokafka (webhook-ingest's producer today) against confluent-kafka (librdkafka), one run.

    .venv/bin/python bench/webhook_ingest/producers.py [--count 20000] [--concurrency 32] [--rounds 2]

Every producer sends the same `count` raw records, each webhook-ingest's `raw_record` of a distinct
signed `checkout.session.completed` under its real key, to the raw topic of a broker of its own, with
the same guarantees: acks=all, idempotence, linger 2 ms, keys placed by murmur2 as the Java client
and aiokafka place them. `concurrency` senders each await their record's acknowledgement (within
`asyncio.timeout`, as `accept_webhook` does) before sending the next, as webhook-ingest's requests
do; the loop is uvloop, as under uvicorn. Measured: this process's CPU per record (every thread,
librdkafka's own included), records/s (wall clock) and the broker's CPU per record. The producers
take turns, `rounds` times, so drift on a shared host shows as a spread rather than as a winner.
Printed as a table; the same in bench/results/webhook-ingest-producers.json.

The confluent-kafka producers are awaited the way FastStream's confluent broker does it: `produce`
on the event loop, delivery reports served by `poll` in a thread and handed to the loop, one
`call_soon_threadsafe` per delivery (`confluent-kafka`) or one per `poll` call with every delivery
it served (`confluent-kafka, batched`). librdkafka's own `AIOProducer` is not measured: it buffers
records and flushes on a batch size or a timer (1 s by default), built for throughput, not for
awaiting one record per request.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import confluent_kafka
import typer
import uvloop
from breakdown import webhooks

from paysync_core import topics
from paysync_core.contracts import Provider, Verdict
from paysync_core.kafka import DurableProducer, provision_topics
from paysync_core.providers import adapter_for
from paysync_core.topics import raw_webhook_key
from paysync_dev import kafka, paths
from paysync_dev.procstat import cpu_seconds
from paysync_webhook_ingest.service import raw_record

RESULTS = Path(__file__).resolve().parents[1] / "results"
TOPIC = topics.WEBHOOKS_RAW.name
#: What `accept_webhook` bounds each publish with (`PAYSYNC_WEBHOOK_INGEST_PRODUCE_TIMEOUT_SECONDS`).
TIMEOUT_SECONDS = 5.0

#: Sends one (key, value) and returns once the broker acknowledged it.
Send = Callable[[bytes, bytes], Awaitable[object]]


def raw_records(count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) as webhook-ingest publishes them for `count` distinct signed Stripe webhooks."""
    stripe = adapter_for(Provider.STRIPE)
    out = []
    for request in webhooks(count):
        key = raw_webhook_key(request.tenant, Provider.STRIPE, stripe.reference_hint(request.body))
        out.append((key, raw_record(request, Provider.STRIPE, Verdict.VERIFIED, str(uuid.uuid4()))))
    return out


class ConfluentProducer:
    """confluent-kafka's Producer awaited from asyncio, with the same guarantees as `DurableProducer`.

    `produce` runs on the event loop (it only queues the record in librdkafka); a thread serves the
    delivery reports with `poll` and resolves each record's future on the loop, per delivery as
    FastStream does, or once per `poll` with all it served (`batched`), one loop wake-up for many.
    """

    def __init__(self, bootstrap: str, *, batched: bool) -> None:
        self._producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "bench-producers",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                "partitioner": "murmur2_random",  # the Java client's and aiokafka's placement of keys
            }
        )
        self._batched = batched
        self._served: list[tuple[asyncio.Future[object], Any, Any]] = []
        self._running = False
        self._poller: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Fetch the cluster's metadata (librdkafka connects lazily), then start serving deliveries."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._producer.list_topics, TOPIC, 10)
        self._running = True
        self._poller = threading.Thread(target=self._serve_deliveries, name="delivery-reports", daemon=True)
        self._poller.start()

    async def stop(self) -> None:
        """Stop serving deliveries, then deliver what is still queued (its reports served by `flush`)."""
        self._running = False
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        await asyncio.to_thread(self._producer.flush, 10)

    async def send(self, key: bytes, value: bytes) -> object:
        """Publish and return once every in-sync replica has the record."""
        assert self._loop is not None, "start() the producer first"
        acknowledged: asyncio.Future[object] = self._loop.create_future()
        self._producer.produce(TOPIC, value, key, on_delivery=partial(self._delivered, acknowledged))
        return await acknowledged

    def _serve_deliveries(self) -> None:
        while self._running:
            self._producer.poll(0.1)
            if self._served:
                served, self._served = self._served, []
                assert self._loop is not None
                self._loop.call_soon_threadsafe(_settle_all, served)

    def _delivered(self, acknowledged: asyncio.Future[object], error: Any, message: Any) -> None:
        # In the poll thread, holding the GIL.
        if self._batched:
            self._served.append((acknowledged, error, message))
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_settle, acknowledged, error, message)


def _settle(acknowledged: asyncio.Future[object], error: Any, message: Any) -> None:
    if acknowledged.done():  # the sender gave up (timeout)
        return
    if error is not None:
        acknowledged.set_exception(confluent_kafka.KafkaException(error))
    else:
        acknowledged.set_result(message)


def _settle_all(served: list[tuple[asyncio.Future[object], Any, Any]]) -> None:
    for acknowledged, error, message in served:
        _settle(acknowledged, error, message)


@asynccontextmanager
async def aiokafka_producer(bootstrap: str) -> AsyncIterator[Send]:
    """webhook-ingest's producer as it runs: `DurableProducer.send`, aiokafka underneath."""
    producer = DurableProducer(bootstrap, client_id="bench-producers", linger_ms=2)
    await producer.start()
    try:
        yield partial(producer.send, TOPIC)
    finally:
        await producer.stop()


@asynccontextmanager
async def confluent_producer(bootstrap: str, *, batched: bool) -> AsyncIterator[Send]:
    """confluent-kafka awaited from asyncio (see `ConfluentProducer`)."""
    producer = ConfluentProducer(bootstrap, batched=batched)
    await producer.start()
    try:
        yield producer.send
    finally:
        await producer.stop()


PRODUCERS = {
    "aiokafka": aiokafka_producer,
    "confluent-kafka": partial(confluent_producer, batched=False),
    "confluent-kafka, batched": partial(confluent_producer, batched=True),
}


async def send_all(send: Send, records: list[tuple[bytes, bytes]], concurrency: int) -> None:
    """`concurrency` senders, each awaiting its record's acknowledgement before taking the next."""
    queue = iter(records)

    async def sender() -> None:
        for key, value in queue:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                await send(key, value)

    await asyncio.gather(*(sender() for _ in range(concurrency)))


async def measure(
    name: str, bootstrap: str, broker_pid: int | None, records: list[tuple[bytes, bytes]], concurrency: int
) -> dict[str, float | str]:
    """One producer's figures for `records`, after a warm-up of a tenth of them."""
    async with PRODUCERS[name](bootstrap) as send:
        await send_all(send, records[: len(records) // 10], concurrency)
        cpu, wall, broker = time.process_time(), time.perf_counter(), cpu_seconds(broker_pid)
        await send_all(send, records, concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        broker = cpu_seconds(broker_pid) - broker
    return {
        "producer": name,
        "cpu_ms_per_record": round(1000 * cpu / len(records), 4),
        "records_per_s": round(len(records) / wall, 1),
        "broker_cpu_ms_per_record": round(1000 * broker / len(records), 4),
    }


def main(
    count: int = typer.Option(20_000, help="Records each producer sends (after a warm-up of a tenth)"),
    concurrency: int = typer.Option(32, help="Senders, each with one record in flight"),
    rounds: int = typer.Option(2, help="Times each producer takes its turn"),
) -> None:
    """Print each producer's CPU per record and records/s, turn by turn, and the medians."""
    broker = kafka.KafkaProcess.on_free_ports(paths.local_dir() / "bench" / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    try:
        asyncio.run(provision_topics(broker.bootstrap, specs=[topics.WEBHOOKS_RAW]))
        records = raw_records(count)
        rows = []
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            for _ in range(rounds):
                for name in PRODUCERS:
                    rows.append(
                        runner.run(measure(name, broker.bootstrap, broker.pid(), records, concurrency))
                    )
    finally:
        broker.stop()
    report(rows, records, concurrency)


def report(rows: list[dict[str, Any]], records: list[tuple[bytes, bytes]], concurrency: int) -> None:
    """The table, turn by turn, then each producer's medians and their ratio to aiokafka's."""
    size = statistics.mean(len(value) for _, value in records)
    print(f"{len(records)} records of {size:.0f} bytes on average, {concurrency} in flight\n")
    print("| producer | CPU ms/record | records/s | broker CPU ms/record |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['producer']} | {r['cpu_ms_per_record']} | {r['records_per_s']} "
            f"| {r['broker_cpu_ms_per_record']} |"
        )
    medians = {
        name: {
            figure: statistics.median(r[figure] for r in rows if r["producer"] == name)
            for figure in ("cpu_ms_per_record", "records_per_s", "broker_cpu_ms_per_record")
        }
        for name in PRODUCERS
    }
    base = medians["aiokafka"]
    print()
    for name, figures in medians.items():
        print(
            f"{name}: median {figures['cpu_ms_per_record']} ms CPU/record "
            f"({figures['cpu_ms_per_record'] / base['cpu_ms_per_record']:.2f} of aiokafka's), "
            f"{figures['records_per_s']} records/s "
            f"({figures['records_per_s'] / base['records_per_s']:.2f} of aiokafka's)"
        )
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {name: version(name) for name in ("aiokafka", "confluent-kafka")},
        "librdkafka": confluent_kafka.libversion()[0],
        "record_bytes": round(size),
        "concurrency": concurrency,
        "rows": rows,
        "medians": medians,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhook-ingest-producers.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    typer.run(main)
