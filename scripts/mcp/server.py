"""A real MCP server for authplug's tests: the MCP Python SDK's FastMCP over
streamable HTTP, accepting only bearer JWTs of one issuer, as an
OIDC-protected MCP server in "remote" mode does: the signature against the
issuer's JWKS (found through its discovery document), `iss`, `aud`, `exp`
and a required scope. A request without a good token gets 401 with
`WWW-Authenticate: Bearer` and the Protected Resource Metadata (RFC 9728)
that FastMCP publishes.

    server.py ISSUER AUDIENCE [SCOPE]      (AUDIENCE `self`: the server's own URL)
    server.py static:TOKEN AUDIENCE     (benchmarks: accepts exactly TOKEN)

Binds 127.0.0.1 on a free port and prints one line when ready:
`URL http://127.0.0.1:PORT/mcp`. Exits when its stdin closes.

Tools: `whoami` (the token's subject), `count` (reports progress
`n` times, `delay` seconds apart, then answers: a response that streams),
`blob` (a text of `size` bytes), `admin`, which needs the scope `admin`
as well: a call without it gets HTTP 403 with `WWW-Authenticate: Bearer
error="insufficient_scope", scope="…"` naming every scope the server wants
(RFC 6750 §3.1; the MCP authorization spec's step-up), which FastMCP's
per-server scope check does not say.

Test hook: `POST /test/revoke` with a token as its body: from then on that
token is refused (401), as by a server told of a revocation.
"""

import asyncio
import json
import socket
import sys
import threading
import urllib.request

import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

issuer, audience = sys.argv[1], sys.argv[2]
required_scope = sys.argv[3] if len(sys.argv) > 3 else None

static_token = issuer.removeprefix("static:") if issuer.startswith("static:") else None
if static_token is None:
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration") as answer:
        jwks_uri = json.load(answer)["jwks_uri"]
    keys = jwt.PyJWKClient(jwks_uri)
revoked = set()
# token -> subject, for whoami
subjects = {}


class Verifier(TokenVerifier):
    async def verify_token(self, token):
        if token in revoked:
            return None
        if static_token is not None:
            if token != static_token:
                return None
            subjects[token] = "bench"
            return AccessToken(token=token, client_id="bench", scopes=[], expires_at=None, resource=audience)
        try:
            key = keys.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256", "ES256", "EdDSA", "PS256"],
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "sub"]},
            )
        except Exception:
            return None
        scopes = claims.get("scope", "").split()
        subjects[token] = claims["sub"]
        return AccessToken(
            token=token,
            client_id=claims.get("client_id", claims.get("azp", "")),
            scopes=scopes,
            expires_at=int(claims["exp"]),
            resource=audience,
        )


# IPPROTO_TCP named: asyncio sets TCP_NODELAY on the connections of a
# socket whose proto says TCP, and a socket made with proto 0 gets Nagle's
# algorithm, which stalls each reused connection's response ~40 ms.
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
url = f"http://127.0.0.1:{port}/mcp"
if audience == "self":
    audience = url

server = FastMCP(
    "authplug-test",
    token_verifier=Verifier(),
    auth=AuthSettings(
        issuer_url=issuer if static_token is None else "https://static.invalid",
        resource_server_url=url,
        required_scopes=[required_scope] if required_scope else None,
    ),
    host="127.0.0.1",
    port=port,
    transport_security=TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"127.0.0.1:{port}"],
        allowed_origins=[],
    ),
)


@server.tool()
async def whoami(ctx: Context) -> str:
    """The subject of the token the call came with."""
    token = get_access_token()
    return subjects.get(token.token, "") if token else ""


@server.tool()
async def count(n: int, delay: float, ctx: Context) -> str:
    """Reports progress n times, delay seconds apart, then answers."""
    for i in range(n):
        await ctx.report_progress(i + 1, n)
        await asyncio.sleep(delay)
    return f"counted {n}"


@server.tool()
async def blob(size: int) -> str:
    """A text of size bytes."""
    return "x" * size


@server.tool()
async def admin() -> str:
    """Needs the scope admin."""
    return "admin ok"


class ToolScopes:
    """Per-tool scopes: a `tools/call` of `admin` whose token lacks the
    scope `admin` is refused with 403 insufficient_scope."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            call = json.loads(body)
            wants_admin = call.get("method") == "tools/call" and call["params"]["name"] == "admin"
        except Exception:
            wants_admin = False
        if wants_admin:
            authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
            token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
            access = await Verifier().verify_token(token)
            if access is not None and "admin" not in access.scopes:
                wanted = " ".join(filter(None, [required_scope, "admin"]))
                challenge = f'Bearer error="insufficient_scope", scope="{wanted}", error_description="admin needs the scope admin"'
                await send({
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"www-authenticate", challenge.encode()), (b"content-type", b"application/json")],
                })
                await send({"type": "http.response.body", "body": b'{"error": "insufficient_scope"}'})
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def revoke(request: Request):
    revoked.add((await request.body()).decode())
    return PlainTextResponse("revoked\n")


app = server.streamable_http_app()
app.router.routes.append(Route("/test/revoke", revoke, methods=["POST"]))


def exit_when_stdin_closes():
    sys.stdin.read()
    import os

    os._exit(0)


threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
config = uvicorn.Config(ToolScopes(app), log_level="warning")
uv = uvicorn.Server(config)


async def main():
    sock.listen(128)
    print(f"URL {url}", flush=True)
    await uv.serve(sockets=[sock])


asyncio.run(main())
