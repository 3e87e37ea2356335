"""What the stand-in services share: a threaded HTTP server on 127.0.0.1 that
prints `URL <origin>` when ready and exits when its stdin closes (so a test
that drops it never leaves it behind), JSON answers, and checking an ID token
against an issuer's published keys (PyJWT, from scripts/mcp/.venv)."""

import json
import os
import secrets
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt


def serve(handler_class, on_ready=None):
    """Binds a free port on 127.0.0.1, then prints the ready line."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    if on_ready:
        on_ready(origin)

    def until_stdin_closes():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    print(f"URL {origin}", flush=True)
    server.serve_forever()


class Handler(BaseHTTPRequestHandler):
    """JSON in and out; quiet."""

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, 1024 * 1024))

    def json_body(self):
        try:
            value = json.loads(self.body() or b"null")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def bearer(self):
        value = self.headers.get("Authorization", "")
        return value[len("Bearer "):] if value.startswith("Bearer ") else None


def new_token(prefix):
    return prefix + secrets.token_urlsafe(24)


def discover(issuer):
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=10) as answer:
        return json.loads(answer.read())


class IdTokenChecker:
    """Checks an issuer's ID tokens: signature (its JWKS), iss, aud, exp."""

    def __init__(self, issuer, audience):
        self.issuer = issuer
        self.audience = audience
        self.keys = jwt.PyJWKClient(discover(issuer)["jwks_uri"])

    def claims(self, token):
        """The claims, or raises jwt.PyJWTError saying why not."""
        key = self.keys.get_signing_key_from_jwt(token).key
        return jwt.decode(
            token,
            key,
            algorithms=["RS256", "PS256", "ES256", "EdDSA"],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )


class Sessions:
    """Tokens a service issued: live until they expire or are revoked."""

    def __init__(self, prefix, ttl):
        self.prefix = prefix
        self.ttl = ttl
        self.live = {}
        self.lock = threading.Lock()

    def issue(self, subject):
        token = new_token(self.prefix)
        expires_at = time.time() + self.ttl
        with self.lock:
            self.live[token] = (subject, expires_at)
        return token, expires_at

    def subject(self, token):
        with self.lock:
            held = self.live.get(token or "")
        if held and held[1] > time.time():
            return held[0]
        return None

    def revoke_all(self):
        with self.lock:
            self.live.clear()
