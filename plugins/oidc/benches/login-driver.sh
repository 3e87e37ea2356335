#!/bin/sh
# A "browser" for the bench IdP: walks oidc-provider's dev interaction forms
# with curl (any user name and password; consent if asked), then follows the
# redirect back to the plugin's loopback listener. The URL is the last
# argument.
set -eu
jar=$(mktemp)
page=$(mktemp)
trap 'rm -f "$jar" "$page"' EXIT
where=$(curl -sS -L -c "$jar" -b "$jar" -o "$page" -w '%{url_effective}' "$1")
for _ in 1 2 3; do
  case $where in
    */interaction/*) ;;
    *) exit 0 ;;
  esac
  prompt=$(grep -o 'name="prompt" value="[a-z]*"' "$page" | sed 's/.*value="\([a-z]*\)"/\1/')
  where=$(curl -sS -L -c "$jar" -b "$jar" -o "$page" -w '%{url_effective}' \
    -d "prompt=${prompt:-login}" -d login=alice -d password=bench "$where")
done
