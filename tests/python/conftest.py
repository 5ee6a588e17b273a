"""Starts the reference server once for the session: `sockline-server --dev` on 127.0.0.1:0
(its address read from the `listening on http://HOST:PORT` line), with known secrets so the
tests mint their own tokens. SOCKLINE_SERVER_BIN names the binary (default:
target/debug/sockline-server, built by `make server`)."""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from wire import Wire, mint_token, new_client_id

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_MS = 1000
AUTH_TIMEOUT_MS = 1000


def server_disagrees(reason: str):
    """Marks a test whose spec rule the reference server does not follow yet (the server is the
    side to fix). Strict: once the server is fixed the test passes, the run fails, and the
    marker must go."""
    return pytest.mark.xfail(strict=True, reason=f"server disagrees with PROTOCOL.md: {reason}")


@dataclass
class Server:
    host: str
    port: int
    jwt_secret: str
    server_key: str

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def token(self, user: str, ttl_s: int = 3600, **claims) -> str:
        return mint_token(self.jwt_secret, user, ttl_s, **claims)

    def wire(self, answer_pings: bool = True) -> Wire:
        return Wire(self.ws_url, answer_pings)

    def authed(self, user: str, **members) -> tuple[Wire, dict]:
        """A socket authenticated as `user` (with a fresh client id unless one is given)."""
        wire = self.wire()
        members.setdefault("client", new_client_id())
        frame = wire.auth(self.token(user), **members)
        assert frame["type"] == "authenticated", frame
        return wire, frame


def _start(bin_path: Path, *extra: str):
    jwt_secret = secrets.token_hex(16)
    server_key = secrets.token_hex(16)
    env = dict(os.environ, SOCKLINE_JWT_SECRET=jwt_secret, SOCKLINE_SERVER_KEY=server_key,
               RUST_LOG="warn")
    process = subprocess.Popen(
        [str(bin_path), "--dev", "--addr", "127.0.0.1:0", *extra],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )
    first = process.stdout.readline().strip()
    prefix = "listening on http://"
    if not first.startswith(prefix):
        process.kill()
        raise RuntimeError(f"unexpected first line from {bin_path}: {first!r}")
    host, port = first[len(prefix):].rsplit(":", 1)
    return process, Server(host, int(port), jwt_secret, server_key)


@pytest.fixture(scope="session")
def server():
    bin_path = Path(os.environ.get("SOCKLINE_SERVER_BIN", ROOT / "target/debug/sockline-server"))
    if not bin_path.exists():
        pytest.exit(f"{bin_path} not found: build it with `make server`", returncode=2)
    process, running = _start(
        bin_path,
        "--heartbeat-ms", str(HEARTBEAT_MS),
        "--auth-timeout-ms", str(AUTH_TIMEOUT_MS),
    )
    try:
        yield running
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=10) == 0, "the server did not exit 0 on SIGTERM"
        finally:
            if process.poll() is None:
                process.kill()


@pytest.fixture
def user() -> str:
    """A user id no other test uses."""
    return f"py-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def room() -> str:
    """A chat room no other test uses."""
    return f"chat:py-{uuid.uuid4().hex[:12]}"
