-- wrk script: replay pre-signed raw HTTP/1.1 requests from a file (requests separated by NUL bytes).
-- Arguments after "--": <file> <thread count> <cycle|unique>.
-- cycle:  every thread replays all requests in turn (the same request may be sent many times).
-- unique: thread k of n sends requests k, k+n, k+2n, ... once each, then stops; the summary says it ran out.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("thread_id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local pool = {}
local index = 0
local unique = false
exhausted = 0

function init(args)
   local path, count, mode = args[1], tonumber(args[2]), args[3]
   unique = mode == "unique"
   local file = assert(io.open(path, "rb"))
   local data = file:read("*a")
   file:close()
   local position, item = 1, 0
   while position <= #data + 1 do
      local stop = string.find(data, "\0", position, true) or (#data + 1)
      if not unique or item % count == thread_id then
         pool[#pool + 1] = string.sub(data, position, stop - 1)
      end
      item = item + 1
      position = stop + 1
   end
end

function request()
   index = index + 1
   if index > #pool then
      if unique then
         exhausted = 1
         wrk.thread:stop()
      end
      index = 1
   end
   return pool[index]
end

function done(summary, latency, requests)
   local ran_out = 0
   for _, thread in ipairs(threads) do
      if thread:get("exhausted") == 1 then
         ran_out = 1
      end
   end
   local errors = summary.errors
   io.write(string.format(
      "BENCHRESULT requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d exhausted=%d\n",
      summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write, errors.timeout,
      latency:percentile(50.0), latency:percentile(99.0), ran_out))
end
