"""The five services as separate OS processes: started, awaited until ready, stopped."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from paysync_gateway_sim.process import free_port

__all__ = ["SERVICES", "ServiceProcess", "free_port", "start_stack", "stop_stack"]

#: service name -> (console module, env prefix, default port)
SERVICES: dict[str, tuple[str, str, int]] = {
    "webhook-ingest": ("paysync_webhook_ingest", "PAYSYNC_WEBHOOK_INGEST_", 8001),
    "reconciler": ("paysync_reconciler", "PAYSYNC_RECONCILER_", 8002),
    "status-projector": ("paysync_status_projector", "PAYSYNC_STATUS_PROJECTOR_", 8003),
    "notifier": ("paysync_notifier", "PAYSYNC_NOTIFIER_", 8004),
    "api-gateway": ("paysync_api_gateway", "PAYSYNC_API_GATEWAY_", 8005),
}


@dataclass
class ServiceProcess:
    """One service running as its own process, logging to a file."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP endpoints."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Launch the process (in its own process group)."""
        module, prefix, _ = SERVICES[self.name]
        env = {
            **os.environ,
            **self.env,
            f"{prefix}PORT": str(self.port),
            f"{prefix}HOST": "127.0.0.1",
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until /readyz answers 200; RuntimeError with the log tail if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after the grace period."""
        self._signal(signal.SIGTERM)
        try:
            if self.process is not None:
                self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the service wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)


def start_stack(
    env: Mapping[str, str],
    log_dir: Path,
    *,
    ports: Mapping[str, int] | None = None,
    only: tuple[str, ...] = tuple(SERVICES),
) -> dict[str, ServiceProcess]:
    """Start the services and wait until each is ready; stops them all if one fails."""
    chosen = {name: (ports or {}).get(name) or free_port() for name in SERVICES}
    # Services that call each other learn the chosen ports, and share a token of this stack's own.
    wiring = {
        "PAYSYNC_API_GATEWAY_NOTIFIER_URL": f"http://127.0.0.1:{chosen['notifier']}",
        "PAYSYNC_INTERNAL_TOKEN": secrets.token_urlsafe(32),
        "PAYSYNC_API_GATEWAY_STREAM_TOKEN_SECRET": secrets.token_urlsafe(32),
        # STK pushes started through the API have their callbacks sent to this stack's webhook-ingest
        "PAYSYNC_API_GATEWAY_MPESA_CALLBACK_BASE_URL": f"http://127.0.0.1:{chosen['webhook-ingest']}",
    }
    procs = {
        name: ServiceProcess(name, chosen[name], {**wiring, **env}, log_dir / f"{name}.log") for name in only
    }
    for proc in procs.values():
        proc.start()
    try:
        for proc in procs.values():
            proc.wait_ready()
    except Exception:
        stop_stack(procs)
        raise
    return procs


def stop_stack(procs: Mapping[str, ServiceProcess]) -> None:
    """Stop every service, politely first."""
    for proc in procs.values():
        proc._signal(signal.SIGTERM)
    for proc in procs.values():
        proc.stop()
