// Preloaded into the CLI by test/bench/job.ts (`node --require <this> dist/cli.js run ...`): on exit,
// writes the process's peak resident set size as one JSON line, {"peak_rss_bytes": N}, to the file
// named by BENCH_PEAK_RSS_FILE, or to stderr. maxRSS is in KiB. Only this Node process is counted,
// not its Python children.
'use strict';
const fs = require('node:fs');

process.on('exit', () => {
  const line = `${JSON.stringify({ peak_rss_bytes: process.resourceUsage().maxRSS * 1024, pid: process.pid })}\n`;
  try {
    if (process.env.BENCH_PEAK_RSS_FILE) fs.writeFileSync(process.env.BENCH_PEAK_RSS_FILE, line);
    else fs.writeSync(2, line);
  } catch {
    // never change the CLI's exit because of the probe
  }
});
