-- bench/ratelimit with many players: each request is the next player's
-- token (one per line of TOKENS_FILE), so no player's counter row is hot.
local tokens = {}
local threads = tonumber(os.getenv("WRK_THREADS"))
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  counter = id
end

function request()
  local token = tokens[(counter % #tokens) + 1]
  counter = counter + threads
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end
