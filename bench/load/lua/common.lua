-- Shared by the benchmark scripts. wrk runs one Lua state per thread: setup() numbers the
-- threads, the scripts read their data from files named in the environment, and done()
-- prints one JSON line the runner parses.
local created = 0
function setup(thread)
  thread:set("thread_index", created)
  created = created + 1
end

function lines(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = line end
  return out
end

function fields(line)
  local out = {}
  for word in line:gmatch("%S+") do out[#out + 1] = word end
  return out
end

local run = tonumber(os.getenv("BENCH_RUN") or "1")
local sequence = 0
function unique_uuid()
  sequence = sequence + 1
  return string.format("%08x-%04x-4000-8000-%012x", run, thread_index, sequence)
end

-- Grid workers: "token lat lon" per line, the south-west corner of the worker's grid.
local workers = nil
local function worker(n)
  workers = workers or lines(os.getenv("BENCH_WORKERS"))
  local w = fields(workers[(n * 7 + thread_index * 13) % #workers + 1])
  local lat = tonumber(w[2]) + 0.0005 + (n % 90) * 0.0001
  local lon = tonumber(w[3]) + 0.0005 + (n % 89) * 0.0001
  return w[1], lat, lon
end

function report_request(n)
  local token, lat, lon = worker(n)
  local body = string.format(
    '{"client_id":"%s","category_code":"K%d","description":"bench report %d","lat":%.6f,"lon":%.6f}',
    unique_uuid(), n % 30, n, lat, lon)
  return wrk.format("POST", "/api/v1/events",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

function clock_in_request(n)
  local token, lat, lon = worker(n)
  local body = string.format('{"client_id":"%s","lat":%.6f,"lon":%.6f}', unique_uuid(), lat, lon)
  return wrk.format("POST", "/api/v1/clock-ins",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

-- Reads: "|"-separated paths, read with BENCH_TOKEN.
local paths = nil
function read_request(n)
  if paths == nil then
    paths = {}
    for p in (os.getenv("BENCH_PATHS") or "/healthz"):gmatch("[^|]+") do paths[#paths + 1] = p end
  end
  return wrk.format("GET", paths[n % #paths + 1],
    {["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")})
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,' ..
    '"max_ms":%.3f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
