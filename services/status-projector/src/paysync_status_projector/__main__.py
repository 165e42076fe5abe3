"""Run the status-projector: `paysync-status-projector`."""

from __future__ import annotations

import uvicorn

from paysync_status_projector.app import create_app
from paysync_status_projector.settings import StatusProjectorSettings


def main() -> None:
    """Consume observations and relay status changes until SIGTERM."""
    settings = StatusProjectorSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
