#!/usr/bin/env python3
"""A client of the authplug agent in plain Python (standard library only).

It speaks the socket protocol of AGENT-PROTOCOL.md, version 1, as a daemon
in any language would: no authplug CLI, no Rust library. Copy it freely.

    agent_client.py [--socket PATH] token [--profile NAME] [--non-interactive]
    agent_client.py [--socket PATH] reject [--profile NAME]   < refused-token
    agent_client.py [--socket PATH] status

`token` prints the token on stdout and the plugin's progress on stderr;
`reject` reads the refused token from stdin; `status` prints the JSON list
of profiles. Errors go to stderr in the agent's words, with exit status 1.
"""

import argparse
import json
import os
import socket
import sys

VERSION = 1


class AgentError(Exception):
    """The agent answered {"ok": false}: its message is for the user."""


def default_socket():
    if os.environ.get("AUTHPLUG_SOCKET"):
        return os.environ["AUTHPLUG_SOCKET"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "authplug", "agent.sock")
    return os.path.join(os.path.expanduser("~"), ".authplug", "agent.sock")


class Agent:
    """One connection to the agent; requests go one after the other."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lines = self.sock.makefile("rb")

    def close(self):
        self.lines.close()
        self.sock.close()

    def request(self, op, on_stderr=lambda line: None, **members):
        """Sends one request; returns its final line as a dict."""
        line = dict(members, v=VERSION, op=op)
        self.sock.sendall(json.dumps(line).encode() + b"\n")
        while True:
            raw = self.lines.readline()
            if not raw:
                raise AgentError("the agent closed the connection before answering")
            answer = json.loads(raw)
            if "ok" in answer:
                if not answer["ok"]:
                    raise AgentError(answer.get("error", "the agent gave no reason"))
                return answer
            # Progress: a line of the plugin's stderr, or a heartbeat, or a
            # kind this client does not know yet (ignored, as the contract says).
            if "stderr" in answer:
                on_stderr(answer["stderr"])

    def token(self, profile=None, interactive=True, on_stderr=lambda line: None):
        members = {"interactive": interactive}
        if profile is not None:
            members["profile"] = profile
        return self.request("token", on_stderr, **members)["token"]

    def reject(self, token, profile=None):
        members = {"token": token}
        if profile is not None:
            members["profile"] = profile
        return self.request("reject", **members).get("cleared", False)

    def logout(self, profile=None, on_stderr=lambda line: None):
        """Forgets the profile's login after its plugin's `logout` run.
        Returns why the plugin could not clean up, or None."""
        members = {} if profile is None else {"profile": profile}
        return self.request("logout", on_stderr, **members).get("cleanup_error")

    def status(self):
        return self.request("status")["profiles"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=default_socket())
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token")
    token.add_argument("--profile")
    token.add_argument("--non-interactive", action="store_true")
    reject = commands.add_parser("reject")
    reject.add_argument("--profile")
    logout = commands.add_parser("logout")
    logout.add_argument("--profile")
    commands.add_parser("status")
    args = parser.parse_args()

    try:
        agent = Agent(args.socket)
    except OSError as error:
        print(f"no authplug agent at {args.socket} ({error.strerror}): start one with `authplug agent &`",
              file=sys.stderr)
        return 1
    try:
        if args.command == "token":
            print(agent.token(args.profile, not args.non_interactive,
                              lambda line: print(line, file=sys.stderr)))
        elif args.command == "reject":
            refused = sys.stdin.read().rstrip("\r\n")
            cleared = agent.reject(refused, args.profile)
            print("cleared" if cleared else "not the cached token; nothing to clear", file=sys.stderr)
        elif args.command == "logout":
            failed = agent.logout(args.profile, lambda line: print(line, file=sys.stderr))
            print(f"logged out, but the plugin could not clean up: {failed}" if failed
                  else "logged out", file=sys.stderr)
        else:
            print(json.dumps(agent.status(), indent=2))
        return 0
    except AgentError as error:
        print(f"authplug agent: {error}", file=sys.stderr)
        return 1
    finally:
        agent.close()


if __name__ == "__main__":
    sys.exit(main())
