"""On-demand checks: publish a ReconcileRequest, wait for its reply up to a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from paysync_core import topics
from paysync_core.contracts import ReconcileReply, ReconcileRequest
from paysync_core.errors import PaysyncError

#: Publishes a request and returns once the broker acknowledged it.
PublishRequest = Callable[[ReconcileRequest], Awaitable[object]]


class RequestNotSent(PaysyncError):
    """The broker did not take the check request: nobody will run it; the caller may retry."""

    code = "not_sent"


class RefreshCoordinator:
    """Matches replies to the requests this process is waiting on.

    `listening` is set once the reply listener has its partitions: a reply sent before then could
    be missed, so requests wait for it (and `/readyz` reports it).
    """

    def __init__(self, publish: PublishRequest) -> None:
        self._publish = publish
        self._waiting: dict[str, asyncio.Future[ReconcileReply]] = {}
        self.listening = asyncio.Event()

    def new_request(self, tenant: str, kind: str, **fields: object) -> ReconcileRequest:
        """A request with a fresh id, answered on the replies topic."""
        return ReconcileRequest(
            request_id=f"rr_{uuid.uuid4().hex}",
            tenant=tenant,
            kind=kind,
            reply_topic=topics.RECONCILE_REPLIES.name,
            requested_at=datetime.now(UTC),
            **fields,
        )

    async def ask(self, request: ReconcileRequest, timeout: float) -> ReconcileReply | None:
        """Publish and wait; None if no reply came within `timeout` (the check goes on regardless).

        Raises RequestNotSent when the broker did not take the request.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        future: asyncio.Future[ReconcileReply] = loop.create_future()
        self._waiting[request.request_id] = future  # before publishing: the reply may be quick
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self.listening.wait()
            try:
                await self._publish(request)
            except Exception as exc:
                raise RequestNotSent(f"the broker did not take check {request.request_id}: {exc}") from exc
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request.request_id, None)

    def deliver(self, reply: ReconcileReply) -> None:
        """Hand a reply to whoever waits for it here (replies for other processes are ignored)."""
        future = self._waiting.get(reply.request_id)
        if future is not None and not future.done():
            future.set_result(reply)
