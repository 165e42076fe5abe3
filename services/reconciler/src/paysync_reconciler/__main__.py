"""Run the reconciler: `paysync-reconciler`."""

from __future__ import annotations

import uvicorn

from paysync_reconciler.app import create_app
from paysync_reconciler.settings import ReconcilerSettings


def main() -> None:
    """Consume ticks and check requests until SIGTERM."""
    settings = ReconcilerSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
