#!/usr/bin/env python3
"""An authplug plugin for one service's own CLI login (Python 3, standard
library only).

Some services run the OIDC login themselves and hand a command-line tool a
session token of their own. This plugin speaks one such flow (EdgePlane's):

  GET  /auth/oidc/cli-initiate          -> {authorize_url, cli_nonce, expires_at}
  (the user logs in, in a browser, at authorize_url)
  GET  /auth/oidc/cli-poll/<cli_nonce>  -> 404 until {"status": "ready", "grant_id"}
  POST /auth/oidc/exchange {"grant_id"} -> {"token", "subject", "expires_at"}

The session token is kept in the authplug state (in the agent's memory:
never in a file such as ~/.edgeplane/session.json), handed out again while it
lives, and its expiry told to the host (AUTHPLUG_INFO_FD, PROTOCOL.md rule
10) so that the agent knows when it ends. A server that refuses it (the host
says AUTHPLUG_REASON=rejected), or its end, calls for a new login, which
only an interactive run starts: a non-interactive one fails, saying what to
run. It never opens a browser when AUTHPLUG_INTERACTIVE=0.

    cli_login.py --server https://edgeplane.example.com [--browser-command CMD]

--server can also come from $EXAMPLE_CLI_LOGIN_SERVER. Without
--browser-command the login address goes to stderr and the desktop's browser
is asked to open it.
"""

import argparse
import datetime
import fcntl
import json
import os
import shlex
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser

STATE_FD = 3
INFO_FD = 4
# A held token this close to its end is not handed out again.
MARGIN = 30
NAME = "cli_login.py"


def say(message):
    print(f"{NAME}: {message}", file=sys.stderr, flush=True)


def printable(value):
    """A server's words, safe for the user's terminal: no control characters."""
    return "".join(c if c.isprintable() else " " for c in str(value))[:300]


def secure(url):
    """https, or http to this machine only (a test, a local service)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost"))


def fail(message):
    say(message)
    sys.exit(1)


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


def read_state():
    # A terminal (started by hand) holds no state; do not wait for a line.
    if sys.stdin.isatty():
        return {}
    raw = sys.stdin.buffer.read(10 * 1024 * 1024)
    if not raw:
        return {}
    try:
        state = json.loads(raw)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        say("the state was not written by this plugin; starting afresh")
        return {}
    return state


def request(method, url, body=None, timeout=30):
    """(status, JSON object or None); fails only if the server cannot be reached."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    call = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=timeout) as answer:
            status, raw = answer.status, answer.read(1024 * 1024)
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read(64 * 1024)
    except (urllib.error.URLError, OSError) as error:
        fail(f"cannot reach {url.split('?')[0]}: {getattr(error, 'reason', error)}")
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    return status, answer if isinstance(answer, dict) else None


