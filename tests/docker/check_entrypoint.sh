#!/bin/sh
# check_entrypoint.sh - the image's contract without Docker: run the built
# binary the way the image does (no arguments; HOPPER_LISTEN and
# HOPPER_DATA_DIR from the environment; as the Dockerfile's USER uid when run
# as root, on a data dir owned by that uid), run the Dockerfile's HEALTHCHECK
# command exactly as Docker does (/bin/sh -c TEXT, the port taken from
# HOPPER_LISTEN), then send the STOPSIGNAL and expect exit 0 within 10 s (the
# grace period the README asks for). Loopback only: 127.0.0.1 stands in for
# the image's 0.0.0.0, with the port hopper picked.
# Also: the health check must fail once hopper is gone.
#   check_entrypoint.sh DOCKERFILE HOPPER_BINARY
set -u
dockerfile=$1 binary=$2
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d) || exit 1
trap 'kill -9 "$HOPPER_PID" 2>/dev/null; rm -rf "$tmp"' EXIT
final=$(final_stage "$dockerfile")

health=$(printf '%s\n' "$final" | sed -n 's/^HEALTHCHECK .* CMD //p')
[ -n "$health" ] || { echo "FAIL: no HEALTHCHECK ... CMD in the runtime stage"; exit 1; }
signal=$(printf '%s\n' "$final" | sed -n 's/^STOPSIGNAL //p')
user=$(printf '%s\n' "$final" | sed -n 's/^USER //p' | tail -n 1)
printf "HEALTHCHECK CMD: %s\n" "$health"
echo "STOPSIGNAL: $signal, USER: $user"

mkdir -p "$tmp/bin" "$tmp/data"
cp "$binary" "$tmp/bin/hopper"
chmod 755 "$tmp" "$tmp/bin" "$tmp/bin/hopper"
run_as=""
if [ "$(id -u)" -eq 0 ] && [ -n "$user" ] && command -v setpriv >/dev/null; then
    # as the image: uid:gid of USER, a data dir owned by it, mode 0700
    chown "$user" "$tmp/data"
    chmod 700 "$tmp/data"
    run_as="setpriv --reuid ${user%%:*} --regid ${user#*:} --clear-groups"
    echo "running as uid ${user%%:*} like the image"
fi
# HOPPER_LISTEN and HOPPER_DATA_DIR as the Dockerfile's ENV sets them, the
# address made loopback and the port free
printf '#!/bin/sh\nexec %s %s\n' "$run_as" "$tmp/bin/hopper" >"$tmp/run-hopper"
chmod 755 "$tmp/run-hopper"
HOPPER_LISTEN=127.0.0.1:0 HOPPER_DATA_DIR=$tmp/data \
    start_hopper "$tmp/run-hopper" "$tmp/hopper.log" || exit 1
echo "hopper listening on port $HOPPER_PORT"

fail=0
if HOPPER_LISTEN=0.0.0.0:$HOPPER_PORT timeout 5 /bin/sh -c "$health"; then
    echo "health check passed"
else
    echo "FAIL: the HEALTHCHECK command failed against a running hopper"
    fail=1
fi
# the port really comes from HOPPER_LISTEN: another port must fail
other=$((HOPPER_PORT == 65535 ? 65534 : HOPPER_PORT + 1))
if HOPPER_LISTEN=0.0.0.0:$other timeout 5 /bin/sh -c "$health" 2>/dev/null; then
    echo "FAIL: the HEALTHCHECK passed on port $other, where nothing listens"
    fail=1
fi

kill -0 "$HOPPER_PID" && kill -s "${signal#SIG}" "$HOPPER_PID"
t0=$(date +%s)
i=0
while kill -0 "$HOPPER_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$HOPPER_PID" 2>/dev/null
wait "$HOPPER_PID"
status=$?
seconds=$(($(date +%s) - t0))
if [ $status -eq 0 ] && [ $i -lt 100 ]; then
    echo "$signal: exit 0 after ${seconds}s"
else
    echo "FAIL: $signal: exit status $status after ${seconds}s (10 s allowed)"
    fail=1
fi
if HOPPER_LISTEN=0.0.0.0:$HOPPER_PORT timeout 5 /bin/sh -c "$health" 2>/dev/null; then
    echo "FAIL: the HEALTHCHECK passed after hopper stopped"
    fail=1
fi
if [ $fail -ne 0 ]; then
    cat "$tmp/hopper.log"
    exit 1
fi
echo "ok: the entrypoint contract holds"
