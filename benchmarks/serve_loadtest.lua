-- wrk script for `quasar serve`: POST one JPEG to /score (the path in $QUASAR_WRK_IMAGE), and print the
-- summary as one JSON line (prefixed QUASAR_WRK) for benchmarks/serve_loadtest.py to read.
local path = os.getenv("QUASAR_WRK_IMAGE")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
local token = os.getenv("QUASAR_LOADTEST_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'QUASAR_WRK {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
