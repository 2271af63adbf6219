#!/bin/sh
# check_examples.sh - docker/examples/producer.sh and consumer.sh, the scripts
# the sidecar compose file runs, against the real hopper on 127.0.0.1 (a free
# port): the consumer long-polls with a lease before anything is sent, the
# producer sends COUNT events, and the consumer must acknowledge each of them
# once, in order; afterwards hopper holds nothing and nothing is leased.
#   check_examples.sh HOPPER_BINARY EXAMPLES_DIR
set -u
binary=$1 examples=$2
. "$(dirname "$0")/lib.sh"
count=20
tmp=$(mktemp -d) || exit 1
trap 'kill -9 "$HOPPER_PID" 2>/dev/null; rm -rf "$tmp"' EXIT

start_hopper "$binary" "$tmp/hopper.log" --listen 127.0.0.1:0 --data-dir "$tmp/data" || exit 1
export HOPPER_URL="http://127.0.0.1:$HOPPER_PORT" CHANNEL=jobs

WAIT=2 LEASE=30 MAX_MESSAGES=$count timeout 60 sh "$examples/consumer.sh" >"$tmp/consumer.out" 2>"$tmp/consumer.err" &
consumer=$!
sleep 0.5 # the consumer is now waiting in a long-poll
COUNT=$count INTERVAL=0 timeout 60 sh "$examples/producer.sh" >"$tmp/producer.out" 2>"$tmp/producer.err"
producer_status=$?
wait "$consumer"
consumer_status=$?

fail=0
[ $producer_status -eq 0 ] || { echo "FAIL: producer exited $producer_status"; fail=1; }
[ $consumer_status -eq 0 ] || { echo "FAIL: consumer exited $consumer_status"; fail=1; }
i=1 expected_sent="" expected_acked=""
while [ $i -le $count ]; do
    expected_sent="${expected_sent}sent $i
"
    expected_acked="${expected_acked}acked {\"id\":$i,\"event\":\"example.created\"}
"
    i=$((i + 1))
done
printf '%s' "$expected_sent" | cmp -s - "$tmp/producer.out" ||
    { echo "FAIL: the producer did not print 'sent 1'..'sent $count'"; fail=1; }
printf '%s' "$expected_acked" | cmp -s - "$tmp/consumer.out" ||
    { echo "FAIL: the consumer did not acknowledge events 1..$count once each, in order"; fail=1; }
# nothing left: no message, no lease (the acknowledgements were taken)
status=$(curl -s --max-time 5 "$HOPPER_URL/status")
if ! echo "$status" | grep -q '"leased": *0' || ! echo "$status" | grep -q '"messages": *0'; then
    echo "FAIL: hopper still holds messages or leases: $status"
    fail=1
fi
stop_hopper
[ "$HOPPER_STATUS" -eq 0 ] || { echo "FAIL: hopper exited $HOPPER_STATUS on SIGTERM"; fail=1; }

if [ $fail -ne 0 ]; then
    for f in producer.out producer.err consumer.out consumer.err hopper.log; do
        echo "--- $f"; cat "$tmp/$f"
    done
    exit 1
fi
echo "ok: $count events sent by producer.sh, acknowledged once each in order by consumer.sh"
