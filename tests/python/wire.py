"""A minimal sockline wire-protocol client, written from PROTOCOL.md (not from the Rust code).

Frames are JSON objects in WebSocket text frames (PROTOCOL.md §1); HS256 tokens are minted here
with the standard library (§7), so the server is checked against an encoder it did not write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import struct
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

# How long a helper waits for something that should happen before failing the test.
WAIT = 5.0


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint_token(secret: str, user: str, ttl_s: int = 3600, **claims: Any) -> str:
    """An HS256 JWT with `sub` and `exp` (§7)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = {"sub": user, "exp": int(time.time()) + ttl_s, **claims}
    payload = _b64url(json.dumps(body).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def new_client_id() -> str:
    """A client id: 16–64 characters of [A-Za-z0-9_-] from a real random source (§3 `auth`)."""
    return secrets.token_urlsafe(24)


@dataclass
class Closed:
    """How a socket ended: `code` is None when no close frame arrived (1006)."""

    code: int | None
    reason: str


class Wire:
    """One WebSocket speaking protocol frames. Answers every `ping` with `pong` (§3) unless
    `answer_pings` is off, and hands the test every other frame."""

    def __init__(self, url: str, answer_pings: bool = True):
        self.ws: ClientConnection = connect(url, open_timeout=WAIT, max_size=None, legacy=True)
        self.answer_pings = answer_pings
        self.pings: list[dict] = []

    # -- sending ------------------------------------------------------------------------------

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame))

    def send_text(self, text: str | bytes) -> None:
        """A raw text frame (bytes are sent as they are, valid UTF-8 or not)."""
        self.ws.send(text, text=True)

    def send_binary(self, raw: bytes) -> None:
        self.ws.send(raw)

    def auth(self, token: str, **members: Any) -> dict:
        """Sends `auth` and returns the server's answer (`authenticated` or `auth_error`)."""
        self.send({"type": "auth", "v": 1, "token": token, **members})
        return self.recv()

    # -- receiving ----------------------------------------------------------------------------

    def recv(self, timeout: float = WAIT) -> dict:
        """The next frame that is not a `ping`; fails the test on close or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame within {timeout} s")
            try:
                raw = self.ws.recv(timeout=left)
            except TimeoutError:
                raise AssertionError(f"no frame within {timeout} s") from None
            except ConnectionClosed as closed:
                raise AssertionError(f"socket closed instead: {_closed(closed)}") from None
            assert isinstance(raw, str), f"the server sent a binary frame: {raw!r}"
            frame = json.loads(raw)
            assert isinstance(frame, dict) and isinstance(frame.get("type"), str), raw
            if frame["type"] == "ping":
                self.pings.append(frame)
                if self.answer_pings:
                    self.send({"type": "pong", "t": frame["t"]})
                continue
            return frame

    def recv_until(self, wanted, timeout: float = WAIT) -> dict:
        """Skips frames until `wanted(frame)`."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if wanted(frame):
                return frame

    def recv_event(self, name: str, timeout: float = WAIT) -> dict:
        return self.recv_until(lambda f: f["type"] == "event" and f["event"] == name, timeout)

    def recv_ack(self, send_id: int, timeout: float = WAIT) -> dict:
        return self.recv_until(lambda f: f["type"] == "ack" and f.get("id") == send_id, timeout)

    def quiet(self, seconds: float, ignore=lambda f: False) -> list[dict]:
        """Every frame (pings answered, not returned) that arrives within `seconds`."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.recv(left)
            except AssertionError as e:
                if "no frame within" in str(e):
                    break
                raise
            if not ignore(frame):
                got.append(frame)
        return got

    def closed(self, timeout: float = WAIT) -> Closed:
        """Reads (and answers pings) until the socket ends; returns how it ended."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the socket did not close within {timeout} s")
            try:
                raw = self.ws.recv(timeout=left)
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                return _closed(closed)
            frame = json.loads(raw) if isinstance(raw, str) else {}
            if frame.get("type") == "ping" and self.answer_pings:
                self.send({"type": "pong", "t": frame["t"]})

    # -- ending -------------------------------------------------------------------------------

    def cut(self) -> None:
        """Drops the TCP connection at once with a RST: no close frame, no FIN."""
        sock = self.ws.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def close(self) -> None:
        self.ws.close()


def _closed(closed: ConnectionClosed) -> Closed:
    if closed.rcvd is None:
        return Closed(None, "")
    return Closed(closed.rcvd.code, closed.rcvd.reason)


def http(method: str, url: str, body: Any = None, bearer: str | None = None) -> tuple[int, Any]:
    """One HTTP request; returns (status, JSON body or None)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if bearer is not None:
        request.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")
