-- objects.lua: every request GETs one of COUNT objects named PREFIX000,
-- PREFIX001, ... (three digits), chosen at random, so a cache must hold all
-- of them to answer from memory.
--   wrk -t2 -c64 -d10s -s bench/wrk/objects.lua http://127.0.0.1:8080/download/disk-1m- -- COUNT

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "summary.lua")

local count = 0
local threads = 0

function setup(thread)
   thread:set("thread_id", threads)
   threads = threads + 1
end

function init(args)
   count = tonumber(args[1]) or error("objects.lua: object count missing (-- COUNT)")
   if count < 1 or count > 1000 then
      error("objects.lua: COUNT must be 1 to 1000")
   end
   math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
end

function request()
   return wrk.format(nil, wrk.path .. string.format("%03d", math.random(0, count - 1)))
end
