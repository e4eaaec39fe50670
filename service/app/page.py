"""The try-it page at `/`: static HTML, CSS and JavaScript shipped in service/app/static/.

The files are read once when the router is built, so serving them costs a dict lookup. They
are same-origin only and the page works offline, which is what lets the Content-Security-Policy
below forbid everything else (no inline script or style, no other origin, no framing).
"""

from __future__ import annotations

import hashlib
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.errors import ApiError

# The key marker in index.html becomes "required" when API_KEY is set, so the page asks for the
# key before the first request instead of after a 401.
API_KEY_MARKER = 'data-api-key="optional"'
ASSETS = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Reviews travel in the page's query string (/?text=...): never pass them on.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class StaticFile:
    """One file's bytes with its validators, so a reload that changed nothing is a bare 304."""

    def __init__(self, body: bytes, media_type: str) -> None:
        self.body = body
        self.media_type = media_type
        self.etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'

    def response(self, request: Request) -> Response:
        headers = {**SECURITY_HEADERS, "ETag": self.etag, "Cache-Control": "no-cache"}
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def _read(name: str) -> bytes:
    return resources.files("service.app").joinpath("static", name).read_bytes()


def load_page(api_key_required: bool) -> tuple[StaticFile, dict[str, StaticFile]]:
    """index.html (with the API-key flag set) and the assets it links, from the package."""
    html = _read("index.html").decode("utf-8")
    if API_KEY_MARKER not in html:
        raise RuntimeError(f"service/app/static/index.html lost its {API_KEY_MARKER} marker")
    if api_key_required:
        html = html.replace(API_KEY_MARKER, 'data-api-key="required"')
    index = StaticFile(html.encode("utf-8"), "text/html; charset=utf-8")
    return index, {name: StaticFile(_read(name), media) for name, media in ASSETS.items()}


def build_page_router(api_key_required: bool) -> APIRouter:
    index, assets = load_page(api_key_required)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page(request: Request) -> Response:
        """The try-it page; `/?text=...` fills the box and scores it at once (in the browser)."""
        return index.response(request)

    @router.get("/static/{name}")
    async def asset(request: Request, name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise ApiError(404, f"No static file {name!r}")
        return found.response(request)

    return router
