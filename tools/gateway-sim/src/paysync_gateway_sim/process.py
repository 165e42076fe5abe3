"""The simulator as its own OS process: for the tests' fixture, `make dev` and scripts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SimulatorProcess:
    """The simulator running as its own OS process, logging to a file."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        *,
        seed: int = 0,
        args: Sequence[str] = (),
        log_path: Path | None = None,
        ready_timeout: float = 20.0,
        port: int | None = None,
        log_level: str = "warning",
    ) -> SimulatorProcess:
        """Start on `port` (default: a free one, a lost race retried) and wait until /_sim/health answers."""
        log_path = log_path or Path(tempfile.mkdtemp(prefix="gateway-sim-")) / "simulator.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(1 if port else 3):
            chosen = port or free_port()
            command = [
                sys.executable,
                "-m",
                "paysync_gateway_sim",
                "serve",
                "--port",
                str(chosen),
                "--seed",
                str(seed),
                "--log-level",
                log_level,
                *args,
            ]
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            started = cls(chosen, log_path, process)
            if started._wait_ready(ready_timeout):
                return started
            started.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the gateway simulator did not start; its log ends:\n{tail}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_sim/health", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within `grace` seconds."""
        stop_process_group(self.process, grace)


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to a process started in its own session, then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
