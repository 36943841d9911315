// Preloaded into the CLI by test/bench/startup.ts (`node --require <this> dist/cli.js run ...`): on
// exit, writes where the process's start-up went as one JSON object to BENCH_MARKS_FILE. Times
// are epoch milliseconds with sub-ms precision (performance.timeOrigin + now), on the same clock
// as the bench's own and close to the engine's event timestamps. It hooks only what any build
// of the CLI goes through (the main module's compile, vm.Script, ChildProcess.spawn), so two
// builds are measured alike.
'use strict';
const fs = require('node:fs');
const Module = require('node:module');
const vm = require('node:vm');
const { ChildProcess } = require('node:child_process');

const origin = performance.timeOrigin;
const now = () => origin + performance.now();
const cpuAtStart = process.cpuUsage();
const marks = { origin, preload: now(), compiles: [], spawns: [] };

// the main module: read, compiled and evaluated (with the synchronous start of the command)
const compile = Module.prototype._compile;
Module.prototype._compile = function (...args) {
  const main = marks.mainStart === undefined;
  if (main) marks.mainStart = now();
  try {
    return compile.apply(this, args);
  } finally {
    if (main) marks.mainEnd = now();
  }
};

// a loader that compiles the bundle itself (dist/cli.js → cli-main.js): how long V8 took
const Script = vm.Script;
vm.Script = class extends Script {
  constructor(code, options) {
    const start = now();
    super(code, options);
    marks.compiles.push({
      file: options && options.filename,
      ms: now() - start,
      cached: Boolean(options && options.cachedData),
      rejected: this.cachedDataRejected === true,
    });
  }
};

// the runner's spawn: fork + exec, synchronous in Node
const spawn = ChildProcess.prototype.spawn;
ChildProcess.prototype.spawn = function (...args) {
  const start = now();
  try {
    return spawn.apply(this, args);
  } finally {
    marks.spawns.push({ file: args[0] && args[0].file, start, end: now() });
  }
};

process.on('exit', () => {
  marks.exit = now();
  const timing = performance.nodeTiming;
  marks.v8Start = origin + timing.v8Start;
  marks.bootstrapComplete = origin + timing.bootstrapComplete;
  const cpu = process.cpuUsage(cpuAtStart);
  // CPU from the preload on, every thread of this process; the node start before it is apart
  marks.cpuMs = (cpu.user + cpu.system) / 1000;
  try {
    fs.writeFileSync(process.env.BENCH_MARKS_FILE, JSON.stringify(marks));
  } catch {
    // never change the CLI's exit because of the probe: the bench says the marks are missing
  }
});
