"""Test helpers for the live stream: status changes put on their topic, and a server-sent-events reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from paysync_core import topics
from paysync_core.contracts import PaymentStatusChanged
from paysync_core.kafka import DurableProducer


def status_change(tenant: str, **overrides: object) -> PaymentStatusChanged:
    """A Stripe payment of `tenant` that just succeeded, with ids of its own."""
    ref = f"cs_test_{uuid.uuid4().hex}"
    fields: dict[str, object] = {
        "event_id": f"psc_{uuid.uuid4().hex}",
        "tenant": tenant,
        "payment_id": str(uuid.uuid4()),
        "provider": "stripe",
        "provider_ref": ref,
        "domain": "jobs",
        "entity_id": f"job-{ref[-6:]}",
        "old_status": "pending",
        "new_status": "succeeded",
        "amount_minor": 2500,
        "currency": "USD",
        "sequence": 1,
        "observation_id": f"obs_{uuid.uuid4().hex}",
        "changed_at": datetime.now(UTC),
    }
    return PaymentStatusChanged.model_validate(fields | overrides)


async def publish_status_changes(producer: DurableProducer, changes: list[PaymentStatusChanged]) -> None:
    """Put status changes on `paysync.payment-status.v1`, as the projector's relay would; acknowledged."""
    await asyncio.gather(
        *(
            producer.send(
                topics.PAYMENT_STATUS.name,
                topics.PAYMENT_STATUS.key_for(c),
                c.to_bytes(),
            )
            for c in changes
        )
    )


@dataclass
class SseListener:
    """Reads one server-sent-events stream in the background, as a browser's EventSource would."""

    client: httpx.AsyncClient
    url: str
    headers: dict[str, str]
    events: list[dict] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    status_code: int | None = None
    #: The response's headers, and its body when it was not a stream (an error).
    response_headers: httpx.Headers | None = None
    error: dict | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> SseListener:
        """Begin reading; `opened` is set once the stream's first line (or an error answer) arrived."""
        self._task = asyncio.create_task(self._read())
        return self

    async def stop(self) -> None:
        """Stop reading and close the stream."""
        if self._task is not None:
            self._task.cancel()
            # A stream the server already ended (its process stopped) is no error of the test's.
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task

    def payment_ids(self) -> set[str]:
        """The payments of every `payment.status` event received so far."""
        return {e["data"]["payment_id"] for e in self.events if e.get("event") == "payment.status"}

    async def _read(self) -> None:
        try:
            async with self.client.stream("GET", self.url, headers=self.headers) as response:
                self.status_code, self.response_headers = response.status_code, response.headers
                if response.status_code != 200:
                    body = await response.aread()
                    self.error = json.loads(body) if body.startswith(b"{") else {"body": body.decode()}
                    return
                await self._collect(response)
        finally:
            self.opened.set()  # also when it failed: whoever waits for it looks at `status_code`

    async def _collect(self, response: httpx.Response) -> None:
        """Append each event ended by a blank line; one cut off midway is dropped, as browsers do."""
        event: dict = {}
        async for line in response.aiter_lines():
            self.opened.set()
            name, _, value = line.partition(":")
            if name in ("event", "id"):
                event[name] = value.strip()
            elif name == "data":
                event["data"] = json.loads(value)
            elif not line and event:
                self.events.append(event)
                event = {}


@dataclass
class ResumingListener(SseListener):
    """An SSE reader that reconnects as `EventSource` does, sending the id of the last event it got.

    A stream that ends or breaks, or an answer that is not 200 (503 while the notifier is away, 429
    while the old connection's slot is still held), is retried after `retry_seconds`.
    """

    retry_seconds: float = 1.0
    #: How many times the stream was opened again after the first.
    reconnects: int = 0

    def last_event_id(self) -> str | None:
        """The id of the last event received (what `Last-Event-ID` carries on a reconnect)."""
        return next((e["id"] for e in reversed(self.events) if "id" in e), None)

    def of_kind(self, kind: str) -> list[dict]:
        """The events received with this event name."""
        return [e for e in self.events if e.get("event") == kind]

    async def _read(self) -> None:
        while True:
            last = self.last_event_id()
            headers = self.headers | ({"Last-Event-ID": last} if last else {})
            try:
                async with self.client.stream("GET", self.url, headers=headers) as response:
                    self.status_code, self.response_headers = response.status_code, response.headers
                    self.opened.set()
                    if response.status_code == 200:
                        await self._collect(response)
            except httpx.HTTPError:
                pass  # the connection broke: reconnect, as a browser would
            self.reconnects += 1
            await asyncio.sleep(self.retry_seconds)
