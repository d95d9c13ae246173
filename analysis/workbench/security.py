"""The rules every workbench request passes, for a server on a laptop or a shared host.

- **Host** (DNS rebinding): the Host header must name the bound address and port (for a
  loopback bind, ``localhost`` and ``127.0.0.1`` alike; for a wildcard bind, any IP literal:
  a rebinding attack needs a domain name).
- **CSRF**: a state-changing request (POST, PUT, PATCH, DELETE) needs the server's token in the
  ``X-CSRF-Token`` header (the pages carry it; another site cannot read it), and an ``Origin``
  or ``Sec-Fetch-Site`` header, where the browser sends one, must be this server's.
- **Body size**: bodies above ``max_body`` bytes are refused (413), declared or streamed.
- **Paths**: :func:`contained` resolves a user-given relative path inside a root, one plain
  name at a time, refusing ``..``, hidden names and symbolic links.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from analysis.core.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
MAX_BODY = 256 * 1024  # bytes: a definitions file or a form is a few kB
PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def new_token() -> str:
    """A fresh CSRF token (one per server start)."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "[::]", "")


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host header values accepted for a server bound to ``host:port`` (None: any IP literal)."""
    if is_wildcard(host):
        return None
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    names = {shown, *LOOPBACK_NAMES} if is_loopback(host) else {shown}
    return frozenset(f"{name}:{port}" for name in names)


def host_ok(header: str, allowed: frozenset[str] | None, port: int) -> bool:
    """Does the Host header name this server?"""
    if allowed is not None:
        return header.lower() in allowed
    name, _, given_port = header.rpartition(":")
    if given_port != str(port):
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name.lower() == "localhost"
    return True


class SecurityMiddleware:
    """ASGI middleware enforcing the Host, CSRF/Origin and body-size rules (see the module doc)."""

    def __init__(self, app: ASGIApp, *, host: str, port: int, token: str, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.port = port
        self.allowed = allowed_hosts(host, port)
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not host_ok(host, self.allowed, self.port):
            await _refuse(send, 400, f"Host {host!r} is not this server (DNS rebinding protection)")
            return
        if scope["method"] not in SAFE_METHODS:
            problem = self._cross_site(headers, host)
            if problem:
                await _refuse(send, 403, problem)
                return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _refuse(send, 413, f"request body larger than {self.max_body} bytes")
            return
        await self.app(scope, self._limited(receive), _with_headers(send))

    def _cross_site(self, headers: dict[str, str], host: str) -> str | None:
        """Why a state-changing request is refused, or None."""
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            return f"foreign Origin {origin!r}"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "cross-site request"
        given = headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return "missing or invalid CSRF token (reload the page)"
        return None

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that stops a streamed body past the limit."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        return wrapped


class BodyTooLarge(Exception):
    """A streamed body went past the limit (turned into a 413 by the app)."""


SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return wrapped


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await _with_headers(send)({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def check_part(part: str, what: str = "name") -> str:
    """One path component: letters, digits, '_', '-', '.'; not hidden, not '..'."""
    if not PART.fullmatch(part or "") or ".." in part:
        raise ConfigError(f"{what} {part!r}: use letters, digits, '_', '-' and '.' (no paths, no leading dot)")
    return part


def contained(root: Path, parts: Iterable[str], what: str = "path") -> Path:
    """``root/parts...``, each part a plain name (:func:`check_part`), no symbolic link on the
    way; the result lies inside ``root`` (ConfigError otherwise). It need not exist."""
    root = Path(root)
    path = root
    for part in parts:
        path = path / check_part(part, what)
        if path.is_symlink():
            raise ConfigError(f"{what} {path.relative_to(root)}: symbolic links are refused")
    if not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"{what}: outside its root")
    return path


def split(relative: str) -> list[str]:
    """A URL path below a root, as its parts (empty parts dropped)."""
    return [part for part in relative.split("/") if part]
