"""Serving a collector app in process for the collector's unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientSession, web


def serve(app: web.Application, scenario: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Serve ``app`` as `touchstream serve` does (gzip left to connectors.collector.body, no access
    log) on a free port, run ``scenario`` against it and return what it returned."""
    async def main() -> Any:
        runner = web.AppRunner(app, auto_decompress=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
                return await scenario(client)
        finally:
            await runner.cleanup()
    return asyncio.run(main())
