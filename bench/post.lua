-- wrk script for bench/ceiling: POST a 100-byte body (BODY_BYTES=N for
-- another size), to /channels/c0 .. /channels/c(N-1) in turn when
-- CHANNELS=N is set, else to the URL's path.
local channels = tonumber(os.getenv("CHANNELS") or "0")
local body = string.rep("x", tonumber(os.getenv("BODY_BYTES") or "100"))
local n = 0
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/octet-stream"

request = function()
    if channels > 0 then
        n = n + 1
        return wrk.format(nil, "/channels/c" .. (n % channels))
    end
    return wrk.format()
end
