"""The player's web app: static files (HTML, CSS, JS modules) served as they
are, with the security headers every page gets. The pages hold no logic of
the game: they call the same API as any other client."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "web"

# No inline script or style and no eval (script-src/style-src 'self' only),
# the API on this origin only, never framed, no plugins, forms post here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def is_page(path: str) -> bool:
    return path in ("/", "/admin") or path.startswith("/web/")


class PageHeaders:
    """Adds HEADERS to the pages (/, /admin) and /web/* (not to the JSON API,
    and not to /docs, whose Swagger UI loads its script from a CDN)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


# Where Google sign-in is not configured the page offers no button that
# could only answer 503: the button and its "or" are left out when served.
GOOGLE_BUTTON = (
    '    <p class="or small" data-t="or">or</p>\n'
    '    <a id="google" class="button google" href="/v1/auth/oauth/google"'
    ' data-t="google">Continue with Google</a>\n'
)


async def index(request: Request) -> Response:
    # Never cached: a new release's index names its modules afresh.
    headers = {"Cache-Control": "no-cache"}
    if request.app.state.oidc.configured:
        return FileResponse(STATIC / "index.html", headers=headers)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page.replace(GOOGLE_BUTTON, ""), headers=headers)


async def admin_index(request: Request) -> Response:
    """The admin console's page; everything in it goes through /admin/*,
    which refuses any token but an admin's (password and code)."""
    return FileResponse(STATIC / "admin.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """`/` is the player's page, `/admin` the console's, `/web/*` their
    files. Plain Starlette routes put first: no API dependency (rate limit,
    token) runs for a static file."""
    app.router.routes.insert(0, Route("/", index, methods=["GET", "HEAD"]))
    app.router.routes.insert(1, Route("/admin", admin_index, methods=["GET", "HEAD"]))
    app.mount("/web", StaticFiles(directory=STATIC), name="web")
    app.add_middleware(PageHeaders)
