/**
 * A runner the kernel's OOM killer ended, blamed on the task in flight: the memory limit read from
 * cgroup v2 / v1 files (fixture folders) or set by the user, the runner's resident size sampled
 * while it works, and the verdict on every surface (task-done, the result file, crashFacts, the
 * run report, an aggregation's record). A real OOM kill cannot be caused safely here: real
 * runners allocate, are sampled, then SIGKILL themselves, against a limit set low or high.
 */
import * as assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { crashFacts } from '../../src/engine/diagnose/crashFacts';
import { renderEvidence } from '../../src/engine/diagnose/evidenceText';
import { OOM_SHARE, oomVerdict } from '../../src/engine/diagnose/oom';
import type { JobEvent } from '../../src/engine/job/events';
import { ResultsStore } from '../../src/engine/job/results';
import { runJob } from '../../src/engine/job/run';
import { jobFromParamsFile, type JobSpec } from '../../src/engine/job/spec';
import { memoryLimit, readOomKills, settingLimitKb } from '../../src/engine/process/memory';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { killRunner, WarmProcess } from '../../src/engine/process/warmProcess';
import { ExecuteRequest } from '../../src/engine/protocol';
import { assertReportTellsOomApart, oomBundle, OOM_MESSAGE_256, PLAIN_SIGKILL } from '../shared/oomBundle';
import { simRecord } from '../shared/simRecords';
import { oneRunner, rejection, scratchDir } from './helpers';

const PYTHON = '/usr/bin/python3';
const scratch = scratchDir('mo-oom-');
const GB = 1024 * 1024; // kB

describe('the memory limit a runner is judged against', () => {
  /** A fixture system: `/proc/<pid>/cgroup` and cgroup files, as path → content. */
  function system(name: string, files: Record<string, string>) {
    const root = path.join(scratch, name);
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    return { proc: path.join(root, 'proc'), cgroup: path.join(root, 'cgroup'), totalKb: 16 * GB };
  }

  it('cgroup v2: the lowest memory.max from the runner\'s cgroup up, "max" is no limit, and its memory.events counter', () => {
    const roots = system('v2', {
      'proc/42/cgroup': '0::/kubepods/pod1/runner\n',
      'cgroup/cgroup.controllers': 'cpu memory pids\n',
      'cgroup/kubepods/memory.max': 'max\n',
      'cgroup/kubepods/pod1/memory.max': `${2 * 1024 ** 3}\n`,
      'cgroup/kubepods/pod1/runner/memory.max': 'max\n',
      'cgroup/kubepods/pod1/runner/memory.events': 'low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n',
    });
    const limit = memoryLimit(42, undefined, roots);
    assert.deepEqual(
      { kb: limit.kb, source: limit.source },
      { kb: 2 * GB, source: 'cgroup v2' },
      "the pod's limit applies to the runner in its sub-cgroup",
    );
    assert.equal(limit.counter?.file, path.join(roots.cgroup, 'kubepods/pod1/runner/memory.events'));
    assert.equal(readOomKills(limit.counter), 2);
  });

  it('cgroup v2 with "max" all the way up: physical memory, and still the cgroup\'s counter', () => {
    const roots = system('v2-max', {
      'proc/42/cgroup': '0::/user.slice/app\n',
      'cgroup/cgroup.controllers': 'memory\n',
      'cgroup/user.slice/memory.max': 'max\n',
      'cgroup/user.slice/app/memory.max': 'max\n',
      'cgroup/user.slice/app/memory.events': 'oom_kill 0\n',
    });
    const limit = memoryLimit(42, undefined, roots);
    assert.deepEqual({ kb: limit.kb, source: limit.source }, { kb: 16 * GB, source: 'physical memory' });
    assert.equal(readOomKills(limit.counter), 0);
  });

  it('cgroup v1 (a hybrid: the unified hierarchy has no memory there): memory.limit_in_bytes and memory.oom_control', () => {
    const roots = system('v1', {
      'proc/42/cgroup': '9:name=systemd:/\n4:memory:/docker/abc\n1:cpu,cpuacct:/\n0::/\n',
      'cgroup/unified/cgroup.controllers': '',
      'cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
      'cgroup/memory/docker/abc/memory.limit_in_bytes': `${512 * 1024 ** 2}\n`,
      'cgroup/memory/docker/abc/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 5\n',
    });
    const limit = memoryLimit(42, undefined, roots);
    assert.deepEqual({ kb: limit.kb, source: limit.source }, { kb: 512 * 1024, source: 'cgroup v1' });
    assert.equal(readOomKills(limit.counter), 5);
  });

  it("cgroup v1 seen from inside a container (its cgroup's path is not under the mount): the mount's own limit; v1's 2^63 is no limit", () => {
    const inside = system('v1-container', {
      'proc/42/cgroup': '4:memory:/docker/abc\n',
      'cgroup/memory/memory.limit_in_bytes': `${1024 ** 3}\n`,
      'cgroup/memory/memory.oom_control': 'oom_kill 0\n',
    });
    assert.deepEqual([memoryLimit(42, undefined, inside)].map((l) => [l.kb, l.source])[0], [GB, 'cgroup v1']);
    const unlimited = system('v1-unlimited', {
      'proc/42/cgroup': '4:memory:/\n',
      'cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
    });
    assert.deepEqual([memoryLimit(42, undefined, unlimited)].map((l) => [l.kb, l.source])[0], [
      16 * GB,
      'physical memory',
    ]);
  });

  it('no memory cgroup: physical memory, counted by /proc/vmstat; a setting wins over any of them', () => {
    const roots = system('none', { 'proc/42/cgroup': '1:cpu:/\n', 'proc/vmstat': 'pgfault 9\noom_kill 7\n' });
    const limit = memoryLimit(42, undefined, roots);
    assert.deepEqual({ kb: limit.kb, source: limit.source }, { kb: 16 * GB, source: 'physical memory' });
    assert.equal(readOomKills(limit.counter), 7);
    const set = memoryLimit(42, 256 * 1024, roots);
    assert.deepEqual({ kb: set.kb, source: set.source }, { kb: 256 * 1024, source: 'setting' });
    assert.equal(readOomKills(set.counter), 7, 'the counter is still the kernel’s');
    assert.equal(settingLimitKb(undefined, { MODELOPS_MEMORY_LIMIT_MB: '256' }), 256 * 1024);
    assert.equal(settingLimitKb(512, { MODELOPS_MEMORY_LIMIT_MB: '256' }), 512 * 1024, 'the option first');
    assert.equal(settingLimitKb(undefined, { MODELOPS_MEMORY_LIMIT_MB: 'lots' }), undefined);
    assert.equal(settingLimitKb(undefined, {}), undefined);
  });
});

