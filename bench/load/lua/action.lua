-- One action (BENCH_ACTION with body BENCH_BODY, by BENCH_TOKEN) on each ticket of
-- BENCH_DATA once, the tickets shared out between the threads (BENCH_THREADS).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local ids, step, position
local path = "/api/v1/tickets/%s/actions/" .. os.getenv("BENCH_ACTION")
local headers = nil
function init(args)
  ids = lines(os.getenv("BENCH_DATA"))
  step = tonumber(os.getenv("BENCH_THREADS"))
  position = thread_index + 1
  headers = {["Content-Type"] = "application/json",
             ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
end
function request()
  if position > #ids then
    wrk.thread:stop()  -- every ticket acted on; this thread is done
    return wrk.format("GET", "/healthz")
  end
  local id = ids[position]
  position = position + step
  return wrk.format("POST", string.format(path, id), headers, os.getenv("BENCH_BODY"))
end
