-- wrk script for the HTTP accept peak: POST /api/v1/queries with prepared
-- query forms, each sent once (a phone can be queried once a day).
--
-- Arguments after `--`: <forms file> <wrk thread count>. The file has one
-- line per query, "<bearer token>\t<json body>"; thread k of n sends lines
-- k, k+n, ... When a thread's share is sent it asks GET /healthz (never
-- rate-limited) until wrk's duration ends, so the accepted rate is counted
-- from its own clock: first request to last 202 answer, over all threads.
-- done() prints one JSON line.
--
-- wrk calls request() once on thread 0 before the run, only to check the
-- request (script_verify_request): that call gets the idle request, so no
-- form is spent on it and the clock does not start.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC: the same for every thread
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {}
local count = 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local path, n = args[1], tonumber(args[2])
  forms = {}
  local i = 0
  for line in io.lines(path) do
    if i % n == id then
      local token, body = line:match("^([^\t]+)\t(.+)$")
      forms[#forms + 1] = wrk.format("POST", "/api/v1/queries",
        {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
    end
    i = i + 1
  end
  idle = wrk.format("GET", "/healthz")
  nxt, sent, accepted, refused, first, last = 1, 0, 0, 0, 0, 0
  verifying = (id == 0)
  refusals = ""
end

function request()
  if verifying then
    verifying = false
    return idle
  end
  if first == 0 then first = now() end
  local form = forms[nxt]
  if form == nil then return idle end
  nxt = nxt + 1
  sent = sent + 1
  return form
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    last = now()
  elseif status ~= 200 then
    refused = refused + 1
    if #refusals < 2000 then refusals = refusals .. status .. " " .. (body:match('"code":%s*"([%u_]+)"') or "?") .. ";" end
  end
end

function done(summary, latency, requests)
  local acc, ref, snt, t0, t1, why = 0, 0, 0, math.huge, 0, ""
  for _, t in ipairs(threads) do
    acc = acc + t:get("accepted")
    ref = ref + t:get("refused")
    snt = snt + t:get("sent")
    local f, l = t:get("first"), t:get("last")
    if f > 0 and f < t0 then t0 = f end
    if l > t1 then t1 = l end
    why = why .. t:get("refusals")
  end
  local e = summary.errors
  io.write(string.format(
    '\n{"sent":%d,"accepted":%d,"refused":%d,"seconds":%.6f,"errors":%d,"p50_us":%.1f,"p99_us":%.1f,"refusals":"%s"}\n',
    snt, acc, ref, (t1 > t0) and (t1 - t0) or 0, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), why:sub(1, 500)))
end
