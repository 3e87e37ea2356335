"""A stand-in for a server that runs the OIDC login itself and hands a CLI a
session token, as EdgePlane's CLI login does, for the tests of the example
plugin plugins/examples/python/cli_login.py.

- GET /auth/oidc/cli-initiate -> {authorize_url, cli_nonce, expires_at}: a
  pending login, with its own PKCE verifier, state and nonce, that lasts
  --login-ttl seconds. The authorize URL is the issuer's; the redirect
  comes back to this server.
- GET /auth/oidc/callback: the server's code exchange with the issuer
  (PKCE), the ID token checked (keys, iss, aud, nonce); the login becomes a
  one-time grant.
- GET /auth/oidc/cli-poll/<cli_nonce>: 404 {"status": "pending"} until then,
  200 {"status": "ready", "grant_id": "olg_..."} after; 404 once the pending
  login expired.
- POST /auth/oidc/exchange {"grant_id"} -> {"token": "mcs_...", "subject",
  "expires_at" (RFC 3339)}; a grant is good once.
- GET /api/me: 200 with a live session token, else 401.

The server registers itself at the issuer (RFC 7591) as a public client.
Test hooks: POST /test/revoke (every session ends), GET /test/stats.

    cli_login_server.py ISSUER [--session-ttl SECONDS] [--login-ttl SECONDS]
"""

import argparse
import base64
import datetime
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request

import jwt

from common import Handler, IdTokenChecker, Sessions, discover, new_token, serve

parser = argparse.ArgumentParser()
parser.add_argument("issuer")
parser.add_argument("--session-ttl", type=float, default=3600)
parser.add_argument("--login-ttl", type=float, default=120)
args = parser.parse_args()

provider = discover(args.issuer)
sessions = Sessions("mcs_", args.session_ttl)
lock = threading.Lock()
pending = {}   # cli_nonce -> login
by_state = {}  # state -> cli_nonce
grants = {}    # grant_id -> subject
stats = {"initiated": 0, "logins": 0, "polls": 0, "exchanges": 0, "api_ok": 0, "api_401": 0}
client = {}


def count(name):
    with lock:
        stats[name] += 1


def register(origin):
    """RFC 7591: a public client whose redirect comes back here."""
    request = urllib.request.Request(
        provider["registration_endpoint"],
        data=json.dumps({
            "redirect_uris": [f"{origin}/auth/oidc/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "client_name": "cli-login stand-in",
        }).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        registered = json.loads(answer.read())
    client.update(id=registered["client_id"], redirect=f"{origin}/auth/oidc/callback")
    client["checker"] = IdTokenChecker(args.issuer, registered["client_id"])


def pkce_challenge(verifier):
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Server(Handler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/auth/oidc/cli-initiate":
            return self.initiate()
        if url.path == "/auth/oidc/callback":
            return self.callback(urllib.parse.parse_qs(url.query))
        if url.path.startswith("/auth/oidc/cli-poll/"):
            return self.poll(url.path.rsplit("/", 1)[1])
        if url.path == "/api/me":
            subject = sessions.subject(self.bearer())
            if subject is None:
                count("api_401")
                return self.answer(401, {"error": "unauthorized"},
                                   [("WWW-Authenticate", 'Bearer error="invalid_token"')])
            count("api_ok")
            return self.answer(200, {"sub": subject})
        if url.path == "/test/stats":
            with lock:
                return self.answer(200, dict(stats))
        self.answer(404, {"error": "not_found"})

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/auth/oidc/exchange":
            return self.exchange()
        if path == "/test/revoke":
            sessions.revoke_all()
            return self.answer(200, {})
        self.answer(404, {"error": "not_found"})

    def initiate(self):
        count("initiated")
        cli_nonce, state = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        expires_at = time.time() + args.login_ttl
        with lock:
            pending[cli_nonce] = {"state": state, "verifier": verifier, "nonce": nonce,
                                  "expires_at": expires_at, "grant_id": None}
            by_state[state] = cli_nonce
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client["id"], "redirect_uri": client["redirect"],
            "scope": "openid email", "state": state, "nonce": nonce,
            "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256",
        })
        self.answer(200, {"authorize_url": f"{provider['authorization_endpoint']}?{query}",
                          "cli_nonce": cli_nonce, "expires_at": int(expires_at)})

    def page(self, status, text):
        data = f"<!doctype html><title>{text}</title><p>{text}</p>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def callback(self, query):
        state = (query.get("state") or [""])[0]
        code = (query.get("code") or [""])[0]
        with lock:
            cli_nonce = by_state.pop(state, None)
            login = pending.get(cli_nonce) if cli_nonce else None
        if not login or login["expires_at"] < time.time():
            return self.page(400, "This login is unknown or expired: start it again from the CLI.")
        if not code:
            return self.page(400, "The login was not completed.")
        form = urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": client["redirect"],
            "client_id": client["id"], "code_verifier": login["verifier"],
        }).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(provider["token_endpoint"], data=form),
                                        timeout=10) as answer:
                tokens = json.loads(answer.read())
            claims = client["checker"].claims(tokens["id_token"])
        except (OSError, ValueError, KeyError, jwt.PyJWTError) as error:
            return self.page(502, f"The login could not be completed: {error}")
        if claims.get("nonce") != login["nonce"]:
            return self.page(400, "The login's nonce does not match.")
        grant_id = new_token("olg_")
        with lock:
            grants[grant_id] = claims["sub"]
            login["grant_id"] = grant_id
        count("logins")
        self.page(200, "You are logged in. You may close this window and return to the CLI.")

    def poll(self, cli_nonce):
        count("polls")
        with lock:
            login = pending.get(cli_nonce)
            if login and login["expires_at"] < time.time():
                del pending[cli_nonce]
                login = None
            grant_id = login["grant_id"] if login else None
            if grant_id:
                del pending[cli_nonce]
        if not grant_id:
            return self.answer(404, {"status": "pending"})
        self.answer(200, {"status": "ready", "grant_id": grant_id})

    def exchange(self):
        count("exchanges")
        body = self.json_body()
        grant_id = body.get("grant_id") if body else None
        with lock:
            subject = grants.pop(grant_id, None) if isinstance(grant_id, str) else None
        if subject is None:
            return self.answer(400, {"error": "invalid_grant", "message": "unknown or used grant"})
        token, expires_at = sessions.issue(subject)
        when = datetime.datetime.fromtimestamp(int(expires_at), datetime.timezone.utc)
        self.answer(200, {"token": token, "subject": subject,
                          "expires_at": when.isoformat().replace("+00:00", "Z")})


serve(Server, on_ready=register)
