#!/bin/sh
# consumer.sh - an example worker beside its hopper sidecar: long-polls a
# channel with a lease, handles each message, then acknowledges it (DELETE
# .../messages/RECEIPT). A worker that dies before the DELETE gets its message
# back when the lease ends (at-least-once); a message it cannot handle is
# released at once for another try.
#
# Environment (all optional):
#   HOPPER_URL    hopper's base URL               (default http://127.0.0.1:8080)
#   CHANNEL       channel to consume              (default jobs)
#   WAIT          seconds each GET may wait       (default 30)
#   LEASE         seconds to handle one message   (default 60)
#   MAX_MESSAGES  stop after this many, 0 = never (default 0)
#
# Prints "acked BODY" per acknowledged message; exits 0 after MAX_MESSAGES.
set -u
url=${HOPPER_URL:-http://127.0.0.1:8080}
channel=${CHANNEL:-jobs}
wait_s=${WAIT:-30}
lease=${LEASE:-60}
max=${MAX_MESSAGES:-0}

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 0' TERM INT

# The work itself: here it only reads the body (the "acked" line prints it).
# Replace with the real handler; a non-zero status releases the message.
handle() {
    cat "$1" >/dev/null
}

done_count=0
while [ "$max" -eq 0 ] || [ "$done_count" -lt "$max" ]; do
    code=$(curl -s -D "$work/headers" -o "$work/body" -w '%{http_code}' \
                --max-time $((wait_s + 10)) \
                "$url/channels/$channel?wait=$wait_s&lease=$lease")
    case $code in
    200) ;;
    204) continue ;;  # nothing arrived within WAIT seconds
    *)   echo "GET answered $code, retrying" >&2; sleep 1; continue ;;
    esac
    receipt=$(grep -i '^Hopper-Receipt:' "$work/headers" | tr -d '\r' | cut -d' ' -f2)
    if handle "$work/body"; then
        ack=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X DELETE \
                   "$url/channels/$channel/messages/$receipt")
        if [ "$ack" = 204 ]; then
            done_count=$((done_count + 1))
            echo "acked $(cat "$work/body")"
        else
            # 410: the lease ended first, the message is back in the channel
            echo "ack of $receipt answered $ack" >&2
        fi
    else
        curl -s -o /dev/null --max-time 10 -X POST \
             "$url/channels/$channel/messages/$receipt/release"
    fi
done
