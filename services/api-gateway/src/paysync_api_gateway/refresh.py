"""On-demand checks: publish a ReconcileRequest, wait for its reply up to a timeout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from paysync_core import topics
from paysync_core.contracts import ReconcileReply, ReconcileRequest

#: Publishes a request and returns once the broker acknowledged it.
PublishRequest = Callable[[ReconcileRequest], Awaitable[object]]


class RefreshCoordinator:
    """Matches replies to the requests this process is waiting on."""

    def __init__(self, publish: PublishRequest) -> None:
        self._publish = publish
        self._waiting: dict[str, asyncio.Future[ReconcileReply]] = {}

    def new_request(self, tenant: str, kind: str, **fields: object) -> ReconcileRequest:
        """A request with a fresh id, answered on the replies topic."""
        return ReconcileRequest(
            request_id=f"rr_{uuid.uuid4().hex}", tenant=tenant, kind=kind,
            reply_topic=topics.RECONCILE_REPLIES.name, requested_at=datetime.now(UTC), **fields,
        )

    async def ask(self, request: ReconcileRequest, timeout: float) -> ReconcileReply | None:
        """Publish and wait; None if no reply came within `timeout` (the check goes on regardless)."""
        future: asyncio.Future[ReconcileReply] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = future  # before publishing: the reply may be quick
        try:
            await self._publish(request)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request.request_id, None)

    def deliver(self, reply: ReconcileReply) -> None:
        """Hand a reply to whoever waits for it here (replies for other processes are ignored)."""
        future = self._waiting.get(reply.request_id)
        if future is not None and not future.done():
            future.set_result(reply)
