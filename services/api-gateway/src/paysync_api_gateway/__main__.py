"""Run the api-gateway: `paysync-api-gateway`."""

from __future__ import annotations

import uvicorn

from paysync_api_gateway.app import create_app
from paysync_api_gateway.settings import ApiGatewaySettings


def main() -> None:
    """Serve the /v1 API until SIGTERM."""
    settings = ApiGatewaySettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
