# bench/wrk.sh - shell functions shared by bench/ceiling, bench/scale and
# bench/forward (sourced, not run). They need: $here (bench/), $duration
# (seconds a wrk run lasts) and $prog (the script's name, for messages).

# start_hopper BIN DIR LOG [FLAGS...]: hopper on 127.0.0.1, a free port, data
# in DIR; sets hopper_pid and hopper_port.
start_hopper() {
    _bin=$1 _dir=$2 _log=$3
    shift 3
    rm -rf "$_dir"
    # the log of a hopper started before must not be read for this one's
    # port: the shell truncates the log only once the child has begun
    rm -f "$_log"
    "$_bin" --listen 127.0.0.1:0 --data-dir "$_dir" "$@" 2> "$_log" &
    hopper_pid=$!
    _i=0
    while ! grep -qs 'listening on 127.0.0.1:' "$_log"; do
        _i=$((_i + 1)); [ $_i -gt 300 ] && { echo "$prog: hopper did not start" >&2; exit 1; }
        sleep 0.1
    done
    hopper_port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$_log" | head -1)
}

# measure URL CHANNELS: one wrk run of 100-byte POSTs (2 threads, 50
# keep-alive connections, $duration s); prints "REQ_PER_S P99_MS". Any
# non-2xx answer or socket error fails the benchmark.
measure() { wrk_run 2 50 "$1" "$2" 100; }

# wrk_run THREADS CONNECTIONS URL CHANNELS BODY_BYTES: measure's wrk run with
# its shape given: BODY_BYTES-byte POSTs (post.lua), $duration s.
wrk_run() {
    _out=$(CHANNELS=$4 BODY_BYTES=$5 wrk -t"$1" -c"$2" -d"${duration}s" --latency -s "$here/post.lua" "$3")
    if echo "$_out" | grep -q -e 'Non-2xx' -e 'Socket errors'; then
        echo "$prog: $3 answered errors:" >&2; echo "$_out" >&2; exit 1
    fi
    _rps=$(echo "$_out" | awk '/^Requests\/sec:/ {print $2}')
    _p99=$(echo "$_out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000}
          else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}
          printf "%.3f", v}')
    echo "$_rps $_p99"
}

# median: of the numbers on standard input, one a line
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# start_nginx SERVER_CONF: a daemon nginx (a worker a CPU) run from $work,
# its http{} block including SERVER_CONF, in which @PORT@ stands for the port
# to listen on. nginx cannot pick a free port itself, so ports are tried until
# one binds; sets ngx_port. $nginx is the binary.
start_nginx() {
    mkdir -p "$work/ngx"
    ngx_port=""
    for _try in 1 2 3 4 5 6 7 8 9 10; do
        _p=$(( ($$ * 7 + _try * 7919) % 20000 + 30000 ))
        sed "s/@PORT@/$_p/g" "$1" > "$work/server.conf"
        cat > "$work/nginx.conf" <<CONF
worker_processes $(nproc);
pid $work/nginx.pid;
error_log $work/ngx/error.log;
daemon on;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/ngx;
    proxy_temp_path $work/ngx;
    fastcgi_temp_path $work/ngx;
    uwsgi_temp_path $work/ngx;
    scgi_temp_path $work/ngx;
    keepalive_requests 1000000;
    include $work/server.conf;
}
CONF
        if "$nginx" -c "$work/nginx.conf" -p "$work" -e "$work/ngx/error.log" 2>/dev/null; then
            ngx_port=$_p
            return
        fi
    done
    echo "$prog: nginx did not start:" >&2
    cat "$work/ngx/error.log" >&2
    exit 1
}

# stop_nginx: the one start_nginx started, waiting until it is gone.
stop_nginx() {
    kill "$(cat "$work/nginx.pid")"
    while [ -f "$work/nginx.pid" ]; do sleep 0.05; done
}
