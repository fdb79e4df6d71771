-- 70% reads (BENCH_PATHS) and 30% patrol reports.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  if n % 10 < 3 then return report_request(n) end
  return read_request(n)
end
