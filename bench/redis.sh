# bench/redis.sh - shell functions shared by bench/durable-vs-redis and
# bench/batch-vs-redis (sourced, not run): a redis-server of our own on
# 127.0.0.1, redis-benchmark runs against it, and reading hopper's /metrics.
# They need $prog (the script's name, for messages).

# start_redis DIR PERSISTENCE: redis-server on 127.0.0.1, data in DIR (made
# afresh), its log in DIR/redis.log. PERSISTENCE is "always" (--appendonly yes
# --appendfsync always: a reply means the command is fdatasync'd) or "none"
# (--appendonly no). Snapshots are off either way (--save ''). Redis cannot
# pick a free port itself (--port 0 turns TCP off), so ports are tried until
# one binds; sets redis_pid and redis_port.
start_redis() {
    _dir=$1
    case $2 in
    always) _persist="--appendonly yes --appendfsync always" ;;
    none) _persist="--appendonly no" ;;
    *) echo "$prog: start_redis: unknown persistence $2" >&2; exit 2 ;;
    esac
    rm -rf "$_dir"
    mkdir -p "$_dir"
    for _try in 1 2 3 4 5 6 7 8 9 10; do
        _p=$(( ($$ * 13 + _try * 7919) % 20000 + 40000 ))
        # shellcheck disable=SC2086 # _persist is several words on purpose
        redis-server --bind 127.0.0.1 --port "$_p" --save '' --dir "$_dir" \
            --logfile "$_dir/redis.log" --daemonize no $_persist &
        redis_pid=$!
        _i=0
        while [ $_i -lt 100 ] && kill -0 "$redis_pid" 2>/dev/null; do
            if [ "$(redis-cli -h 127.0.0.1 -p "$_p" ping 2>/dev/null)" = PONG ] &&
                kill -0 "$redis_pid" 2>/dev/null; then
                redis_port=$_p
                return
            fi
            _i=$((_i + 1)); sleep 0.05
        done
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    done
    redis_pid=""
    echo "$prog: redis-server did not start:" >&2
    cat "$_dir/redis.log" >&2
    exit 1
}

# stop_redis: the one start_redis started, waiting until it is gone.
stop_redis() {
    kill "$redis_pid"
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
}

# redis_bench ARGS...: one redis-benchmark run against our redis-server (at
# most 300 s); prints "REQ_PER_S P99_MS" from its --csv line.
redis_bench() {
    _out=$(timeout 300 redis-benchmark -h 127.0.0.1 -p "$redis_port" --csv "$@") ||
        { echo "$prog: redis-benchmark $* failed:" >&2; echo "$_out" >&2; exit 1; }
    echo "$_out" | awk -F'"' 'NR > 1 && $4 != "" {print $4, $14; found = 1}
        END {if (!found) exit 1}' ||
        { echo "$prog: no figure from redis-benchmark $*:" >&2; echo "$_out" >&2; exit 1; }
}

# redis_cli ARGS...: one command to our redis-server, its reply printed.
redis_cli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# metric PORT NAME: the value of the sample NAME (with its labels, exactly as
# printed) in hopper's /metrics on PORT; 0 if absent.
metric() {
    curl -s --max-time 10 "http://127.0.0.1:$1/metrics" |
        awk -v n="$2" '$1 == n {v = $2} END {print (v == "") ? 0 : v}'
}

# strace_count PID COMMAND...: run COMMAND while strace counts the
# fdatasync calls of every thread of PID; prints the count (0 if none). The
# command's own output is dropped.
strace_count() {
    _spid=$1
    shift
    strace -f -c -e trace=fdatasync -o "$work/strace.out" -p "$_spid" 2>/dev/null &
    _strace=$!
    sleep 0.5 # strace attaches to every thread before the load starts
    "$@" >/dev/null
    kill -INT "$_strace"
    wait "$_strace" 2>/dev/null || true
    awk '$NF == "fdatasync" {print $4; found = 1} END {if (!found) print 0}' "$work/strace.out"
}
