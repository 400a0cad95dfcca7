-- wrk script for every closed-loop scenario of load/run.
--
--   wrk -t2 -c64 -d20s -s load/lua/bulkhead.lua http://127.0.0.1:PORT -- key=value ...
--
-- Arguments (after `--`):
--   mode=me|get|orders|mix   what to send (see below)
--   path=/api/v1/users/me    the GET path (modes me, get)
--   tokens=FILE              one access token per line (modes me, orders, mix)
--   products=FILE            one product id per line (modes orders, mix)
--   mix=70,20,10             mode mix: percent of GET /users/me, GET products, POST orders
--   threads=2                wrk's -t, to spread the threads over the tokens
--   offset=0                 where in the token list the walk starts
--   accept_encoding=gzip     send Accept-Encoding: VALUE with every request (load/run
--                            --accept-encoding)
--
-- Why requests are prebuilt: wrk calls request() for every request on its single thread
-- per wrk thread, on the same 2 cores as the server. Formatting a request in Lua costs
-- generator CPU that would be charged to the server's figures, so every GET is formatted
-- once in init() and request() only picks one. Orders cannot be prebuilt (each needs a
-- fresh Idempotency-Key), so their cost is part of the write scenarios.
--
-- Why count is optional: a response() callback makes wrk hand every status, header and
-- body to Lua, which costs generator CPU too. Scenarios where only "non-2xx" matters use
-- wrk's own count (summary.errors.status); the write scenarios count. Set
-- WRK_COUNT_STATUS=1 in the environment to count.
--
-- done() prints one line "WRKJSON {...}" that load/run parses.

local opts = {}
local gets_me, gets_other = {}, {}
local tokens, products = {}, {}
local n_me, n_other = 0, 0
local next_me, next_other = 1, 1
local counter = 0
local nonce = ""
local mix_me, mix_get = 100, 0

-- One status -> count table per thread; read back by done() through thread:get().
counts = {}

local function parse_args(args)
  local o = {}
  for _, a in ipairs(args or {}) do
    local k, v = string.match(a, "^([%w_]+)=(.*)$")
    if k then o[k] = v end
  end
  o.mode = o.mode or "get"
  o.path = o.path or "/api/v1/users/me"
  return o
end

-- The headers of one request: `extra` and, when asked for, Accept-Encoding.
local function headers(extra)
  local h = extra or {}
  if opts.accept_encoding then h["Accept-Encoding"] = opts.accept_encoding end
  return h
end

local function read_lines(file)
  local out = {}
  if not file then return out end
  local f = assert(io.open(file, "r"), "cannot open " .. file)
  for line in f:lines() do
    if #line > 0 then out[#out + 1] = line end
  end
  f:close()
  return out
end

-- wrk numbers its threads only in setup(); pass an id into each thread's state so that
-- threads start at different tokens and idempotency keys never collide.
local thread_no = 0
function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_id", thread_no)
  threads = threads or {}
  table.insert(threads, thread)
end

function init(args)
  opts = parse_args(args)
  tokens = read_lines(opts.tokens)
  products = read_lines(opts.products)
  local tid = thread_id or 1
  math.randomseed(os.time() * 1000 + tid)
  nonce = string.format("%x%x", os.time(), math.random(0, 0xffffff))

  if opts.mix then
    local a, b = string.match(opts.mix, "^(%d+),(%d+)")
    mix_me, mix_get = tonumber(a), tonumber(b)
  end

  -- Prebuilt GETs: per token for authenticated paths, one for anonymous ones.
  local me_path = (opts.mode == "mix") and "/api/v1/users/me" or opts.path
  if (opts.mode == "me" or opts.mode == "mix") and #tokens > 0 then
    for i, t in ipairs(tokens) do
      gets_me[i] = wrk.format("GET", me_path, headers({ ["Authorization"] = "Bearer " .. t }))
    end
  else
    gets_me[1] = wrk.format("GET", me_path, headers())
  end
  n_me = #gets_me
  local other_path = (opts.mode == "mix") and "/api/v1/products" or opts.path
  gets_other[1] = wrk.format("GET", other_path, headers())
  n_other = 1

  -- Threads walk the tokens from different offsets, so the 1,000 users are spread over
  -- the threads rather than every thread hitting the same user at the same moment.
  -- `offset` lets a caller continue a walk where the previous run stopped (the memory
  -- check fills the cache with 100,000 users over several runs).
  local nthreads = tonumber(opts.threads) or 2
  local offset = tonumber(opts.offset) or 0
  next_me = (offset + (tid - 1) * math.floor(n_me / nthreads)) % n_me + 1
end

local function next_get_me()
  local r = gets_me[next_me]
  next_me = next_me % n_me + 1
  return r
end

local function order()
  counter = counter + 1
  local token = tokens[math.random(1, #tokens)]
  local product = products[math.random(1, #products)]
  local body = '{"items":[{"product_id":"' .. product .. '","quantity":1}]}'
  return wrk.format("POST", "/api/v1/orders", headers({
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "load-" .. nonce .. "-" .. (thread_id or 1) .. "-" .. counter,
  }), body)
end

function request()
  local m = opts.mode
  if m == "me" then
    return next_get_me()
  elseif m == "get" then
    return gets_other[1]
  elseif m == "orders" then
    return order()
  else -- mix
    local r = math.random(1, 100)
    if r <= mix_me then
      return next_get_me()
    elseif r <= mix_me + mix_get then
      return gets_other[1]
    else
      return order()
    end
  end
end

-- Only defined when counting: wrk decides once, in its main Lua state (which never sees
-- the `--` arguments), whether answers go to Lua at all, so the switch is an environment
-- variable that every state reads when the script loads.
if os.getenv("WRK_COUNT_STATUS") == "1" then
  function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads or {}) do
    local c = t:get("counts")
    if type(c) == "table" then
      for status, n in pairs(c) do
        all[status] = (all[status] or 0) + n
      end
    end
  end
  local parts = {}
  for status, n in pairs(all) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"status":{%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9),
    table.concat(parts, ",")))
end
