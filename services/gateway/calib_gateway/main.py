"""The gateway service: HTTP API, admin page, uploads and downloads."""

from __future__ import annotations

import uvicorn

from calib_gateway.app import create_app
from calib_infra.runtime import Runtime


def main() -> None:
    runtime = Runtime("gateway")
    app = create_app(runtime)
    uvicorn.run(
        app,
        host=runtime.config.gateway_host,
        port=runtime.config.gateway_port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
