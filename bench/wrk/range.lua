-- range.lua: every request asks for one random byte range of SPAN bytes
-- (default 64 KiB) inside an object of SIZE bytes. Half the ranges start on
-- a SPAN boundary, half at any byte, so caches that store fixed-size pieces
-- (nginx slices, edgeproxy chunks) also see ranges straddling two pieces.
--   wrk -t2 -c64 -d10s -s bench/wrk/range.lua URL -- SIZE [SPAN]
-- A server that ignores Range answers 200 with the whole object: wrk counts
-- that as success, so check one response for 206 first (the harness does).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "summary.lua")

local size, span = 0, 65536
local threads = 0

function setup(thread)
   thread:set("thread_id", threads)
   threads = threads + 1
end

function init(args)
   size = tonumber(args[1]) or error("range.lua: object size missing (-- SIZE [SPAN])")
   span = tonumber(args[2]) or span
   if span > size then
      error("range.lua: span larger than the object")
   end
   math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
end

function request()
   local off
   if math.random() < 0.5 then
      off = math.random(0, math.floor(size / span) - 1) * span
   else
      off = math.random(0, size - span)
   end
   -- wrk.format adds Host from wrk.headers.
   return wrk.format(nil, nil, {Range = string.format("bytes=%.0f-%.0f", off, off + span - 1)})
end
