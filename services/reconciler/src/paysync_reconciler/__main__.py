"""Run the reconciler: `paysync-reconciler`."""

from __future__ import annotations

from paysync_core.web import serve
from paysync_reconciler.app import create_app
from paysync_reconciler.settings import ReconcilerSettings


def main() -> None:
    """Consume ticks and check requests until SIGTERM."""
    settings = ReconcilerSettings()
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
