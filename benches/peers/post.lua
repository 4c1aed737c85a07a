-- wrk: POST BODY (env) with an optional bearer token (AUTH); a response that is not 200 or lacks
-- CHECK is counted as bad and reported on a "BAD n" line.
local threads = {}
function setup(thread) table.insert(threads, thread) end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or "{}"
local auth = os.getenv("AUTH") or ""
if #auth > 0 then wrk.headers["Authorization"] = "Bearer " .. auth end
local check = os.getenv("CHECK") or ""
function init(args) bad = 0; sample = "" end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, check, 1, true) then
    bad = bad + 1
    if #sample == 0 then sample = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
  end
end
function done(summary, latency, requests)
  local b, s = 0, ""
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
    local ts = t:get("sample")
    if ts and #ts > 0 then s = ts end
  end
  io.write(string.format("BAD %d\n", b))
  if #s > 0 then io.write("BADSAMPLE " .. s:gsub("\n", " ") .. "\n") end
end
