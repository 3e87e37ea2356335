#!/bin/sh
# Benchmarks of authplug-oidc against a real oidc-provider (9.13.3), whole
# processes side by side in one hyperfine run:
#   1. the valid-token path vs spawning /bin/true;
#   2. the refresh path vs a raw curl refresh and vs the Python example
#      plugin doing the same refresh (refresh tokens are not rotated by the
#      bench IdP, so every contender trades the same one);
#   3. the stripped release binary's size and peak memory (RSS) of both paths.
# Usage: plugins/oidc/benches/run.sh   (from anywhere; prints Markdown)
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
bench=$root/plugins/oidc/benches
work=$(mktemp -d)
trap 'kill "$idp_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
idp_pid=

command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null
command -v curl >/dev/null || apt-get install -y -q curl >/dev/null

# The bench IdP, with oidc-provider pinned by package-lock.json.
[ -d "$bench/node_modules/oidc-provider" ] ||
  (cd "$bench" && npm ci --silent --no-audit --no-fund >/dev/null)
(cd "$bench" && exec node bench-idp.mjs >"$work/idp.out" 2>"$work/idp.err") &
idp_pid=$!
for _ in $(seq 100); do [ -s "$work/idp.out" ] && break; sleep 0.1; done
issuer=$(head -1 "$work/idp.out")
token_endpoint=$(curl -sS "$issuer/.well-known/openid-configuration" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token_endpoint"])')

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build -q --release -p authplug-oidc --manifest-path "$root/Cargo.toml"
plugin=$CARGO_TARGET_DIR/release/authplug-oidc
args="--issuer $issuer --client-id bench"

# One login (the curl form walker as the browser) gives the state.
"$plugin" $args --browser-command "$bench/login-driver.sh" --login-timeout 20 \
  </dev/null 3>"$work/state" >/dev/null 2>"$work/login.err"
refresh_token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["refresh_token"])' "$work/state")
printf '{"refresh_token": "%s"}' "$refresh_token" >"$work/py-state"
printf 'grant_type=refresh_token&client_id=bench&refresh_token=%s' "$refresh_token" >"$work/form"

echo "## valid-token path (issuer $issuer)"
hyperfine -N --warmup 20 --runs 300 --export-markdown "$work/valid.md" \
  -n '/bin/true' "/bin/true" \
  -n 'authplug-oidc, valid token' \
  "sh -c 'exec $plugin $args <$work/state 3>/dev/null >/dev/null'" \
  -n 'sh -c (baseline for the line above)' "sh -c 'exec /bin/true <$work/state 3>/dev/null >/dev/null'" >/dev/null
cat "$work/valid.md"

echo
echo "## refresh path"
hyperfine -N --warmup 5 --runs 100 --export-markdown "$work/refresh.md" \
  -n 'curl refresh' "curl -sS -o /dev/null --data @$work/form $token_endpoint" \
  -n 'authplug-oidc refresh' \
  "sh -c 'AUTHPLUG_REASON=rejected AUTHPLUG_INTERACTIVE=0 exec $plugin $args <$work/state 3>/dev/null >/dev/null'" \
  -n 'python example refresh' \
  "sh -c 'exec python3 $root/plugins/examples/python/refresh_token.py --token-endpoint $token_endpoint --client-id bench <$work/py-state 3>/dev/null >/dev/null'" >/dev/null
cat "$work/refresh.md"

echo
echo "## size and memory"
echo "stripped release binary: $(stat -c %s "$plugin") bytes"
valid_rss=$(/usr/bin/time -f %M sh -c "exec $plugin $args <$work/state 3>/dev/null >/dev/null" 2>&1)
refresh_rss=$(AUTHPLUG_REASON=rejected AUTHPLUG_INTERACTIVE=0 /usr/bin/time -f %M sh -c "exec $plugin $args <$work/state 3>/dev/null >/dev/null" 2>&1)
echo "peak RSS, valid-token path: ${valid_rss} KiB; refresh path: ${refresh_rss} KiB"
