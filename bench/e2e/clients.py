"""The bench's clients, each a `bench/loadgen` program of its own: stream clients, the poller, the sender.

Stream clients (`loadgen sse`) and the poller (`loadgen poll`) run while the sender (`loadgen`, open
loop) sends; Go keeps them cheap, so the two cores go to the services. Each prints its progress on
standard output and stops when its standard input closes, after the bench has read its CPU time.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from stack import Stack
from webhooks import Webhook

from paysync_dev import paths
from paysync_dev.procstat import cpu_seconds

LOADGEN = paths.repo_root() / ".cache" / "bin" / "loadgen"


@dataclass(frozen=True)
class StreamClient:
    """One live-stream client: a tenant's console (the whole tenant) or a page watching one entity."""

    tenant: int
    entity: tuple[str, str] | None = None  # (domain, entity_id)

    @property
    def kind(self) -> str:
        """`console` (tenant-wide) or `entity` (one entity, through a stream token)."""
        return "console" if self.entity is None else "entity"

    def receives(self, hook: Webhook) -> bool:
        """Whether this client should get the webhook's status change."""
        if hook.tenant != self.tenant:
            return False
        return self.entity is None or self.entity == (hook.domain, hook.entity_id)


def layout(
    hooks: list[Webhook], tenants: int, consoles: int, console_tenants: int, entities: int
) -> list[StreamClient]:
    """`consoles` clients on each of the first `console_tenants` tenants, and `entities` clients each
    watching the entity of one webhook, those webhooks spread evenly over the phase."""
    clients = [StreamClient(t) for _ in range(consoles) for t in range(min(tenants, console_tenants))]
    step = len(hooks) / entities if entities else 0
    for n in range(min(entities, len(hooks))):
        hook = hooks[int(step * n + step / 2)]
        clients.append(StreamClient(hook.tenant, (hook.domain, hook.entity_id)))
    return clients


def stream_requests(stack: Stack, clients: list[StreamClient]) -> list[dict]:
    """Each client's `GET /v1/stream`: a console with the tenant's API key, an entity page with a
    stream token scoped to its entity (as a browser's `EventSource` would, no headers)."""
    lines = []
    with httpx.Client(base_url=stack.api, timeout=30) as http:
        for c in clients:
            tenant = stack.tenants[c.tenant]
            if c.entity is None:
                lines.append(
                    {
                        "url": f"{stack.api}/v1/stream",
                        "header": {"Authorization": [f"Bearer {tenant.api_key}"]},
                    }
                )
                continue
            answer = http.post(
                "/v1/stream-tokens",
                headers=tenant.auth,
                json={"domain": c.entity[0], "entity_id": c.entity[1]},
            )
            answer.raise_for_status()
            lines.append({"url": f"{stack.api}/v1/stream?token={answer.json()['token']}", "header": {}})
    return lines


def poll_requests(
    stack: Stack, hooks: list[Webhook], due_us: Callable[[int], int], every_nth: int
) -> list[dict]:
    """Every `every_nth` webhook's payment, read from when the webhook is due until it has succeeded."""
    return [
        {
            "index": h.index,
            "url": f"{stack.api}/v1/payments/{h.payment_id}",
            "due_us": due_us(h.index),
            "want": "succeeded",
            "header": {"Authorization": [f"Bearer {stack.tenants[h.tenant].api_key}"]},
        }
        for h in hooks[::every_nth]
    ]


def write_lines(rows: list[dict], path: Path) -> Path:
    """JSON lines, for a loadgen program to read."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class GoClient:
    """A `loadgen sse` or `loadgen poll` process: its latest progress line, its CPU, stopped on request."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [str(LOADGEN), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.progress: dict[str, int] = {}
        self.done = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            words = line.split()
            if words and words[0] == "done":
                self.done = True
            self.progress = {k: int(v) for k, _, v in (w.partition("=") for w in words if "=" in w)}

    def wait_until(
        self, check: Callable[[dict[str, int]], bool], timeout: float, stall: float | None = None
    ) -> bool:
        """Wait until `check(progress)` holds (True), the process ends, `timeout` passes, or, with
        `stall`, `received` has not grown for that long (False)."""
        deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
        while time.monotonic() < deadline and self.process.poll() is None:
            if check(self.progress):
                return True
            received = self.progress.get("received")
            if received != last:
                last, since = received, time.monotonic()
            elif stall is not None and time.monotonic() - since > stall:
                return False
            time.sleep(0.05)
        return check(self.progress)

    def cpu(self) -> float:
        """CPU seconds used so far (read before `finish`)."""
        return cpu_seconds(self.process.pid)

    def finish(self, timeout: float = 60) -> None:
        """Close its standard input (it writes its file and exits) and wait for it."""
        with contextlib.suppress(BrokenPipeError, OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)
        if self.process.returncode != 0:
            raise RuntimeError(f"{self.process.args} exited with {self.process.returncode}")


def send(args: list[str]) -> tuple[dict, float]:
    """Run the sender to the end: its JSON report and the CPU seconds it used (its own rusage)."""
    process = subprocess.Popen([str(LOADGEN), *args], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"loadgen exited with {process.returncode}")
    return json.loads(out), usage.ru_utime + usage.ru_stime
