-- wrk script for bench/batch-vs-redis, two modes (env BATCH_MODE):
--   post  POST one multipart/mixed batch of PARTS (100) parts of BODY_BYTES
--         (1024) bytes each to the URL, the body built once;
--   get   GET the URL (a batch GET, ?max=100) until the channel answers 204
--         (empty): that thread then stops. done() prints
--         "drain SECONDS BAD": the time from the first request of any thread
--         to the last thread's first 204 (monotonic clock), and the number of
--         answers neither 200 nor 204.
local mode = os.getenv("BATCH_MODE") or "post"
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } batch_timespec;
int clock_gettime(int clock, batch_timespec *tp);
]]
local ts = ffi.new("batch_timespec")
local function now() -- CLOCK_MONOTONIC, the same in every thread
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

if mode == "post" then
    local parts = tonumber(os.getenv("PARTS") or "100")
    local payload = string.rep("x", tonumber(os.getenv("BODY_BYTES") or "1024"))
    local boundary = "hopper-bench-batch"
    local pieces = {}
    for i = 1, parts do
        pieces[i] = "--" .. boundary .. "\r\nContent-Type: application/octet-stream\r\n\r\n" ..
            payload .. "\r\n"
    end
    wrk.method = "POST"
    wrk.body = table.concat(pieces) .. "--" .. boundary .. "--\r\n"
    wrk.headers["Content-Type"] = "multipart/mixed; boundary=" .. boundary
else
    local threads = {}
    function setup(thread)
        table.insert(threads, thread)
    end

    started, ended, bad = nil, nil, 0
    function request()
        if not started then started = now() end
        return wrk.format()
    end

    function response(status, headers, body)
        if status == 204 then
            if not ended then ended = now() end
            wrk.thread:stop()
        elseif status ~= 200 then
            bad = bad + 1
        end
    end

    function done(summary, latency, requests)
        local first, last, errors = nil, nil, 0
        for _, t in ipairs(threads) do
            local s, e = t:get("started"), t:get("ended")
            if s and (not first or s < first) then first = s end
            if not e then last = -1 elseif last ~= -1 and (not last or e > last) then last = e end
            errors = errors + (t:get("bad") or 0)
        end
        if not first or not last or last < 0 then
            io.write("drain unfinished ", errors, "\n")
        else
            io.write(string.format("drain %.6f %d\n", last - first, errors))
        end
    end
end
