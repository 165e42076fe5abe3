"""Run webhook-ingest: `paysync-webhook-ingest` or `python -m paysync_webhook_ingest`."""

from __future__ import annotations

import uvicorn

from paysync_webhook_ingest.app import create_app
from paysync_webhook_ingest.settings import WebhookIngestSettings


def main() -> None:
    """Serve the webhook endpoints (and run the normalizer) until SIGTERM."""
    settings = WebhookIngestSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
