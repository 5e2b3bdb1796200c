-- wrk script for the bare aiohttp ceiling: POST a small JSON body, the size
-- of a query form, and print the run as one JSON line when done.
wrk.method = "POST"
wrk.body = '{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true}'
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%.1f,"p99_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
