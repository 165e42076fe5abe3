"""What a module logs, for tests: structlog's events, captured whichever tests ran before.

`structlog.testing.capture_logs` alone misses a module's logger that logged before in the same test
session: it swaps the capture into the processor list configured now, in place, but paysync's logging
caches each logger on first use (`cache_logger_on_first_use`) with the list configured then, and every
service app created in-process configures a new one. A module-level `log` first used under an earlier
configuration (another test started a service, a relay, a client) keeps writing to stderr and the test
sees nothing: in a full run a test waiting for a logged retry timed out, while it passed alone.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import structlog
from structlog.testing import capture_logs


@contextmanager
def captured_logs(*modules: ModuleType) -> Iterator[list[MutableMapping[str, Any]]]:
    """The events logged while in the block, including those of each module's `log` (a fresh logger
    stands in for it meanwhile, bound under the capture; the module's own is put back after)."""
    kept = [(module, module.log) for module in modules]
    with capture_logs() as logs:
        try:
            for module, _ in kept:
                setattr(module, "log", structlog.get_logger())  # noqa: B010 - any module's `log`
            yield logs
        finally:
            for module, log in kept:
                setattr(module, "log", log)  # noqa: B010
