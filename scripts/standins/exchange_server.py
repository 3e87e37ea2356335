"""Stand-ins for services that trade an OIDC login's token for their own,
for the tests of authplug-exchange. One process, three parts:

- POST /registry/auth: an MCP-registry-style JSON exchange. The body is
  {"oidc_token": ID_TOKEN}; the ID token is checked against the issuer's keys
  (iss, aud, exp) and a claim rule (--require-claim NAME=VALUE, as a Google
  Workspace `hd` rule). The answer is {"registry_token": ..., "expires_at":
  UNIX}. A subject token it no longer takes is 401; a claim rule the login
  does not meet is 403.
- POST /sts/token: RFC 8693 token exchange (oidc-provider has none), for the
  client `sts-client` with the secret `sts-secret` (HTTP Basic). It takes an
  ID token as subject_token (subject_token_type id_token) and an audience
  from --sts-audience; answers per section 2.2.1 (expires_in) and its errors
  per section 2.2.2 (invalid_grant, invalid_target, invalid_client,
  unsupported_grant_type, invalid_request).
- GET /api/whoami: 200 with a live token of either part, else 401.

Test hooks: POST /test/refuse-subjects (from now on, every subject token
seen so far is refused as stale), POST /test/revoke (every issued token is
refused), GET /test/stats.

    exchange_server.py ISSUER AUDIENCE [--require-claim NAME=VALUE]
        [--ttl SECONDS] [--sts-audience NAME]...
"""

import argparse
import base64
import hashlib
import threading
import urllib.parse

import jwt

from common import Handler, IdTokenChecker, Sessions, serve

parser = argparse.ArgumentParser()
parser.add_argument("issuer")
parser.add_argument("audience")
parser.add_argument("--require-claim", action="append", default=[])
parser.add_argument("--ttl", type=float, default=3600)
parser.add_argument("--sts-audience", action="append", default=[])
args = parser.parse_args()

checker = IdTokenChecker(args.issuer, args.audience)
rules = dict(rule.split("=", 1) for rule in args.require_claim)
sessions = Sessions("reg_", args.ttl)
lock = threading.Lock()
seen_subjects = set()
refused_subjects = set()
stats = {"exchanges": 0, "issued": 0, "refused_subject": 0, "refused_claims": 0,
         "sts_errors": 0, "api_ok": 0, "api_401": 0}


def count(name):
    with lock:
        stats[name] += 1


def fingerprint(token):
    return hashlib.sha256(token.encode()).hexdigest()


def check_subject(token):
    """(claims, None) or (None, (status, error, description))."""
    with lock:
        seen_subjects.add(fingerprint(token))
        refused = fingerprint(token) in refused_subjects
    if refused:
        return None, (401, "invalid_token", "the ID token is no longer accepted; present a fresh one")
    try:
        claims = checker.claims(token)
    except jwt.PyJWTError as error:
        return None, (401, "invalid_token", f"the ID token is not valid: {error}")
    for name, value in rules.items():
        if str(claims.get(name)) != value:
            return None, (403, "forbidden", f"the login does not meet the rule {name}={value} (its {name} is {claims.get(name)!r})")
    return claims, None


class Service(Handler):
    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/registry/auth":
            return self.registry()
        if path == "/sts/token":
            return self.sts()
        if path == "/test/refuse-subjects":
            with lock:
                refused_subjects.update(seen_subjects)
            return self.answer(200, {})
        if path == "/test/revoke":
            sessions.revoke_all()
            return self.answer(200, {})
        self.answer(404, {"error": "not_found"})

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/api/whoami":
            subject = sessions.subject(self.bearer())
            if subject is None:
                count("api_401")
                return self.answer(401, {"error": "invalid_token"},
                                   [("WWW-Authenticate", 'Bearer error="invalid_token"')])
            count("api_ok")
            return self.answer(200, {"sub": subject})
        if path == "/test/stats":
            with lock:
                return self.answer(200, dict(stats))
        self.answer(404, {"error": "not_found"})

    def registry(self):
        count("exchanges")
        body = self.json_body()
        token = body.get("oidc_token") if body else None
        if not isinstance(token, str) or not token:
            return self.answer(400, {"error": "invalid_request", "message": "oidc_token is required"})
        claims, refusal = check_subject(token)
        if refusal:
            status, error, description = refusal
            count("refused_subject" if status == 401 else "refused_claims")
            return self.answer(status, {"error": error, "message": description})
        registry_token, expires_at = sessions.issue(claims["sub"])
        count("issued")
        self.answer(200, {"registry_token": registry_token, "expires_at": int(expires_at)})

    def sts_error(self, status, error, description, headers=()):
        count("sts_errors")
        self.answer(status, {"error": error, "error_description": description}, headers)

    def sts(self):
        count("exchanges")
        expected = "Basic " + base64.b64encode(b"sts-client:sts-secret").decode()
        if self.headers.get("Authorization") != expected:
            return self.sts_error(401, "invalid_client", "client authentication failed",
                                  [("WWW-Authenticate", 'Basic realm="sts"')])
        form = urllib.parse.parse_qs(self.body().decode(), keep_blank_values=True)
        one = lambda name: (form.get(name) or [None])[0]
        if one("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return self.sts_error(400, "unsupported_grant_type", "only token exchange")
        if one("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token":
            return self.sts_error(400, "invalid_request", "subject_token_type must be an ID token")
        token = one("subject_token")
        if not token:
            return self.sts_error(400, "invalid_request", "subject_token is required")
        for audience in form.get("audience", []):
            if audience not in args.sts_audience:
                return self.sts_error(400, "invalid_target", f"no tokens for the audience {audience}")
        claims, refusal = check_subject(token)
        if refusal:
            status, _, description = refusal
            count("refused_subject" if status == 401 else "refused_claims")
            if status == 401:
                return self.sts_error(400, "invalid_grant", description)
            return self.sts_error(400, "invalid_target", description)
        access_token, _ = sessions.issue(claims["sub"])
        count("issued")
        self.answer(200, {
            "access_token": access_token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": int(args.ttl),
        })


serve(Service)
