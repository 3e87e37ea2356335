#!/bin/sh
# An authplug plugin in POSIX sh: the smallest useful one.
#
# The token comes from $EXAMPLE_TOKEN, or else from the file named by
# $EXAMPLE_TOKEN_FILE. The state is a run counter, only to show the round
# trip: the host sends the previous state on stdin and keeps whatever we write
# on fd 3. With $EXAMPLE_EXPIRES_IN (seconds), it tells a host that offers
# the info channel (AUTHPLUG_INFO_FD=4, PROTOCOL.md rule 10) when the token
# expires, so that the host asks again in time.
set -eu

previous=$(cat) # the state from our last successful run; empty the first time
case $previous in
'') runs=0 ;;
*[!0-9]*)
    echo "env-token: the state is not a run counter; starting again from 0" >&2
    runs=0
    ;;
*) runs=$previous ;;
esac

if [ -n "${EXAMPLE_TOKEN:-}" ]; then
    token=$EXAMPLE_TOKEN
elif [ -n "${EXAMPLE_TOKEN_FILE:-}" ]; then
    if ! token=$(cat -- "$EXAMPLE_TOKEN_FILE"); then
        echo "env-token: cannot read EXAMPLE_TOKEN_FILE ($EXAMPLE_TOKEN_FILE)" >&2
        exit 1
    fi
else
    echo "env-token: set EXAMPLE_TOKEN, or EXAMPLE_TOKEN_FILE to a file holding the token" >&2
    exit 1
fi
if [ -z "$token" ]; then
    echo "env-token: the token is empty" >&2
    exit 1
fi

runs=$((runs + 1))
echo "env-token: run $runs (reason: ${AUTHPLUG_REASON:-not given})" >&2

# The new state goes to fd 3, which only exists under a host: started by
# hand, there is nowhere to keep it. Closing fd 3 afterwards keeps it from
# any program we might start later (a shell cannot mark it close-on-exec).
if { true >&3; } 2>/dev/null; then
    printf '%s' "$runs" >&3
    exec 3>&-
else
    echo "env-token: no fd 3 (not started by a host), so the state is not kept" >&2
fi

# The expiry goes to fd 4, only when the host offers it and it is open (an
# epithet host does not offer it, and fd 4 may then be anything).
if [ -n "${EXAMPLE_EXPIRES_IN:-}" ] && [ "${AUTHPLUG_INFO_FD:-}" = 4 ] &&
    { true >&4; } 2>/dev/null; then
    case $EXAMPLE_EXPIRES_IN in
    '' | *[!0-9]*)
        echo "env-token: EXAMPLE_EXPIRES_IN is not a number of seconds; no expiry said" >&2
        ;;
    *)
        printf '{"expires_at":%s}\n' $(($(date +%s) + EXAMPLE_EXPIRES_IN)) >&4
        exec 4>&-
        ;;
    esac
fi

printf '%s\n' "$token"
