"""Run the notifier: `paysync-notifier`."""

from __future__ import annotations

from paysync_core.web import serve
from paysync_notifier.app import create_app
from paysync_notifier.settings import NotifierSettings


def main() -> None:
    """Consume status changes and alerts until SIGTERM."""
    settings = NotifierSettings()
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
