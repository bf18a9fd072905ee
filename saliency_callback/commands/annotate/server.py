"""The local web server of `saliency-callback annotate` (standard library only).

It binds 127.0.0.1 only, answers only requests addressed to 127.0.0.1 or localhost (no DNS
rebinding), and wants the session's random token on every `/api/` request, so another page or
user of the machine cannot read or change the probes. Routes:

- `GET /` and `GET /static/...`: the page (package data under `annotate/static/`);
- `GET /api/meta`: names, labels, class names, sources, flags and boxes (JSON);
- `GET /api/images`: every probe's RGBA pixels; `GET /api/masks`: every mask, a byte a pixel;
- `POST /api/probe/<i>`: one probe's change (JSON, see `Session.update`), autosaved at once;
- `POST /api/save`: writes the probe file; `POST /api/quit`: stops the server.
"""

from __future__ import annotations

import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from saliency_callback.commands.annotate.session import Session, UpdateError

__all__ = ["AnnotateServer", "make_server"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_MAX_BODY = 64 * 2**20


def _static(name: str) -> bytes | None:
    """A file of the page, or `None` (also for names leaving the folder)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    node = resources.files("saliency_callback.commands.annotate").joinpath("static").joinpath(name)
    return node.read_bytes() if node.is_file() else None


class AnnotateServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` holding the session and its token."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, port: int, session: Session) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.session = session
        self.token = secrets.token_urlsafe(16)
        self.quit_requested = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/?token={self.token}"


class _Handler(BaseHTTPRequestHandler):
    server: AnnotateServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the UI
        return

    # -- replies ------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'",
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _allowed(self, api: bool) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            self._error(HTTPStatus.FORBIDDEN, f"requests must be addressed to 127.0.0.1: {host}")
            return False
        if api and not secrets.compare_digest(self.headers.get("X-Token", ""), self.server.token):
            self._error(HTTPStatus.FORBIDDEN, "missing or wrong token: open the printed URL")
            return False
        return True

    # -- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        api = path.startswith("/api/")
        if not self._allowed(api):
            return
        session = self.server.session
        if path == "/":
            path = "/static/index.html"
        if path.startswith("/static/"):
            name = path[len("/static/") :]
            body = _static(name)
            if body is None:
                self._error(HTTPStatus.NOT_FOUND, f"no such file: {name}")
                return
            suffix = name[name.rfind(".") :]
            self._send(200, body, _TYPES.get(suffix, "application/octet-stream"))
        elif path == "/api/meta":
            self._json(session.meta())
        elif path == "/api/images":
            self._send(200, session.image_bytes(), "application/octet-stream")
        elif path == "/api/masks":
            self._send(200, session.mask_bytes(), "application/octet-stream")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self._allowed(True):
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
            return
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "expected a JSON body")
            return
        session = self.server.session
        try:
            if path.startswith("/api/probe/") and isinstance(body, dict):
                index_text = path[len("/api/probe/") :]
                index: Any = int(index_text) if index_text.isdigit() else index_text
                session.update(index, body)
                self._json({"ok": True, "edits": session.edits})
            elif path == "/api/save":
                self._json({"ok": True, "summary": session.save(), "path": session.out})
            elif path == "/api/quit":
                self._json({"ok": True})
                self.server.quit_requested.set()
                threading.Thread(target=self.server.shutdown, daemon=True).start()
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such action: {path}")
        except UpdateError as err:
            self._error(HTTPStatus.BAD_REQUEST, str(err))
        except OSError as err:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot write: {err}")


def make_server(session: Session, port: int = 0) -> AnnotateServer:
    """A server for `session` on 127.0.0.1 (`port=0`: a free port).

    Raises:
        OSError: If the port cannot be bound (e.g. it is in use).
    """
    return AnnotateServer(port, session)
