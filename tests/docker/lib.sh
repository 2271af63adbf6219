# lib.sh - helpers for the tests of tests/docker/, sourced by them (POSIX sh).
# shellcheck shell=sh disable=SC2034 # HOPPER_* are set for the scripts that source this

# dockerfile_instructions FILE: the Dockerfile's instructions, one per line,
# the way Docker reads them: comment lines dropped (also inside a
# continuation), lines ending in a backslash joined with the next, leading
# blanks trimmed, the parser directive lines (# syntax=...) ignored.
dockerfile_instructions() {
    awk '
        /^[ \t]*#/ { next }
        {
            line = $0
            sub(/^[ \t]+/, "", line)
            if (line ~ /\\$/) { sub(/\\$/, "", line); acc = acc line; next }
            acc = acc line
            if (acc != "") print acc
            acc = ""
        }
        END { if (acc != "") print acc }
    ' "$1"
}

# final_stage FILE: the instructions of the last stage (from its FROM on).
final_stage() {
    dockerfile_instructions "$1" | awk '
        toupper($1) == "FROM" { n = 0 }
        { lines[n++] = $0 }
        END { for (i = 0; i < n; i++) print lines[i] }
    '
}

# start_hopper BINARY LOG [ARGS...]: start hopper in the background (its
# environment is the caller's), wait until its log says where it listens,
# and set HOPPER_PID and HOPPER_PORT. Fails after 10 s.
start_hopper() {
    _bin=$1 _log=$2
    shift 2
    "$_bin" "$@" >"$_log" 2>&1 &
    HOPPER_PID=$!
    _i=0
    while [ $_i -lt 100 ]; do
        HOPPER_PORT=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)$/\1/p' "$_log" | head -n 1)
        [ -n "$HOPPER_PORT" ] && return 0
        kill -0 "$HOPPER_PID" 2>/dev/null || { echo "hopper exited:"; cat "$_log"; return 1; }
        sleep 0.1
        _i=$((_i + 1))
    done
    echo "hopper did not say where it listens within 10 s:"
    cat "$_log"
    kill -9 "$HOPPER_PID" 2>/dev/null
    return 1
}

# stop_hopper: SIGTERM, then wait for the exit (SIGKILL after 10 s); sets
# HOPPER_STATUS to the exit status and HOPPER_STOP_SECONDS to the time taken.
stop_hopper() {
    _t0=$(date +%s)
    kill -TERM "$HOPPER_PID" 2>/dev/null
    _i=0
    while kill -0 "$HOPPER_PID" 2>/dev/null && [ $_i -lt 100 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    kill -9 "$HOPPER_PID" 2>/dev/null
    wait "$HOPPER_PID"
    HOPPER_STATUS=$?
    HOPPER_STOP_SECONDS=$(($(date +%s) - _t0))
}
