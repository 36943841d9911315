/**
 * `modelops-debugger trace`: a real job's run (a crash and its retry, a timeout, stdout
 * pollution) as a Chrome Trace Event file, checked against the format's rules as Perfetto reads
 * them. (No Perfetto trace processor can be installed here, from npm or apt: the rules are
 * checked by this test.)
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLI, FIRST_CALLS, scratchDir, writeBundle } from './helpers';
import { readEventLog } from '../../src/engine/job/events';
import { AUTO_TRACE_MAX_TASKS, writeRunTrace } from '../../src/engine/trace/chromeTrace';
import { readJobJson } from '../../src/engine/job/resultsReader';
import { AGGREGATION, TaskState, TASK_FIELDS, Timeline } from '../../src/engine/trace/timeline';

const scratch = scratchDir('mo-trace-');

const WIRE = `import os, time

MARKERS = os.environ["MO_TEST_MARKERS"]

${FIRST_CALLS}
def wire(entrypoint, params, seed):
    mode = params["mode"]
    if mode == "crash" and first_calls("crash", 1):
        os._exit(9)
    if mode == "hang":
        time.sleep(5)
    if mode == "noisy":
        os.write(1, b"stray bytes")
    time.sleep(0.01)
    return {"value": b"1"}
`;

interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  s?: string;
  args?: Record<string, any>;
}

function cli(args: string[], env: Record<string, string> = {}) {
  const ran = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, ...env },
  });
  return { code: ran.status, stdout: ran.stdout, stderr: ran.stderr };
}

describe('modelops-debugger trace', () => {
  let dir: string;
  let writtenByRun: string;
  let trace: { traceEvents: TraceEvent[]; displayTimeUnit: string; otherData: Record<string, unknown> };

  before(() => {
    const markers = path.join(scratch, 'markers');
    mkdirSync(markers);
    const bundleDir = writeBundle(path.join(scratch, 'bundle'), { 'wire.py': WIRE });
    const file = path.join(scratch, 'job.json');
    writeFileSync(
      file,
      JSON.stringify({
        job_id: 'traced',
        bundle: bundleDir,
        entrypoint: 'm.m/x',
        parameter_sets: ['ok', 'crash', 'hang', 'noisy'].map((mode) => ({ mode })),
        replicates: 3,
      }),
    );
    const out = path.join(scratch, 'out');
    const ran = cli(['run', file, '--out', out, '--workers', '2', '--retries', '1', '--task-timeout', '1'], {
      MO_TEST_MARKERS: markers,
    });
    assert.equal(ran.code, 1, ran.stderr); // the hanging set fails
    dir = path.join(out, 'traced');
    // the run wrote its trace itself when it ended; the command writes the same again
    writtenByRun = readFileSync(path.join(dir, 'trace.json'), 'utf8');
    const written = cli(['trace', dir, '--json']);
    assert.equal(written.code, 0, written.stderr);
    const said = JSON.parse(written.stdout);
    assert.equal(said.file, path.join(dir, 'trace.json'));
    assert.equal(said.tasks, 16);
    trace = JSON.parse(readFileSync(said.file, 'utf8'));
  });

  it('follows the Trace Event format: integer pids and tids, µs times, every process and thread named (process names on tid 0)', () => {
    assert.equal(trace.displayTimeUnit, 'ms');
    assert.equal(trace.otherData.job_id, 'traced');
    for (const event of trace.traceEvents) {
      assert.ok(['X', 'i', 'C', 'M'].includes(event.ph), JSON.stringify(event));
      assert.ok(Number.isInteger(event.pid) && event.pid >= 1, JSON.stringify(event));
      assert.ok(Number.isInteger(event.tid) && event.tid >= 0, JSON.stringify(event));
      assert.ok(Number.isInteger(event.ts), JSON.stringify(event));
      assert.equal(typeof event.name, 'string');
      if (event.ph === 'X') assert.ok(Number.isInteger(event.dur) && event.dur! >= 0, JSON.stringify(event));
      if (event.ph === 'i') assert.ok(event.s === 't' || event.s === 'p', JSON.stringify(event));
    }
    const named = (name: string) => trace.traceEvents.filter((e) => e.ph === 'M' && e.name === name);
    const processes = named('process_name');
    assert.ok(processes.every((e) => e.tid === 0 && typeof e.args?.name === 'string'));
    const threads = new Set(named('thread_name').map((e) => `${e.pid}:${e.tid}`));
    const used = trace.traceEvents.filter((e) => e.ph === 'X');
    for (const event of used) {
      assert.ok(
        processes.some((p) => p.pid === event.pid),
        `process ${event.pid} is named`,
      );
      assert.ok(threads.has(`${event.pid}:${event.tid}`), `thread ${event.pid}:${event.tid} is named`);
    }
    assert.deepEqual(
      processes.map((p) => p.args!.name),
      ['this machine'],
    );
  });

  it('a complete event per task, following each other on their track (nesting perfectly), with param_id, replicate, seed, attempt, state, pid, venv key and failure kind', () => {
    const tasks = trace.traceEvents.filter((e) => e.ph === 'X');
    assert.equal(tasks.filter((e) => e.name.startsWith('replicate ')).length, 12);
    assert.equal(tasks.filter((e) => e.name === 'aggregation').length, 4);
    const tracks = new Map<string, TraceEvent[]>();
    for (const task of tasks)
      tracks.set(`${task.pid}:${task.tid}`, [...(tracks.get(`${task.pid}:${task.tid}`) ?? []), task]);
    for (const [track, events] of tracks) {
      events.sort((a, b) => a.ts - b.ts);
      for (let i = 1; i < events.length; i++)
        assert.ok(
          events[i].ts >= events[i - 1].ts + events[i - 1].dur!,
          `${track}: ${events[i - 1].name} then ${events[i].name}`,
        );
    }
    const job = JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8'));
    const hang = job.parameter_sets.find((set: any) => set.params.mode === 'hang');
    const hung = tasks.find((e) => e.args!.param_id === hang.param_id && e.args!.replicate === 1)!;
    assert.equal(hung.args!.state, 'failed');
    assert.equal(hung.args!.failure_kind, 'task-timeout');
    assert.equal(hung.args!.seed, String(hang.seeds[1]));
    assert.ok(Number.isInteger(hung.args!.os_pid));
    assert.match(hung.args!.venv_key, /^[0-9a-f]{12}-py\d+\.\d+-[0-9a-f]{8}$/);
    const ok = tasks.find((e) => e.args!.state === 'ok' && e.name.startsWith('replicate '))!;
    assert.equal(ok.args!.attempt, 1);
    assert.ok(ok.args!.wall_ms >= 10 && ok.args!.peak_rss_kb > 0, JSON.stringify(ok.args));
  });

  it('marks the crash, the retry, the timeouts and the stdout pollution as instants; counts tasks in flight and peak RSS', () => {
    const instants = trace.traceEvents.filter((e) => e.ph === 'i');
    const names = instants.map((e) => e.name);
    assert.ok(names.includes('crash'), names.join(', '));
    assert.ok(names.includes('retry'), names.join(', '));
    assert.equal(names.filter((name) => name === 'timeout').length, 3, names.join(', '));
    assert.ok(names.includes('stdout pollution'), names.join(', '));
    const inFlight = trace.traceEvents.filter((e) => e.ph === 'C' && e.name === 'tasks in flight');
    // one at a time per track: the two runner slots, and the engine's (aggregations without targets)
    const tracks = trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args!.name);
    assert.deepEqual(
      tracks.filter((name) => !name.startsWith('slot ')),
      ['engine (no runner)'],
    );
    assert.ok(
      inFlight.every((e) => e.args!.tasks >= 0 && e.args!.tasks <= tracks.length),
      `at most ${tracks.length} at once`,
    );
    assert.equal(inFlight.at(-1)!.args!.tasks, 0);
    assert.ok(trace.traceEvents.some((e) => e.ph === 'C' && e.name === 'runner peak RSS (kB)'));
  });

  it("the editor's timeline draws the same run: the trace's runner slots as lanes, its tasks and failed attempts as bars that never overlap, its instants as marks", () => {
    const job = JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8'));
    const sets = job.parameter_sets.map((set: any) => ({ param_id: set.param_id, label: `mode=${set.params.mode}` }));
    const whole = Timeline.fromFolder(dir, 'traced', sets).snapshot();
    // the same lanes: the trace's threads are the timeline's lanes, in the same order
    const threads = trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name');
    assert.deepEqual(
      whole.lanes,
      threads.map((e) => e.args!.name.replace('runner ', '')),
    );
    // two workers: two runner slots, however many runners replaced the crashed and the killed ones
    assert.equal(whole.lanes.filter((lane) => lane.startsWith('slot ')).length, 2, whole.lanes.join(' | '));
    // every task the trace has, and the crashed attempt that was retried
    const bars: number[][] = [];
    for (let i = 0; i < whole.tasks.length; i += TASK_FIELDS) bars.push(whole.tasks.slice(i, i + TASK_FIELDS));
    const retries = trace.traceEvents.filter((e) => e.ph === 'i' && e.name === 'retry').length;
    assert.equal(bars.length, 16 + retries);
    const crash = sets.findIndex((set: any) => set.label === 'mode=crash');
    const crashed = bars.filter(([, , , state, set]) => set === crash && state === TaskState.failed);
    assert.equal(crashed.length, 1, 'the crashed first attempt');
    assert.equal(crashed[0][6], 1);
    assert.match(whole.notes[bars.indexOf(crashed[0])], /^attempt 1: process-crashed: /);
    const hang = sets.findIndex((set: any) => set.label === 'mode=hang');
    const hung = bars.filter(([, , , , set, replicate]) => set === hang && replicate !== AGGREGATION);
    assert.ok(
      hung.every(([, , ms, state]) => state === TaskState.failed && ms >= 900),
      JSON.stringify(hung),
    );
    for (let lane = 0; lane < whole.lanes.length; lane++) {
      const on = bars.filter((bar) => bar[0] === lane);
      for (let i = 1; i < on.length; i++) assert.ok(on[i][1] >= on[i - 1][1] + on[i - 1][2], `lane ${lane}, bar ${i}`);
    }
    assert.deepEqual(
      whole.marks.map((mark) => mark.kind).sort(),
      trace.traceEvents
        .filter((e) => e.ph === 'i')
        .map((e) => e.name)
        .sort(),
    );
    assert.deepEqual(whole.running, [], 'nothing runs after the job ended');
    // before the first runner started the job prepared: no bar begins before it. A bar without a
    // task-start begins at its task-done's t − ms: t is a millisecond clock's reading and ms a
    // rounded duration, so it can stand up to 2 ms early of when the task really began (a CI run
    // saw a bar at 459 ms against ready at 460 ms)
    const CLOCK_ROUNDING_MS = 2;
    assert.ok(whole.ready !== undefined && whole.ready >= 0);
    assert.ok(
      bars.every((bar) => bar[1] >= whole.ready! - CLOCK_ROUNDING_MS),
      `ready at ${whole.ready} ms: ${JSON.stringify(bars.filter((bar) => bar[1] < whole.ready!))}`,
    );
    assert.equal(whole.ended, true);
  });

  it('the live timeline sends each task once: changes taken as events arrive add up to the whole', () => {
    const job = JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8'));
    const sets = job.parameter_sets.map((set: any) => ({ param_id: set.param_id, label: set.param_id }));
    const { events } = readEventLog(path.join(dir, 'events.jsonl'));
    const live = new Timeline('traced', sets);
    const first = live.snapshot();
    assert.equal(first.tasks.length, 0);
    let tasks: number[] = [];
    let marks = 0;
    let sawRunning = false;
    events.forEach((event, i) => {
      live.add(event);
      if (i % 3 === 0 || i === events.length - 1) {
        const update = live.changes();
        assert.equal(update.reset, false);
        tasks = tasks.concat(update.tasks);
        marks += update.marks.length;
        sawRunning ||= update.running.length > 0;
      }
    });
    const whole = Timeline.fromFolder(dir, 'traced', sets).snapshot();
    assert.deepEqual(tasks, whole.tasks);
    assert.equal(marks, whole.marks.length);
    assert.ok(sawRunning, 'running tasks were sent while the job ran');
    assert.equal(live.keyOf(0, AGGREGATION), `agg-${sets[0].param_id}`);
    assert.equal(live.keyOf(1, 2), `sim-${sets[1].param_id}-2`);
  });

  it('a run writes trace.json when it ends (the same as the command writes), unless --no-trace-file, it ran more than 50 000 tasks or tracing would cost over 2 % of the run', async () => {
    const byRun = JSON.parse(writtenByRun);
    assert.equal(byRun.traceEvents.length, trace.traceEvents.length);
    assert.deepEqual(
      byRun.traceEvents.filter((e: TraceEvent) => e.ph === 'X').map((e: TraceEvent) => [e.pid, e.tid, e.ts, e.dur]),
      trace.traceEvents.filter((e) => e.ph === 'X').map((e) => [e.pid, e.tid, e.ts, e.dur]),
    );
    const job = JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8'));
    const bundleDir = job.bundle;
    const file = path.join(scratch, 'untraced.json');
    writeFileSync(
      file,
      JSON.stringify({
        job_id: 'untraced',
        bundle: bundleDir,
        entrypoint: 'm.m/x',
        parameter_sets: [{ mode: 'ok' }],
        replicates: 2,
      }),
    );
    const out = path.join(scratch, 'out-untraced');
    const ran = cli(['run', file, '--out', out, '--no-trace-file'], { MO_TEST_MARKERS: path.join(scratch, 'markers') });
    assert.equal(ran.code, 0, ran.stderr);
    assert.ok(!existsSync(path.join(out, 'untraced', 'trace.json')));
    const { job: untraced } = await readJobJson(path.join(out, 'untraced'));
    const at = path.join(out, 'untraced');
    // by itself only when cheap against the run: 2 % of it at most, and 50 000 tasks at most
    assert.deepEqual(writeRunTrace(at, untraced, { tasks: AUTO_TRACE_MAX_TASKS + 1, ms: 3_600_000 }), {
      skipped: `50001 tasks ran, more than the 50000 a run traces by itself: modelops-debugger trace ${at} writes it`,
    });
    assert.deepEqual(writeRunTrace(at, untraced, { tasks: 4000, ms: 1000 }), {
      skipped: `its 4000 tasks took 1000 ms: tracing them (about 120 ms) would cost more than 2 % of the run; modelops-debugger trace ${at} writes it`,
    });
    assert.ok(!existsSync(path.join(at, 'trace.json')));
    // asked for (--trace-file), always
    assert.deepEqual(writeRunTrace(at, untraced, { tasks: 4000, ms: 1000, always: true }), {
      file: path.join(at, 'trace.json'),
      tasks: 3,
    });
    assert.ok(existsSync(path.join(at, 'trace.json')));
  });

  it('-o writes it elsewhere; a folder without a run is bad input (exit 2)', () => {
    const elsewhere = path.join(scratch, 'elsewhere.json');
    const written = cli(['trace', dir, '-o', elsewhere]);
    assert.equal(written.code, 0, written.stderr);
    assert.match(written.stdout, /^Wrote \S+elsewhere\.json: 16 tasks on \d runner slots? \(\d+ runners?\) of 1 host/);
    assert.equal(JSON.parse(readFileSync(elsewhere, 'utf8')).traceEvents.length, trace.traceEvents.length);
    const refused = cli(['trace', scratch]);
    assert.equal(refused.code, 2, refused.stderr);
  });
});
