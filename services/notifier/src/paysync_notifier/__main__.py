"""Run the notifier: `paysync-notifier`."""

from __future__ import annotations

import uvicorn

from paysync_notifier.app import create_app
from paysync_notifier.settings import NotifierSettings


def main() -> None:
    """Consume status changes and alerts until SIGTERM."""
    settings = NotifierSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
