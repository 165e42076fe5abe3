"""Run the api-gateway: `paysync-api-gateway`."""

from __future__ import annotations

from paysync_api_gateway.app import create_app
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.web import serve


def main() -> None:
    """Serve the /v1 API until SIGTERM."""
    settings = ApiGatewaySettings()
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
