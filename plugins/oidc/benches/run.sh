#!/bin/sh
# Benchmarks of authplug-oidc against the project's dev IdP (scripts/dev-idp,
# npm oidc-provider 9.13.3), whole processes side by side in one run; the
# work is in benches/oidc.rs (criterion):
#   1. the valid-token path vs /bin/true (IdP stopped: no network possible);
#   2. the refresh path vs a raw curl refresh and the Python example plugin
#      (the IdP does not rotate refresh tokens, so all trade the same one);
#   3. the release binary's size and the peak RSS of both paths.
# Every contender is spawned as a host spawns a plugin: no shell, stdin = the
# state file, fd 3 = /dev/null, stdout and stderr = /dev/null.
# Usage: plugins/oidc/benches/run.sh [criterion args, e.g. valid_token]
# AUTHPLUG_OIDC_BENCH_BEFORE=/path/to/older/authplug-oidc adds that build as
# a contender (before/after in one run).
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)

# The dev IdP's npm packages, from its lockfile.
AUTHPLUG_SETUP_NPM_ONLY=1 "$root/scripts/setup"
missing=
command -v curl >/dev/null || missing="$missing curl"
[ -x /usr/bin/time ] || missing="$missing time"
command -v python3 >/dev/null || missing="$missing python3"
if [ -n "$missing" ]; then
  echo "run.sh: installing$missing" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo bench --manifest-path "$root/Cargo.toml" -p authplug-oidc --bench oidc -- "$@"
file -L "$CARGO_TARGET_DIR/release/authplug-oidc"
