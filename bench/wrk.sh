# bench/wrk.sh - shell functions shared by bench/ceiling and bench/scale
# (sourced, not run). They need: $here (bench/), $duration (seconds a wrk
# run lasts) and $prog (the script's name, for messages).

# start_hopper BIN DIR LOG [FLAGS...]: hopper on 127.0.0.1, a free port, data
# in DIR; sets hopper_pid and hopper_port.
start_hopper() {
    _bin=$1 _dir=$2 _log=$3
    shift 3
    rm -rf "$_dir"
    "$_bin" --listen 127.0.0.1:0 --data-dir "$_dir" "$@" 2> "$_log" &
    hopper_pid=$!
    _i=0
    while ! grep -q 'listening on 127.0.0.1:' "$_log"; do
        _i=$((_i + 1)); [ $_i -gt 300 ] && { echo "$prog: hopper did not start" >&2; exit 1; }
        sleep 0.1
    done
    hopper_port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$_log" | head -1)
}

# measure URL CHANNELS: one wrk run of 100-byte POSTs (2 threads, 50
# keep-alive connections, $duration s); prints "REQ_PER_S P99_MS". Any
# non-2xx answer or socket error fails the benchmark.
measure() {
    _out=$(CHANNELS=$2 wrk -t2 -c50 -d"${duration}s" --latency -s "$here/post.lua" "$1")
    if echo "$_out" | grep -q -e 'Non-2xx' -e 'Socket errors'; then
        echo "$prog: $1 answered errors:" >&2; echo "$_out" >&2; exit 1
    fi
    _rps=$(echo "$_out" | awk '/^Requests\/sec:/ {print $2}')
    _p99=$(echo "$_out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000}
          else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}
          printf "%.3f", v}')
    echo "$_rps $_p99"
}

# median: of the numbers on standard input, one a line
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
