-- Patrol clock-ins: unique client_ids, points inside the worker's grid.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  return clock_in_request(n)
end