def unix_time(value):
    """expires_at as a Unix time or RFC 3339; None if it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        return int(when.timestamp())
    return None


def open_browser(url, command):
    say(f"log in at: {url}")
    if command:
        # Its output must not reach stdout, which is the token's alone.
        subprocess.Popen(shlex.split(command) + [url], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        return
    # A browser started here inherits stdout: lend it stderr meanwhile.
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        webbrowser.open(url)
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def log_in(server, args):
    """The whole CLI login; the session token and when it ends."""
    status, started = request("GET", f"{server}/auth/oidc/cli-initiate", timeout=args.timeout)
    if status != 200 or not started or not all(
            isinstance(started.get(k), str) and started.get(k) for k in ("authorize_url", "cli_nonce")):
        fail(f"the server would not start a login (HTTP {status})")
    authorize_url = started["authorize_url"]
    if not secure(authorize_url):
        fail("the server's login address is not https; not opening it")
    deadline = time.time() + args.login_timeout
    ends = unix_time(started.get("expires_at"))
    if ends is not None:
        deadline = min(deadline, ends)
    open_browser(authorize_url, args.browser_command)
    delay = 0.5
    poll_url = f"{server}/auth/oidc/cli-poll/{urllib.parse.quote(started['cli_nonce'], safe='')}"
    while True:
        status, answer = request("GET", poll_url, timeout=args.timeout)
        if status == 200 and answer and answer.get("status") == "ready" and isinstance(answer.get("grant_id"), str):
            grant_id = answer["grant_id"]
            break
        if status not in (200, 404):
            detail = f": {printable(answer.get('error'))}" if answer and answer.get("error") else ""
            fail(f"the server stopped the login (HTTP {status}{detail})")
        if time.time() + delay > deadline:
            fail("the login was not finished in time; run the command again to start a new one")
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
    status, answer = request("POST", f"{server}/auth/oidc/exchange", {"grant_id": grant_id}, timeout=args.timeout)
    if status != 200 or not answer:
        detail = (answer or {}).get("message") or (answer or {}).get("error") or "no reason given"
        fail(f"the server would not exchange the login for a session token (HTTP {status}: {printable(detail)})")
    token = answer.get("token")
    if not isinstance(token, str) or not token or not all(33 <= ord(c) <= 126 for c in token):
        fail("the server's session token is not usable")
    expires_at = unix_time(answer.get("expires_at"))
    if expires_at is not None and expires_at <= time.time():
        fail("the server's session token has expired already (is this machine's clock right?)")
    if answer.get("subject"):
        say(f"logged in as {printable(answer['subject'])}")
    return token, expires_at


def main():
    # Before anything opens a file (rules 4, 9 and 10).
    has_state_fd = host_pipe(STATE_FD)
    has_info_fd = os.environ.get("AUTHPLUG_INFO_FD") == str(INFO_FD) and host_pipe(INFO_FD)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=os.environ.get("EXAMPLE_CLI_LOGIN_SERVER"))
    parser.add_argument("--browser-command", help="a command to open the login address with (it is appended)")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    parser.add_argument("--login-timeout", type=float, default=300.0, help="seconds to wait for the login")
    args = parser.parse_args()
    if not args.server:
        fail("no server: pass --server URL or set EXAMPLE_CLI_LOGIN_SERVER")
    server = args.server.rstrip("/")
    if not secure(server):
        fail("--server must be https (or http on 127.0.0.1 or localhost): the session token travels there")

    reason = os.environ.get("AUTHPLUG_REASON")
    interactive = os.environ.get("AUTHPLUG_INTERACTIVE") != "0"
    state = read_state()
    if reason == "logout":
        # This flow has no way to end a session at the server: the host
        # forgets the token and the state, which is all there is.
        return

    held, ends = state.get("token"), state.get("expires_at")
    fresh = isinstance(ends, int) and ends > time.time() + MARGIN
    # Handed out again only when the host said why it runs us, and that is
    # not a refusal nor a wish for a new one (rule 1: an epithet host that
    # says nothing may be asking after a 401; an unknown reason is `refresh`).
    if isinstance(held, str) and held and fresh and reason not in (None, "", "rejected", "expiring"):
        token, expires_at = held, ends
    else:
        why = {
            "rejected": "the server refused the session token",
            "expiring": "the session token is about to expire",
        }.get(reason, "the session token has expired" if held else "there is no session yet")
        if not interactive:
            say(f"{why}, and a new login needs a browser, which this non-interactive run may not open: "
                "run `authplug token` (with this profile) in a terminal to log in")
            # Rule 6: the host's code for "a login is needed", if it offers one.
            offered = os.environ.get("AUTHPLUG_LOGIN_NEEDED_EXIT", "")
            sys.exit(int(offered) if offered.isdigit() else 1)
        say(f"{why}; logging in")
        token, expires_at = log_in(server, args)

    new_state = {"token": token}
    if expires_at is not None:
        new_state["expires_at"] = expires_at
    if has_state_fd:
        with os.fdopen(STATE_FD, "wb") as state_out:
            state_out.write(json.dumps(new_state).encode())
    else:
        say("no fd 3 (not started by a host): the session is not kept, and the next run logs in again")
    if has_info_fd and expires_at is not None:
        with os.fdopen(INFO_FD, "w") as info_out:
            info_out.write(json.dumps({"expires_at": expires_at}))
    sys.stdout.write(token + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
