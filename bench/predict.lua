-- Each request is the next line of REQUESTS_FILE. "TOKEN SYMBOL": a new
-- (user, symbol), a real first prediction, never a retry (bench/predict).
-- "TOKEN" alone: a GET of the URL's path as that player (bench/ratelimit).
local lines = {}
local threads = tonumber(os.getenv("WRK_THREADS"))
for line in io.lines(os.getenv("REQUESTS_FILE")) do
  lines[#lines + 1] = line
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
  local line = lines[(counter % #lines) + 1]
  counter = counter + threads
  local token, symbol = line:match("^(%S+) ?(%S*)$")
  if symbol == "" then
    return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
  end
  return wrk.format("POST", "/v1/predictions/" .. symbol,
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
    '{"choice":"UP"}')
end

function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"seconds\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"non2xx\": %d, \"errors\": %d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
