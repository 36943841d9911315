// Preloaded into the CLI (`node --require <this> dist/cli.js run ...`, as test/bench/job.ts does):
// at exit, the CPU time of each of this Node process's threads, read from /proc/self/task/*/ —
// `schedstat` (nanoseconds on the CPU) where the kernel has it, else utime + stime of `stat`
// (clock ticks, 10 ms each). Written as one JSON line to BENCH_THREAD_CPU_FILE, or to stderr:
//   {"source":"schedstat","main_ms":…,"others_ms":…,"worker_ms":…,"children_ms":…,"process_ms":…,
//    "ended_ms":…,"threads":[{"tid":…,"name":"node","ms":…},…]}
// `main` is the JavaScript thread (tid = pid); `others` are libuv's pool, V8's compiler and GC
// helpers, and any worker thread. Only this process: its Python children are not counted. On a
// system without /proc (macOS) the line is {"unavailable": "<why>"}. Threads that ended before
// exit are gone from /proc; the total (process.cpuUsage) is written too, so that they show as the
// difference. A preload also runs in each worker thread (the results store's writer): there it
// notes its thread id and, when it ends, its CPU time, in `<file>.workers`, so that the line can
// name worker threads (`"worker": true`) even after they ended.
'use strict';
const fs = require('node:fs');
const { isMainThread } = require('node:worker_threads');

const WORKERS_FILE = process.env.BENCH_THREAD_CPU_FILE ? `${process.env.BENCH_THREAD_CPU_FILE}.workers` : undefined;

const TICK_MS = 10; // USER_HZ is 100 on every Linux this runs on (getconf CLK_TCK)

function threadCpu() {
  const dir = '/proc/self/task';
  if (!fs.existsSync(dir))
    return { unavailable: `${dir} does not exist (${process.platform}): per-thread CPU is Linux-only` };
  const threads = [];
  let source = 'schedstat';
  for (const tid of fs.readdirSync(dir)) {
    let ms;
    try {
      ms = Number(fs.readFileSync(`${dir}/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
    } catch {
      // a kernel without CONFIG_SCHEDSTATS: the coarser ticks of stat
      source = 'stat';
      try {
        const stat = fs.readFileSync(`${dir}/${tid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ms = (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime, stime (fields 14 and 15)
      } catch {
        continue; // the thread ended meanwhile
      }
    }
    let name = '';
    try {
      name = fs.readFileSync(`${dir}/${tid}/comm`, 'utf8').trim();
    } catch {
      // ended meanwhile: counted, unnamed
    }
    threads.push({ tid: Number(tid), name, ms: Math.round(ms * 1000) / 1000 });
  }
  const workers = workerThreads();
  for (const t of threads) if (workers.has(t.tid)) t.worker = true;
  // workers that ended: their CPU as they said it at their end
  for (const [tid, w] of workers)
    if (w.ms !== undefined && !threads.some((t) => t.tid === tid))
      threads.push({ tid, name: '(ended)', ms: w.ms, worker: true });
  const main = threads.find((t) => t.tid === process.pid);
  const mainMs = main ? main.ms : 0;
  const allMs = threads.reduce((sum, t) => sum + t.ms, 0);
  const usage = process.cpuUsage();
  // its children that ended and were reaped (the runners): cutime + cstime, fields 16 and 17
  let childrenMs;
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    childrenMs = (Number(fields[13]) + Number(fields[14])) * TICK_MS;
  } catch {
    childrenMs = undefined;
  }
  const workerMs = threads.filter((t) => t.worker).reduce((sum, t) => sum + t.ms, 0);
  return {
    source,
    worker_ms: Math.round(workerMs * 1000) / 1000,
    children_ms: childrenMs,
    main_ms: mainMs,
    others_ms: Math.round((allMs - mainMs) * 1000) / 1000,
    process_ms: (usage.user + usage.system) / 1000,
    // threads that ended before exit (a worker thread that was stopped): no longer in /proc
    ended_ms: Math.max(0, Math.round((usage.user + usage.system) / 1000 - allMs)),
    threads: threads.sort((a, b) => b.ms - a.ms),
  };
}

/** This thread's CPU (ms) and id, from /proc/thread-self (Linux 3.17+). */
function selfThread() {
  const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  const ms = Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  return { tid, ms: Math.round(ms * 1000) / 1000 };
}

function workerThreads() {
  const byTid = new Map();
  if (!WORKERS_FILE || !fs.existsSync(WORKERS_FILE)) return byTid;
  for (const line of fs.readFileSync(WORKERS_FILE, 'utf8').split('\n').filter(Boolean)) {
    const entry = JSON.parse(line);
    byTid.set(entry.tid, { ...byTid.get(entry.tid), ...entry });
  }
  return byTid;
}

if (!isMainThread) {
  if (WORKERS_FILE)
    try {
      fs.appendFileSync(WORKERS_FILE, `${JSON.stringify({ tid: selfThread().tid })}\n`);
      process.on('exit', () => fs.appendFileSync(WORKERS_FILE, `${JSON.stringify(selfThread())}\n`));
    } catch {
      // no /proc/thread-self: the worker stays unnamed
    }
} else {
  // a worker that is terminated runs no exit handler: its CPU is read from here just before
  const { Worker } = require('node:worker_threads');
  const terminate = Worker.prototype.terminate;
  Worker.prototype.terminate = function (...args) {
    try {
      for (const [tid] of workerThreads()) {
        const ms = Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
        fs.appendFileSync(WORKERS_FILE, `${JSON.stringify({ tid, ms: Math.round(ms * 1000) / 1000 })}\n`);
      }
    } catch {
      // gone already, or no /proc: its CPU shows as ended_ms
    }
    return terminate.apply(this, args);
  };
  process.on('exit', () => {
    try {
      const line = `${JSON.stringify({ pid: process.pid, ...threadCpu() })}\n`;
      if (process.env.BENCH_THREAD_CPU_FILE) fs.writeFileSync(process.env.BENCH_THREAD_CPU_FILE, line);
      else fs.writeSync(2, line);
    } catch {
      // never change the CLI's exit because of the probe
    }
  });
}
