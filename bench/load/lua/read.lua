-- Reads of BENCH_PATHS in turn.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  return read_request(n)
end
