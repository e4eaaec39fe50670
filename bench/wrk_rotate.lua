-- wrk script for bench/load.py: POSTs a rotating set of request bodies (one JSON body per line of
-- $BENCH_BODIES; none -> a GET of the URL's path) and writes a JSON summary to $BENCH_WRK_OUT.
local bodies = {}
local method = os.getenv("BENCH_METHOD") or "POST"
local source = os.getenv("BENCH_BODIES") or ""
if source ~= "" then
  for line in io.lines(source) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
end
wrk.method = method
wrk.headers["Content-Type"] = "application/json"
local counter = 0

function init(args)
  -- threads start at different offsets so they don't send the same review at the same time
  counter = tonumber(os.getenv("BENCH_OFFSET") or "0") + math.random(0, #bodies)
end

function request()
  if #bodies == 0 then
    return wrk.format(method, nil)
  end
  counter = counter % #bodies + 1
  return wrk.format(method, nil, nil, bodies[counter])
end

function done(summary, latency, requests)
  local e = summary.errors
  local out = assert(io.open(os.getenv("BENCH_WRK_OUT"), "w"))
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "latency_us": {"mean": %.1f, "max": %d, "p50": %d, ' ..
    '"p95": %d, "p99": %d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50.0), latency:percentile(95.0),
    latency:percentile(99.0)))
  out:close()
end
