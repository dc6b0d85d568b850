-- summary.lua: prints wrk's totals as one machine-readable line for
-- bench/harness (wrk's own text rounds Transfer/sec to two decimals).
--   wrk -t2 -c64 -d10s -s bench/wrk/summary.lua http://127.0.0.1:8080/download/hot-1m
-- Other scripts load it with dofile() to print the same line.

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRKJSON {\"requests\":%.0f,\"bytes\":%.0f,\"duration_us\":%.0f," ..
      "\"connect_errors\":%.0f,\"read_errors\":%.0f,\"write_errors\":%.0f," ..
      "\"status_errors\":%.0f,\"timeouts\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f}\n",
      summary.requests, summary.bytes, summary.duration,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
