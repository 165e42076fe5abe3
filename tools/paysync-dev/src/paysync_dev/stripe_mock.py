"""Stripe's own mock (stripe-mock, driven by Stripe's OpenAPI spec) as a contract check for our clients.

`make test` builds it once into `.cache/bin/stripe-mock`; the `stripe_mock` fixture builds it
there too when it is missing, then runs it on a free loopback port for the session. stripe-mock
answers 400 to any parameter Stripe's spec does not have, and answers every retrieval with
Stripe's own fixture object, so our requests and our parsing are both checked against Stripe.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from paysync_dev import go_tools
from paysync_gateway_sim.process import free_port, stop_process_group

VERSION = "v0.203.0"
MODULE = "github.com/stripe/stripe-mock"
#: stripe-mock takes any key that looks like a test-mode secret key (its own example).
SECRET_KEY = "sk_test_123"  # noqa: S105 - stripe-mock's own example key


def binary() -> Path:
    """Where `make test` puts stripe-mock (`GOBIN=.cache/bin go install ...`)."""
    return go_tools.binary("stripe-mock")


def ensure_built() -> Path:
    """The stripe-mock binary, built with `go install` when missing; RuntimeError without Go."""
    return go_tools.ensure_installed("stripe-mock", MODULE, VERSION)


@dataclass
class StripeMock:
    """A running stripe-mock (plain HTTP on 127.0.0.1)."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        """The API base to give a client (`api_base`)."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_path: Path, ready_timeout: float = 30.0) -> StripeMock:
        """Start on a free port (a lost race retried) and wait until it answers."""
        executable = ensure_built()
        for _ in range(3):
            port = free_port()
            # Both listeners named: left out, HTTPS binds :12112 on every interface, and a second
            # stripe-mock on the machine (another checkout's tests) then fails to start.
            addresses = ["-http-addr", f"127.0.0.1:{port}", "-https-addr", f"127.0.0.1:{free_port()}"]
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [str(executable), *addresses],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            mock = cls(port, process, log_path)
            if mock._wait_ready(ready_timeout):
                return mock
            mock.stop()
        raise RuntimeError(f"stripe-mock did not start; its log ends:\n{log_path.read_text()[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                # Any answer in Stripe's shape (401 without a key) means it is serving.
                if httpx.get(f"{self.url}/v1/balance", timeout=1.0).status_code == 401:
                    return True
            time.sleep(0.05)
        return False

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        stop_process_group(self.process, grace)


@pytest.fixture(scope="session")
def stripe_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeMock]:
    """stripe-mock for the session; a machine that cannot build or run it fails the test, never skips."""
    try:
        mock = StripeMock.start(tmp_path_factory.mktemp("stripe-mock") / "stripe-mock.log")
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield mock
    finally:
        mock.stop()
