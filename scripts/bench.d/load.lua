-- wrk script for Authcap's benchmark (scripts/bench). Arguments after `--`:
--   MODE   mixed   create an order, then capture 400 of it (two writes per order)
--          create  create orders only
--          capture capture 400 from pre-created orders (ORDERS file: one id per line)
--   KEY    the merchant's secret key
--   RATE   optional: total requests per second to pace at (0 = as fast as possible)
--   ORDERS file of order ids (capture mode)
--   CONNECTIONS the connection count wrk was given (to pace at RATE)
--   RECORD optional file to append created order ids to (create mode)
--   TAG    optional: what makes this process's references and keys its own (several wrk
--          processes started in one second would otherwise draw the same ones)
-- Every request carries a unique reference and Idempotency-Key.

local mode, key, rate, orders_file
local counter = 0
local ready = {}
local orders = {}
local thread_tag = ""
local delay_ms = 0
local record
-- Pacing: each second, the delay between a connection's requests is corrected by the rate
-- achieved in the second before (wrk's Lua has no finer clock).
local this_second, answered_this_second = 0, 0

function init(args)
  mode = args[1] or "mixed"
  key = args[2] or ""
  rate = tonumber(args[3] or "0")
  orders_file = args[4]
  thread_tag = string.format("%x%x%s", os.time(), math.random(1, 2^30), args[7] or "")
  if rate > 0 then
    delay_ms = tonumber(args[5]) / rate * 1000
  end
  if args[6] and #args[6] > 0 then
    record = io.open(args[6], "a")
  end
  if mode == "capture" then
    for line in io.lines(orders_file) do
      if #line > 0 then orders[#orders + 1] = line end
    end
  end
end

function delay()
  if delay_ms <= 0 then return 0 end
  local whole = math.floor(delay_ms)
  if math.random() < delay_ms - whole then whole = whole + 1 end
  return whole
end

local function pace()
  local now = os.time()
  if now ~= this_second then
    if this_second ~= 0 and answered_this_second > 0 then
      local correction = answered_this_second / rate
      if correction > 2 then correction = 2 elseif correction < 0.5 then correction = 0.5 end
      delay_ms = delay_ms * correction
    end
    this_second, answered_this_second = now, 0
  end
  answered_this_second = answered_this_second + 1
end

local function headers(n)
  return {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = thread_tag .. "-" .. n,
  }
end

local function create(n)
  local body = '{"reference":"' .. thread_tag .. "-" .. n ..
    '","amount":100000000,"currency":"EUR","payment_method":{"type":"card","number":"4242424242424242"}}'
  return wrk.format("POST", "/v1/orders", headers(n), body)
end

local function capture(id, n)
  return wrk.format("POST", "/v1/orders/" .. id .. "/captures", headers(n), '{"amount":400}')
end

function request()
  counter = counter + 1
  if mode == "capture" then
    return capture(orders[(counter % #orders) + 1], counter)
  end
  if mode == "mixed" and #ready > 0 then
    return capture(table.remove(ready), counter)
  end
  return create(counter)
end

function response(status, headers, body)
  if rate > 0 then pace() end
  if mode ~= "capture" and status == 201 then
    local id = string.match(body, '^{"id":"(ord_%w+)"')
    if id then
      if mode == "mixed" then ready[#ready + 1] = id end
      if record then record:write(id, "\n") end
    end
  end
  if status >= 300 then
    errors_seen = (errors_seen or 0) + 1
    if errors_seen <= 3 then io.stderr:write("status " .. status .. ": " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, bad))
end
