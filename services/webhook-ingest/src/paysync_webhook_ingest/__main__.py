"""Run webhook-ingest: `paysync-webhook-ingest` or `python -m paysync_webhook_ingest`."""

from __future__ import annotations

from paysync_core.web import serve
from paysync_webhook_ingest.app import create_app
from paysync_webhook_ingest.settings import WebhookIngestSettings


def main() -> None:
    """Serve the webhook endpoints (and run the normalizer) until SIGTERM."""
    settings = WebhookIngestSettings()
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
