-- Patrol reports: unique client_ids, points inside the reporting worker's grid.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  return report_request(n)
end
