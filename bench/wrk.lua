-- wrk script for bench/run.py: Anthropic Messages calls, JSON or streamed, each with its own id.
--
--   BENCH_KEY=sk-sg-... BENCH_MODE=stream BENCH_ID_PREFIX=r1-stream-c50 \
--     wrk -t1 -c50 -d5s -s bench/wrk.lua http://127.0.0.1:8787/v1/messages
--
-- Every request carries `x-client-request-id: <prefix>-<thread>-<n>`, so the ledger can be checked
-- call by call (one row per id). A call counts as good only with HTTP 200 and a complete body:
-- `"usage"` in a JSON answer, the `message_stop` event in a stream. The last line of output is
-- one JSON object for bench/run.py (wrk's latencies are microseconds).

local key = os.getenv("BENCH_KEY") or "unset"
local stream = os.getenv("BENCH_MODE") == "stream"
local prefix = os.getenv("BENCH_ID_PREFIX") or "bench"
local model = os.getenv("BENCH_MODEL") or "claude-haiku-4-5"
-- The fake answers min(max_tokens, its --output-tokens) tokens.
local max_tokens = os.getenv("BENCH_MAX_TOKENS") or "64"

local body = '{"model":"' .. model .. '","max_tokens":' .. max_tokens .. ',"messages":[{"role":"user",'
  .. '"content":"Say hello to the benchmark in one short sentence."}]'
  .. (stream and ',"stream":true}' or '}')
local marker = stream and "message_stop" or '"usage"'
-- Bedrock's InvokeModelWithResponseStream (bench/cloud_bench.py): the model is in the URL, and the
-- stream is an AWS event stream whose chunks carry the Anthropic events in base64.
if os.getenv("BENCH_MODE") == "bedrock-stream" then
  body = '{"anthropic_version":"bedrock-2023-05-31","max_tokens":' .. max_tokens .. ',"messages":[{"role":"user",'
    .. '"content":"Say hello to the benchmark in one short sentence."}]}'
  marker = "eyJ0eXBlIjoibWVzc2FnZV9zdG9w"  -- base64 of {"type":"message_stop"
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

-- Per thread (each wrk thread has a Lua state of its own); globals, so done() can read them.
sent, good, bad, first_bad = 0, 0, 0, ""
local headers

function init(args)
  headers = {
    ["x-api-key"] = key,
    ["anthropic-version"] = "2023-06-01",
    ["content-type"] = "application/json",
  }
end

function request()
  sent = sent + 1
  headers["x-client-request-id"] = prefix .. "-" .. tid .. "-" .. sent
  return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, resp_body)
  if status == 200 and string.find(resp_body, marker, 1, true) then
    good = good + 1
  else
    bad = bad + 1
    if first_bad == "" then
      first_bad = "HTTP " .. status .. ": " .. string.sub(resp_body, 1, 200)
    end
  end
end

local function clean(text)
  return (string.gsub(text, '[^%w%s%.:,;_%-/()=]', "?"))
end

function done(summary, latency, requests)
  local total_sent, total_good, total_bad, first = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_good = total_good + thread:get("good")
    total_bad = total_bad + thread:get("bad")
    if first == "" then first = thread:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us": %d, "completed": %d, "sent": %d, "good": %d, "bad": %d, '
      .. '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"mean_us": %.1f, "max_us": %d, "first_error": "%s"}\n',
    summary.duration, summary.requests, total_sent, total_good, total_bad,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, clean(first)))
end
