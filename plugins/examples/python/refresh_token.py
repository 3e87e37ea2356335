#!/usr/bin/env python3
"""An authplug plugin in Python (standard library only).

It keeps an OAuth 2.0 refresh token in its JSON state and trades it at a
token endpoint (the refresh_token grant, RFC 6749 section 6) for an access
token, which it prints. If the server rotates refresh tokens, the new one is
what it keeps. The first run has no state: it starts from a refresh token
given in $EXAMPLE_REFRESH_TOKEN (a real plugin would log in with a browser
here, when AUTHPLUG_INTERACTIVE is 1).

    refresh_token.py --token-endpoint URL --client-id ID

Both options can also come from $EXAMPLE_TOKEN_ENDPOINT and $EXAMPLE_CLIENT_ID.
On any failure it exits non-zero, and the host keeps the previous state.
When the host offers it (AUTHPLUG_INFO_FD=4, PROTOCOL.md rule 10), it says
when the access token expires (from the answer's expires_in), so that the
host refreshes it in time although it may be opaque.
"""

import argparse
import fcntl
import json
import math
import os
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

STATE_FD = 3
INFO_FD = 4


def fail(message):
    print(f"refresh_token.py: {message}", file=sys.stderr)
    sys.exit(1)


def protect_state_fd():
    """Rules 4 and 9: fd 3 is the host's state pipe only if it is a pipe (or
    socket) open for writing, decided before we open any file; no program
    we start may inherit it either way."""
    return host_pipe(STATE_FD)


def keep_state_exit():
    """Rule 4: the exit code with which a failed run asks the host to keep
    its new state, if the host offers it."""
    value = os.environ.get("AUTHPLUG_KEEP_STATE_EXIT", "")
    return int(value) if value.isdigit() and 0 < int(value) < 256 else None


# Decided in main(), before anything opens a file.
HAS_STATE_FD = False


def fail_keeping(message, refresh_token):
    """A run that failed after the provider rotated the refresh token: the
    old one is spent, so the new one goes to the host (rule 4's keep-state
    exit) rather than being lost."""
    code = keep_state_exit()
    if HAS_STATE_FD and code is not None:
        with os.fdopen(STATE_FD, "wb") as state_out:
            state_out.write(json.dumps({"refresh_token": refresh_token}).encode())
        print(f"refresh_token.py: {message} (the new refresh token is kept)", file=sys.stderr)
        sys.exit(code)
    fail(f"{message}; the provider rotated the refresh token and this host cannot keep it: log in again")


def login_needed(message):
    """Only a login gets a new refresh token, and this plugin cannot log in:
    a host that offers it is told so by its exit code (rule 6)."""
    print(f"refresh_token.py: {message}", file=sys.stderr)
    offered = os.environ.get("AUTHPLUG_LOGIN_NEEDED_EXIT", "")
    quiet = os.environ.get("AUTHPLUG_INTERACTIVE") == "0"
    sys.exit(int(offered) if quiet and offered.isdigit() and 0 < int(offered) < 256 else 1)


def printable(text):
    """A server's words, safe for the user's terminal."""
    return "".join(c if c.isprintable() else " " for c in str(text))


def host_pipe(fd):
    """Whether fd is a host's pipe (open for writing, a pipe or a socket),
    decided before we open any file; marked close-on-exec either way (rule 9)."""
    try:
        os.set_inheritable(fd, False)
        mode = os.fstat(fd).st_mode
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return False
    writable = access in (os.O_WRONLY, os.O_RDWR)
    return writable and (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode))


def protect_info_fd():
    """Rule 10: the host offers fd 4 for the token's info only when it says so."""
    if os.environ.get("AUTHPLUG_INFO_FD") != str(INFO_FD):
        return False
    return host_pipe(INFO_FD)


def read_state():
    # A terminal (started by hand) holds no state; do not wait for a line.
    if sys.stdin.isatty():
        return {}
    raw = sys.stdin.buffer.read()
    if not raw:
        return {}
    try:
        state = json.loads(raw)
    except ValueError:
        fail("the state is not JSON; it was not written by this plugin")
    if not isinstance(state, dict):
        fail("the state is not a JSON object; it was not written by this plugin")
    return state