describe('the verdict on a SIGKILL', () => {
  const limit = { kb: 2 * GB, source: 'cgroup v2' as const, counter: { file: 'x', scope: "the runner's cgroup" } };
  const facts = {
    exit: { code: null, signal: 'SIGKILL' },
    killedByEngine: false,
    limit,
    last: { rssKb: 1.9 * GB, atMs: 880 },
    diedAtMs: 1000,
    killsBefore: 3,
    killsAfter: 3,
  };

  it(`near the limit (≥ ${OOM_SHARE * 100} %), or the kernel's counter rose: OOM; a SIGKILL the engine sent, another signal or a small runner: no`, () => {
    assert.deepEqual(oomVerdict(facts), {
      limit_kb: 2 * GB,
      limit_source: 'cgroup v2',
      rss_kb: 1.9 * GB,
      sampled_ms_before_death: 120,
    });
    const small = { ...facts, last: { rssKb: 0.5 * GB, atMs: 900 } };
    assert.equal(oomVerdict(small), undefined);
    assert.deepEqual(oomVerdict({ ...small, killsAfter: 4 })?.oom_kill_counter, {
      before: 3,
      after: 4,
      scope: "the runner's cgroup",
    });
    assert.equal(oomVerdict({ ...facts, killedByEngine: true }), undefined);
    assert.equal(oomVerdict({ ...facts, exit: { code: null, signal: 'SIGSEGV' } }), undefined);
  });
});

const BUNDLE = oomBundle(path.join(scratch, 'bundle'));

async function run(jobId: string, modes: string[], memoryLimitMb: number, targets: string[] = []) {
  writeFileSync(path.join(scratch, `${jobId}.json`), JSON.stringify(modes.map((mode) => ({ mode }))));
  const job: JobSpec = await jobFromParamsFile({
    bundleDir: BUNDLE,
    paramsFile: path.join(scratch, `${jobId}.json`),
    replicates: 1,
    entrypoint: 'main',
    targets,
    jobId,
  });
  const store = await ResultsStore.create(path.join(scratch, 'out'), job);
  const events: JobEvent[] = [];
  const outcome = await runJob(job, store, {
    ...oneRunner(PYTHON),
    workers: 2,
    memoryLimitMb,
    onEvent: (event) => events.push(event),
  });
  const done = (mode: string) => {
    const set = job.parameterSets[modes.indexOf(mode)];
    const event = events.find((e) => e.type === 'task-done' && e.key === `sim-${set.paramId}-0`);
    assert.ok(event?.type === 'task-done', `no task-done for ${mode}`);
    return { event, record: simRecord(outcome.dir, set.paramId, 0), set };
  };
  return { outcome, events, done, job };
}

