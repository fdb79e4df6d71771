-- The reference app's insert, with the same body as a patrol report.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  local body = string.format(
    '{"client_id":"%s","category_code":"K%d","description":"bench report %d","lat":23.005,"lon":113.005}',
    unique_uuid(), n % 30, n)
  return wrk.format("POST", "/insert", {["Content-Type"] = "application/json"}, body)
end