def trade(endpoint, client_id, refresh_token, timeout):
    form = urllib.parse.urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
        }
    ).encode()
    request = urllib.request.Request(
        endpoint,
        data=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(1024 * 1024)
    except urllib.error.HTTPError as error:
        # RFC 6749 section 5.2: the reason is in a JSON error body.
        try:
            detail = json.loads(error.read(64 * 1024))
            if not isinstance(detail, dict):
                raise ValueError("not an object")
            reason = str(detail.get("error", "unknown error"))
            if detail.get("error_description"):
                reason += f": {detail['error_description']}"
        except ValueError:
            reason = "no JSON error body"
        message = f"the token endpoint refused the refresh token: HTTP {error.code}, {printable(reason)}"
        if isinstance(reason, str) and reason.startswith("invalid_grant"):
            login_needed(f"{message} (the refresh token is expired or revoked: log in again, "
                         "e.g. set EXAMPLE_REFRESH_TOKEN and clear the state)")
        fail(message)
    except (urllib.error.URLError, OSError) as error:
        fail(f"cannot reach the token endpoint {endpoint}: {error}")
    try:
        answer = json.loads(body)
    except ValueError:
        fail("the token endpoint answered with something that is not JSON")
    if not isinstance(answer, dict):
        fail("the token endpoint answered with JSON that is not an object")
    rotated = answer.get("refresh_token")
    if rotated is not None and (not isinstance(rotated, str) or not rotated):
        fail("the token endpoint's answer has an invalid refresh_token")
    access_token = answer.get("access_token")
    if not isinstance(access_token, str) or not access_token or any(c.isspace() for c in access_token):
        message = "the token endpoint's answer has no usable access_token"
        if rotated and rotated != refresh_token:
            fail_keeping(message, rotated)
        fail(message)
    lifetime = answer.get("expires_in")
    usable = (
        isinstance(lifetime, (int, float))
        and not isinstance(lifetime, bool)
        and math.isfinite(lifetime)
        and 0 < lifetime < 10 * 366 * 24 * 3600
    )
    if not usable:
        lifetime = None  # not said (RFC 6749 makes it optional), or unusable
    return access_token, rotated or refresh_token, lifetime


def main():
    global HAS_STATE_FD
    has_state_fd = HAS_STATE_FD = protect_state_fd()
    has_info_fd = protect_info_fd()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--token-endpoint", default=os.environ.get("EXAMPLE_TOKEN_ENDPOINT"))
    parser.add_argument("--client-id", default=os.environ.get("EXAMPLE_CLIENT_ID"))
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    args = parser.parse_args()
    if not args.token_endpoint:
        fail("no token endpoint: pass --token-endpoint URL or set EXAMPLE_TOKEN_ENDPOINT")
    if not args.client_id:
        fail("no client id: pass --client-id ID or set EXAMPLE_CLIENT_ID")

    state = read_state()
    refresh_token = state.get("refresh_token")
    if not refresh_token:
        refresh_token = os.environ.get("EXAMPLE_REFRESH_TOKEN")
        if not refresh_token:
            login_needed("no refresh token yet: set EXAMPLE_REFRESH_TOKEN for the first run")
    if os.environ.get("AUTHPLUG_REASON") == "rejected":
        print("refresh_token.py: the last token was rejected; getting a new one", file=sys.stderr)

    started = time.time()
    access_token, refresh_token, lifetime = trade(
        args.token_endpoint, args.client_id, refresh_token, args.timeout
    )

    new_state = json.dumps({"refresh_token": refresh_token}).encode()
    if has_state_fd:
        with os.fdopen(STATE_FD, "wb") as state_out:
            state_out.write(new_state)
    else:
        print("refresh_token.py: no fd 3 (not started by a host), so the new refresh token is lost", file=sys.stderr)
    if has_info_fd and lifetime is not None:
        # Counted from before the request: never later than the server meant.
        with os.fdopen(INFO_FD, "w") as info_out:
            info_out.write(json.dumps({"expires_at": int(started + lifetime)}))
    sys.stdout.write(access_token + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