describe('a runner SIGKILLed under a task, real runners', function () {
  this.timeout(60_000);
  const OOM_MESSAGE = OOM_MESSAGE_256;

  it('near a 256 MB limit: blamed on the replicate and the aggregation in flight, on every surface; a small runner killed the same way is a plain crash', async () => {
    const { outcome, events, done, job } = await run('oom-low', ['big', 'small', 'ok'], 256, ['targets:big_target']);
    assert.equal(outcome.status, 'failed');

    const big = done('big');
    assert.equal(big.event.kind, 'process-crashed', 'the kind stays: it retries and counts like any crash');
    assert.match(big.event.message ?? '', OOM_MESSAGE);
    const oom = big.event.crash?.oom;
    assert.ok(oom, JSON.stringify(big.event));
    assert.equal(oom.limit_kb, 256 * 1024);
    assert.equal(oom.limit_source, 'setting');
    assert.ok(oom.rss_kb! >= 224 * 1024 && oom.rss_kb! < 256 * 1024, `rss ${oom.rss_kb} kB`);
    assert.ok(oom.sampled_ms_before_death! >= 0 && oom.sampled_ms_before_death! < 1000, JSON.stringify(oom));
    assert.equal(oom.oom_kill_counter, undefined, 'no OOM kill happened: the kernel counted none');
    // the result file, and what the editor makes of it (a job opened from disk)
    assert.deepEqual(big.record.evidence.oom, oom);
    assert.deepEqual(crashFacts(big.record.evidence)?.oom, oom);
    assert.match(
      renderEvidence(big.record.evidence).join('\n'),
      /out of memory: most likely by the kernel's OOM killer/,
    );

    const small = done('small');
    assert.equal(small.event.kind, 'process-crashed');
    assert.match(small.event.message ?? '', PLAIN_SIGKILL);
    assert.equal(small.event.crash?.oom, undefined, 'a SIGKILL with little memory used is not blamed on memory');
    assert.equal(small.record.evidence.oom, undefined);

    // the aggregation of the set whose replicate succeeded ran in a runner too
    const okSet = job.parameterSets[2];
    const agg = JSON.parse(readFileSync(path.join(outcome.dir, 'aggs', `${okSet.paramId.slice(0, 16)}.json`), 'utf8'));
    const target = agg.targets['targets:big_target'];
    assert.equal(target.kind, 'process-crashed');
    assert.match(target.message, OOM_MESSAGE);
    assert.equal(target.oom.limit_source, 'setting');
    assert.ok(target.oom.rss_kb >= 224 * 1024, JSON.stringify(target.oom));
    const aggDone = events.find((e) => e.type === 'agg-done' && e.key === agg.key);
    assert.ok(aggDone?.type === 'agg-done');
    assert.match(aggDone.message ?? '', /most likely by the kernel's OOM killer/);

    // the run report tells OOM kills from other crashes
    await assertReportTellsOomApart(outcome.dir);
  });

  it('the same replicate under an 8 GB limit is a plain crash', async () => {
    const { done } = await run('oom-high', ['big'], 8192);
    const big = done('big');
    assert.equal(big.event.kind, 'process-crashed');
    assert.match(big.event.message ?? '', /\(killed: out of memory, or by another process\) during the simulation$/);
    assert.equal(big.event.crash?.oom, undefined);
    assert.equal(big.record.evidence.oom, undefined);
  });

  it("a SIGKILL the engine sent (kill) or the editor's Kill sent (killRunner) is never blamed on memory", async () => {
    for (const how of ['kill', 'killRunner'] as const) {
      const runner = WarmProcess.start({
        python: PYTHON,
        runnerScript: ourRunnerScript(),
        bundleDir: BUNDLE,
        venvPath: '',
        bundleDigest: 'd',
        memoryLimitKb: 256 * 1024,
        memorySampleMs: 100,
      });
      try {
        await runner.ready(20_000);
        const task = runner.request(
          ExecuteRequest.type,
          { entrypoint: 'main', params: { mode: 'big-hang' }, seed: 1 },
          { timeoutMs: 20_000 },
        );
        await new Promise((resolve) => setTimeout(resolve, 600)); // filled and sampled
        if (how === 'kill') void runner.kill();
        else assert.ok(killRunner(runner.pid!));
        const failure = await rejection(task);
        assert.equal(failure.kind, 'process-crashed');
        assert.equal(failure.evidence.signal, 'SIGKILL');
        assert.equal(failure.evidence.oom, undefined, `${how}: ${failure.message}`);
      } finally {
        await runner.kill();
      }
    }
  });
});
