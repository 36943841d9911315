/**
 * `modelops-debugger report --from-logs`: the run report from production worker logs, written
 * here in production's format (modelops services/dask_simulation.py's SIM_TIMING and AGG_TIMING
 * f-strings) under the prefixes real logs have: `kubectl logs --prefix --timestamps`, Dask's
 * worker log format, a container runtime's JSON line, grep's `file:` prefix; two pods in one
 * file, a third gzipped.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { isFailure } from '../../src/engine/failure';
import { reportFromLogs } from '../../src/engine/report/fromLogs';
import { readProductionLogs, timestampOf } from '../../src/engine/report/productionLogs';
import { reportHtml } from '../../src/engine/report/reportHtml';
import { AGGREGATION, TASK_FIELDS, TaskState, UNKNOWN_REPLICATE } from '../../src/engine/trace/timeline';
import { assertSelfContainedReport, CLI, rejection, scratchDir } from './helpers';

const scratch = scratchDir('mo-report-logs-');

const W1 = 'tcp://10.0.0.5:40123';
const W2 = 'tcp://10.0.0.6:40123';
const W3 = 'tcp://10.0.0.7:35555';
const BASE = Date.UTC(2026, 0, 24, 10, 0, 0);

/** The f-strings of modelops services/dask_simulation.py (9c435f2), with the same formats. */
function sim(paramId: string, seed: number, ms: number, worker: string): string {
  return `SIM_TIMING: param_id=${paramId} seed=${seed} duration_ms=${ms.toFixed(1)} worker=${worker}`;
}
function agg(runId: string, paramId: string, target: string, mb: number, kb: number, ms: number, worker: string) {
  return `AGG_TIMING: run_id=${runId} param_id=${paramId} target=${target} n_sim_returns=4 n_outputs=8 total_inline_mb=${mb.toFixed(2)} max_single_kb=${kb.toFixed(1)} duration_ms=${ms.toFixed(1)} worker=${worker}`;
}
/** Python logging's default asctime, `2026-01-24 10:00:01,000`, at BASE + ms (UTC). */
function asctime(ms: number): string {
  return new Date(BASE + ms).toISOString().replace('T', ' ').replace('.', ',').slice(0, 23);
}
/** `kubectl logs --prefix --timestamps` around Dask's worker log format. */
function kubectl(pod: string, ms: number, message: string): string {
  const rfc3339 = new Date(BASE + ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
  return `[pod/${pod}/worker] ${rfc3339} ${asctime(ms)} - modelops.services.dask_simulation - INFO - ${message}`;
}
function daskFormat(ms: number, message: string): string {
  return `${asctime(ms)} - modelops.services.dask_simulation - INFO - ${message}`;
}

/**
 * Three parameter sets. aaaaaaaa: two targets aggregated on two workers (split); bbbbbbbb: two
 * targets on one worker; cccccccc: one target (not counted for the split rate).
 * Simulations 10…90 ms and one of 1000 ms; aggregations 15…55 ms; payloads 0.25…2 MB.
 */
function pods12(): string {
  return [
    '[pod/dask-worker-0/worker] 2026-01-24T09:59:59.000000000Z 2026-01-24 09:59:59,000 - distributed.worker - INFO - Start worker at: tcp://10.0.0.5:40123',
    kubectl('dask-worker-0', 1000, sim('aaaaaaaa', 1, 10, W1)),
    kubectl('dask-worker-0', 1100, sim('aaaaaaaa', 2, 20, W1)),
    kubectl('dask-worker-1', 1050, sim('aaaaaaaa', 3, 30, W2)),
    kubectl('dask-worker-1', 1100, sim('aaaaaaaa', 4, 40, W2)),
    // production's line, cut short: a marker, but no number where duration_ms should be
    kubectl('dask-worker-0', 1150, 'SIM_TIMING: param_id=aaaaaaaa seed=9 duration_ms=n/a worker=tcp://10.0.0.5:40123'),
    kubectl('dask-worker-0', 1200, agg('7', 'aaaaaaaa', 'prevalence', 1.5, 200, 25, W1)),
    kubectl('dask-worker-1', 1200, agg('7', 'aaaaaaaa', 'incidence', 1.5, 150, 35, W2)),
    kubectl(
      'dask-worker-0',
      2000 - 1,
      'distributed.worker - INFO - the word SIM_TIMING without its colon is no marker',
    ),
    kubectl('dask-worker-0', 2090, sim('cccccccc', 1, 90, W1)),
    kubectl('dask-worker-0', 3000, sim('cccccccc', 2, 1000, W1)),
    kubectl('dask-worker-1', 3100, agg('N/A', 'cccccccc', 'prevalence', 0.25, 10, 15, W2)),
    '',
  ].join('\n');
}
function pod3(): string {
  return [
    `${asctime(3500)} - distributed.worker - INFO - Registered to: tcp://10.0.0.1:8786`,
    daskFormat(4000, sim('bbbbbbbb', 1, 50, W3)),
    daskFormat(4100, sim('bbbbbbbb', 2, 60, W3)) + '\r', // a CRLF line
    daskFormat(4200, sim('bbbbbbbb', 3, 70, W3)),
    daskFormat(4300, sim('bbbbbbbb', 4, 80, W3)),
    daskFormat(4900, agg('8', 'bbbbbbbb', 'prevalence', 2, 512.5, 45, W3)),
    daskFormat(5000, agg('8', 'bbbbbbbb', 'incidence', 2, 100, 55, W3)),
    '',
  ].join('\n');
}

describe('report --from-logs: the run report from production worker logs', () => {
  const logDir = path.join(scratch, 'logs');
  const pods12File = path.join(logDir, 'pods-0-1.log');
  const pod3File = path.join(logDir, 'pod-2.log.gz');
  before(() => {
    mkdirSync(logDir, { recursive: true });
    writeFileSync(pods12File, pods12());
    writeFileSync(pod3File, gzipSync(pod3()));
  });

  it('merges the files (one gzipped): sim and agg p50/p95, payload MB per aggregation, the split rate, per worker and per set', async () => {
    const logs = await readProductionLogs([pods12File, pod3File]);
    assert.deepEqual(
      logs.files.map((f) => [path.basename(f.file), f.gzip, f.lines, f.sims, f.aggs, f.unparsed]),
      [
        ['pods-0-1.log', false, 12, 6, 3, 1],
        ['pod-2.log.gz', true, 7, 4, 2, 0],
      ],
    );
    const report = reportFromLogs(logs);
    const facts = report.logs!;
    // nearest rank (summary.ts's quantile): sims 10…90, 1000 → p50 60, p95 1000
    assert.deepEqual(facts.sims, { n: 10, p50: 60, p95: 1000, max: 1000 });
    assert.deepEqual(facts.aggs, { n: 5, p50: 35, p95: 55, max: 55 });
    assert.deepEqual(facts.payload_mb, { n: 5, p50: 1.5, p95: 2, max: 2 });
    assert.equal(facts.max_single_kb?.kb, 512.5);
    assert.match(
      facts.max_single_kb!.at,
      /^agg pbbbbbbbb prevalence on tcp:\/\/10\.0\.0\.7:35555 \(.*pod-2\.log\.gz:6\)$/,
    );
    // aaaaaaaa's two targets on two workers; bbbbbbbb's on one; cccccccc has one target
    assert.deepEqual(facts.split, { sets: 2, split: 1 });
    assert.deepEqual(facts.time, {
      sim_ms: 1450,
      agg_ms: 175,
      span_ms: 4010, // the 10 ms simulation that ended at 1.000 s, to the aggregation that ended at 5.000 s
      from: '2026-01-24T10:00:00.990Z',
      to: '2026-01-24T10:00:05.000Z',
    });
    assert.deepEqual(facts.timestamps, { with: 15, without: 0 });
    assert.deepEqual(
      facts.workers.map((w) => [w.worker, w.sims, w.aggs, w.busy_ms]),
      [
        [W1, 4, 1, 1145],
        [W2, 2, 2, 120],
        [W3, 4, 2, 360],
      ],
    );
    assert.deepEqual(
      report.sets.map((set) => [
        set.param_id,
        set.ok,
        set.p50_ms,
        set.p95_ms,
        set.aggs!.map((a) => `${a.target}@${a.worker}`),
      ]),
      [
        ['aaaaaaaa', 4, 30, 40, [`prevalence@${W1}`, `incidence@${W2}`]],
        ['bbbbbbbb', 4, 70, 80, [`prevalence@${W3}`, `incidence@${W3}`]],
        ['cccccccc', 2, 1000, 1000, [`prevalence@${W2}`]],
      ],
    );
    assert.deepEqual(report.slowest[0], {
      key: 'sim pcccccccc',
      ms: 1000,
      state: 'seed 2',
      params: 'cccccccc',
      replicate: -1,
      worker: W1,
      at: `${pods12File}:11`,
    });
    // the malformed line: said with its file and line, never counted
    assert.equal(facts.unparsed.count, 1);
    assert.deepEqual(
      facts.unparsed.first.map((u) => [u.file, u.line, u.why]),
      [[pods12File, 6, 'duration_ms=n/a is not a number ≥ 0']],
    );
    // the timeline: a lane per worker thread (a task overlapping another of its worker's takes a
    // second lane), each task from (end − duration) in ms after the first start
    const { timeline } = report;
    assert.deepEqual(timeline.lanes, [
      '10.0.0.5:40123 · thread 1',
      '10.0.0.6:40123 · thread 1',
      '10.0.0.5:40123 · thread 2',
      '10.0.0.7:35555 · thread 1',
    ]);
    const bars: number[][] = [];
    for (let i = 0; i < timeline.tasks.length; i += TASK_FIELDS) bars.push(timeline.tasks.slice(i, i + TASK_FIELDS));
    assert.equal(bars.length, 15);
    assert.deepEqual(bars[0], [0, 0, 10, TaskState.ok, 0, UNKNOWN_REPLICATE, 1], 'the first simulation starts at 0');
    assert.deepEqual(timeline.sets[0], { param_id: 'aaaaaaaa', label: 'param_id aaaaaaaa' });
    // cccccccc's 1000 ms simulation overlaps its 90 ms one on the same worker: the worker's second thread
    assert.deepEqual(
      bars.filter((bar) => bar[2] === 1000 || bar[2] === 90).map((bar) => [bar[0], bar[1]]),
      [
        [0, 1010],
        [2, 1010],
      ],
    );
    const incidence = bars.findIndex((bar) => bar[2] === 55);
    assert.deepEqual(
      bars[incidence],
      [3, 3955, 55, TaskState.other, 2, AGGREGATION, 1],
      "bbbbbbbb's incidence aggregation on the third worker's lane, grey",
    );
    assert.equal(timeline.sets[2].param_id, 'bbbbbbbb');
    assert.match(timeline.notes[incidence], /^incidence · 2 MB · \S+:\d+$/);
    assert.deepEqual(timeline.states, ['simulation', 'failed', 'aggregation', 'running']);
    // bars on a lane never overlap (the page finds a lane's visible bars by binary search)
    for (let lane = 0; lane < timeline.lanes.length; lane++) {
      const on = bars.filter((bar) => bar[0] === lane);
      for (let i = 1; i < on.length; i++) assert.ok(on[i][1] >= on[i - 1][1] + on[i - 1][2]);
    }
    assert.equal(
      report.histogram.reduce((sum, bucket) => sum + bucket.count, 0),
      10,
      'every simulation in the histogram',
    );
  });

  it('renders every section, says why failures and environment are absent, and names the unparsed line by file:line', async () => {
    const html = reportHtml(reportFromLogs(await readProductionLogs([pods12File, pod3File])));
    assertSelfContainedReport(
      html,
      [
        'Where the time went',
        'Task runtimes and payloads',
        'Timeline',
        'Parameter sets',
        'Workers',
        'The 15 slowest tasks',
        'Durations',
        'Failures, grouped',
        'Environment',
      ].map((heading) => `<h2>${heading}</h2>`),
    );
    assert.ok(html.includes('<div id="timeline-root"></div>'), 'the timeline is drawn');
    assert.ok(
      html.includes('"states":["simulation","failed","aggregation","running"]'),
      'the hover names sims and aggs',
    );
    assert.ok(html.includes('10 simulations and 5 aggregations in 3 parameter sets on 3 workers'));
    assert.ok(html.includes('<b>50.0 %</b> (1 of 2 parameter sets with two targets or more'));
    assert.ok(
      html.includes(
        '<td>payload per aggregation (total_inline_mb)</td><td class="num">5</td><td class="num">1.50 MB</td><td class="num">2.00 MB</td><td class="num">2.00 MB</td>',
      ),
    );
    assert.ok(
      html.includes(
        '<td>simulation (duration_ms)</td><td class="num">10</td><td class="num">60 ms</td><td class="num">1000 ms</td>',
      ),
    );
    assert.ok(html.includes('Largest single output: 512.5 KB'));
    assert.ok(
      html.includes(`${pods12File}:6</td><td>duration_ms=n/a is not a number ≥ 0`),
      'the unparsed line, located',
    );
    assert.match(
      html,
      /<h2>Failures, grouped<\/h2>\s*<p>Not in the logs: production logs SIM_TIMING for a failed simulation too/,
    );
    assert.match(html, /<h2>Environment<\/h2>\s*<p>Not in the logs/);
    // the simulations' and aggregations' share of the workers' time: 1625 ms of 4010 ms × 3
    assert.ok(html.includes("1450 ms (12 % of the workers' time)"), 'simulations');
    assert.ok(html.includes('<td>worker time (span × workers)</td><td class="num">12.0 s</td>'));
  });

  it('without timestamps (a JSON log line, grep-style prefixes): the numbers still, and the timeline says why it is not drawn', async () => {
    const file = path.join(logDir, 'no-times.log');
    writeFileSync(
      file,
      [
        // a container runtime's JSON line: the record sits inside a JSON string
        `{"log":"INFO:modelops.services.dask_simulation:${sim('dddddddd', 1, 12.5, W1)}\\n","stream":"stderr","time":"2026-01-24T10:00:00.1Z"}`,
        `worker-3.log:INFO:modelops.services.dask_simulation:${sim('dddddddd', 2, 7.5, W2)}`,
        `modelops.services.dask_simulation - INFO - ${agg('N/A', 'dddddddd', 'prevalence', 0.5, 1, 3, W1)}`,
        `modelops.services.dask_simulation - INFO - ${agg('N/A', 'dddddddd', 'incidence', 0.5, 1, 4, W1)}`,
      ].join('\n'),
    );
    const report = reportFromLogs(await readProductionLogs([file]));
    assert.deepEqual(report.logs!.timestamps, { with: 0, without: 4 });
    assert.deepEqual(report.logs!.sims, { n: 2, p50: 12.5, p95: 12.5, max: 12.5 });
    assert.deepEqual(
      report.logs!.workers.map((w) => w.worker),
      [W1, W2],
      "the JSON line's worker stops at its quote and backslash",
    );
    assert.deepEqual(report.logs!.split, { sets: 1, split: 0 });
    assert.equal(report.logs!.time.span_ms, undefined);
    assert.equal(report.timeline.tasks.length, 0);
    assert.deepEqual(report.timeline.lanes, []);
    const html = reportHtml(report);
    assert.ok(html.includes('<p>The timeline could not be drawn: the lines have no timestamps'));
    assert.ok(!html.includes('<canvas'), 'no empty canvas');
    assert.ok(!html.includes('timeline-data'), 'nor its script');
    assert.ok(html.includes("No line starts with a timestamp, so the span and the workers' time are not known."));
  });

  it('reads timestamps as logged: Python logging, ISO with T and Z or an offset, behind a kubectl prefix; nothing else', () => {
    assert.equal(
      timestampOf('2026-01-24 10:11:12,345 - x - INFO - SIM_TIMING: …'),
      Date.UTC(2026, 0, 24, 10, 11, 12, 345),
    );
    assert.equal(timestampOf('2026-01-24T10:11:12.5Z SIM_TIMING: …'), Date.UTC(2026, 0, 24, 10, 11, 12, 500));
    assert.equal(timestampOf('2026-01-24T12:11:12+02:00 x'), Date.UTC(2026, 0, 24, 10, 11, 12));
    const nanos = timestampOf('[pod/w-0/worker] 2026-01-24T10:11:12.123456789Z x')! - Date.UTC(2026, 0, 24, 10, 11, 12);
    assert.ok(Math.abs(nanos - 123.456789) < 0.001, `${nanos}`);
    assert.equal(timestampOf('INFO 2026-01-24 10:11:12,345 x'), undefined, 'only at the start');
    assert.equal(timestampOf('2026-13-24 10:11:12 x'), undefined, 'no 13th month');
  });

  it('a file that cannot be read is bad-input naming it; so is a gzip file that is not one', async () => {
    const missing = await rejection(readProductionLogs([path.join(logDir, 'nope.log')]));
    assert.ok(isFailure(missing) && missing.kind === 'bad-input');
    assert.match(missing.message, /^Cannot read the log \S+nope\.log: it does not exist\.$/);
    const broken = path.join(logDir, 'broken.log.gz');
    writeFileSync(broken, Buffer.concat([gzipSync(pod3()).subarray(0, 40), Buffer.from('not gzip any more')]));
    const failure = await rejection(readProductionLogs([broken]));
    assert.equal(failure.kind, 'bad-input');
    assert.match(failure.message, /^Cannot read the log \S+broken\.log\.gz: it is not a readable gzip file \(/);
  });

  describe('the command line', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'report', ...args], { encoding: 'utf8' });

    it('exit 0: writes the report and says the unparsed line with its file:line on stderr', () => {
      const out = path.join(scratch, 'from-logs.html');
      const ran = run('--from-logs', pods12File, pod3File, '-o', out);
      assert.equal(ran.status, 0, ran.stderr);
      assert.match(
        ran.stdout,
        /^Wrote \S+from-logs\.html \(\d+ KB\): 10 simulations and 5 aggregations in 3 parameter sets on 3 workers, from 2 files\.$/m,
      );
      assert.equal(
        ran.stderr,
        `⚠ 1 line with SIM_TIMING: or AGG_TIMING: did not parse and is not counted:\n  ${pods12File}:6: duration_ms=n/a is not a number ≥ 0\n`,
      );
      assert.ok(readFileSync(out, 'utf8').startsWith('<!DOCTYPE html>'));
      // `-`: standard input (kubectl logs … | modelops-debugger report --from-logs -)
      const piped = spawnSync(process.execPath, [CLI, 'report', '--from-logs', '-', '-o', out], {
        encoding: 'utf8',
        input: pod3(),
      });
      assert.equal(piped.status, 0, piped.stderr);
      assert.match(
        piped.stdout,
        /: 4 simulations and 2 aggregations in 1 parameter sets on 1 workers, from 1 file\.$/m,
      );
    });

    it('exit 2: an unreadable file, a directory, files without a marker line, only unparsed ones, or a results folder as well', () => {
      const plain = path.join(logDir, 'plain.log');
      writeFileSync(plain, 'INFO starting\nINFO done\n');
      const bad = path.join(logDir, 'only-bad.log');
      writeFileSync(bad, 'x\nSIM_TIMING: param_id=abc\n');
      const cases: [string[], RegExp][] = [
        [[pods12File, path.join(logDir, 'nope.log')], /Cannot read the log \S+nope\.log: it does not exist\./],
        [[logDir], /is a directory: give the log files themselves/],
        [
          [plain],
          /No SIM_TIMING or AGG_TIMING line in 1 file \(2 lines\): these are not production worker logs, or the workers logged above INFO/,
        ],
        [
          [bad],
          /No SIM_TIMING or AGG_TIMING line parses: 1 line has a marker, none production's fields \(first: no seed, duration_ms, worker\)\. \(\S+only-bad\.log:2\)/,
        ],
      ];
      for (const [files, said] of cases) {
        const ran = run('--from-logs', ...files, '-o', path.join(scratch, 'x.html'));
        assert.equal(ran.status, 2, `${files.join(' ')}: ${ran.stderr}`);
        assert.match(ran.stderr, said);
      }
      assert.ok(!existsSync(path.join(scratch, 'x.html')), 'no report written');
      const both = run(scratch, '--from-logs', pods12File);
      assert.equal(both.status, 2);
      assert.match(both.stderr, /Give a results folder or --from-logs, not both/);
    });
  });
});
