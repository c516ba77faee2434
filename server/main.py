"""Entry point: `python -m server.main [--config FILE] [--port N] ...`."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from server import logs
from server.app import create_server
from server.settings import Settings, load_settings

log = logging.getLogger("llmserve")


async def serve(settings: Settings) -> None:
    app = await create_server(settings)
    if app.metrics_port:
        log.info("metrics on http://%s:%d/metrics", settings.metrics.host, app.metrics_port,
                 extra={"metrics_port": app.metrics_port})
    # The line supervisors and tests wait for; JSON with the port when logs are JSON.
    logs.announce(log, f"llmserve gRPC listening on {settings.host}:{app.port}", port=app.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: NOT_SERVING, then up to %.0f s for in-flight calls", settings.grace_period_s)
    await app.stop()


def main(argv: list[str] | None = None) -> int:
    settings = load_settings(argv)
    logs.configure(settings.log, settings.log_level)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
