"""Run the status-projector: `paysync-status-projector`."""

from __future__ import annotations

from paysync_core.web import serve
from paysync_status_projector.app import create_app
from paysync_status_projector.settings import StatusProjectorSettings


def main() -> None:
    """Consume observations and relay status changes until SIGTERM."""
    settings = StatusProjectorSettings()
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
