-- wrk script: prints wrk's summary and latency distribution as one JSON
-- line for the harness (bench/load.go). It defines no request or response
-- function, so wrk keeps its fast path: one pre-built request, sent again
-- and again.
local points = {PERCENTILES}

done = function(summary, latency, requests)
  local e = summary.errors
  local pct = {}
  for i, p in ipairs(points) do
    -- percentile(100) is 0 in wrk 4.1: take the maximum instead.
    local v = latency.max
    if p < 100 then v = latency:percentile(p) end
    pct[i] = string.format("[%g,%d]", p, v)
  end
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"min_us":%d,"max_us":%d,"mean_us":%.1f,"pct":[%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, table.concat(pct, ",")))
end
