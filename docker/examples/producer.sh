#!/bin/sh
# producer.sh - an example webhook producer: POSTs a small JSON event to a
# hopper channel with curl, the way a webhook sender would, and backs off when
# hopper refuses (507 full, 503 shutting down: the body comes back unstored).
#
# Environment (all optional):
#   HOPPER_URL  hopper's base URL            (default http://127.0.0.1:8080)
#   CHANNEL     channel to send to           (default jobs)
#   COUNT       events to send, 0 = forever  (default 0)
#   INTERVAL    seconds between events       (default 5)
#
# Prints "sent N" per accepted event; exits 0 after COUNT events.
set -u
url=${HOPPER_URL:-http://127.0.0.1:8080}
channel=${CHANNEL:-jobs}
count=${COUNT:-0}
interval=${INTERVAL:-5}

n=0
while [ "$count" -eq 0 ] || [ "$n" -lt "$count" ]; do
    next=$((n + 1))
    body="{\"id\":$next,\"event\":\"example.created\"}"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
                -H 'Content-Type: application/json' \
                -H "X-Example-Delivery: $next" \
                --data-binary "$body" "$url/channels/$channel")
    case $code in
    202)
        n=$next
        echo "sent $n"
        [ "$interval" = 0 ] || sleep "$interval"
        ;;
    *)  # 507 full, 503 stopping, 000 not reachable yet: same event again later
        echo "refused ($code), retrying event $next" >&2
        sleep 1
        ;;
    esac
done
