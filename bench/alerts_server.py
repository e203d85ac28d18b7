"""The Warroom app plus a bare ASGI "hello" endpoint in one uvicorn process (the alert intake bench server).

``/bench/hello`` is answered before any framework code runs: it is the ceiling the same server, process and
load generator can reach. Everything else goes to the real app, as ``warroom serve`` runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from warroom.app import create_app
from warroom.server import http_protocol
from warroom.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings(database_url=args.database_url, config=args.config, host="127.0.0.1", port=args.port)
    app = create_app(settings)

    @app.post("/bench/fastapi-noop", include_in_schema=False)
    async def fastapi_noop(request: Request) -> Response:
        # For context: the cheapest POST endpoint behind FastAPI's own layers (no work, no database).
        await request.body()
        return Response(b'{"ok":true}', status_code=202, media_type="application/json")

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/hello":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
                }
            )
            await send({"type": "http.response.body", "body": b"hello"})
            return
        await app(scope, receive, send)

    # The same server settings as ``warroom serve``.
    uvicorn.run(
        server,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http=http_protocol(settings),
    )


if __name__ == "__main__":
    main()
