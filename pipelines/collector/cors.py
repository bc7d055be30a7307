"""CORS as an allow-list that is enforced, not only advertised.

Browsers send simple requests (a `text/plain` POST, a beacon) without asking first, and a plain CORS
layer still lets them through to the app. Here a request from an origin not on the list is refused
with 403 before it reaches an endpoint, preflight or not.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Content-Encoding"
PREFLIGHT_MAX_AGE = "600"


class CorsAllowList:
    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin.rstrip("/") in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin == f"{scope['scheme']}://{headers.get('host', '')}":
            await self.app(scope, receive, send)
            return
        if not self.allows(origin):
            refusal = JSONResponse(
                {"success": False, "error": f"origin {origin} is not allowed"}, status_code=403
            )
            await refusal(scope, receive, send)
            return
        cors = {
            "Access-Control-Allow-Origin": origin,
            # beacons are sent with credentials; echoing the origin (never *) makes that valid
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = Response(
                status_code=204,
                headers={
                    **cors,
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                },
            )
            await preflight(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.update(cors)
                # the tracker reads Retry-After to pace its retries
                response_headers["Access-Control-Expose-Headers"] = "Retry-After"
            await send(message)

        await self.app(scope, receive, send_with_cors)
