// `npm run bench:editor`: is the editor still responsive while a big job runs in its extension host?
//
// A real VS Code (code-server on loopback, headless Chromium) with the extension under
// development runs a job from the command palette. While the job runs, the bench expands its
// parameter sets in the Jobs view one after another, each for the first time, and times each
// expansion in the page itself: from the mouse-down to the moment the set's replicates are
// rendered. VS Code has never seen those children, so this is a full round trip through the
// extension host (the view asks the host, `getChildren` makes the nodes, the page renders
// them): it is as slow as the host is busy. The sets left over are expanded the same way with
// the editor idle, after the job, for comparison.
//
//   BENCH_TASKS=4000    the example job (20 × 200 with a target, examples/sir) — the default
//   BENCH_TASKS=100000  500 × 200 replicates of a trivial bundle
//   BENCH_NICENESS=0    the runners at the editor's priority (the default is 10)
//   BENCH_LIVE_RECORDS=file  also writes the page's records of the live counts there (JSON)
//   BENCH_EXPAND_DURING=0    expands nothing during the job (the live counts without expansions)
//   BENCH_RENDERER_PROFILE=file  writes a CPU profile of the page (VS Code's renderer) over the job
//                            there (.cpuprofile; `startEpoch` is its start, to line it up with the
//                            records' `e`, their epoch time in ms)
//   BENCH_RENDERER_TRACE=file    writes a Chrome trace of the page over the job there
//   BENCH_VIEW=timeline      "ModelOps Timeline" open on the job instead: the page's frames while the job
//                            runs (how many a second, how long each took to draw) and, once it has
//                            ended, the frames of zooming and panning over all its tasks
//   BENCH_VIEW=testing       the Testing view open instead, through the job: when the job's last
//                            result shows there (its row's final state icon), against when the job
//                            ended (its count leaves the status bar), and how many rows it showed
//
// Meanwhile the page records, as they change, the count the status bar shows for the job and the
// counts the Jobs view shows on the job's row and on its parameter sets' rows; from those the
// bench reports how far the tree is behind the status bar (issue 11's live counts): in tasks,
// and in ms — how long ago the status bar first showed more than the tree still shows. The
// status bar is itself up to one of its own refresh intervals behind the engine. A set's count
// is compared with what the status bar implies for it: sets run in order, so set k has done
// about min(max(done − k·replicates, 0), replicates) (off by the few tasks in flight across a
// set boundary).
//
// Prints medians and quantiles of each; the target is a median under 200 ms during the job.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { launchBrowser, pickCommand, quickOpen, ROOT, startCodeServer } from '../vscode/codeServer.mjs';

const TASKS = Number(process.env.BENCH_TASKS ?? 4000);
/** BENCH_EXPAND_DURING=0: no expansions during the job (the live counts alone, the view left as it is). */
const EXPAND_DURING = process.env.BENCH_EXPAND_DURING !== '0';
const IDLE_SAMPLES = 20;
const WAIT_MS = 120_000;
const JOB_ID = `bench-editor-${TASKS}`;

function writeJob(ws) {
  if (TASKS === 4000) {
    const job = JSON.parse(readFileSync(path.join(ROOT, 'examples', 'sir', 'job.json'), 'utf8'));
    job.job_id = JOB_ID;
    job.bundle = path.join(ROOT, 'examples', 'sir', 'bundle');
    writeFileSync(path.join(ws, 'job.json'), JSON.stringify(job, null, 2));
    return;
  }
  if (TASKS % 200 !== 0) throw new Error(`BENCH_TASKS must be 4000 or a multiple of 200, not ${TASKS}`);
  mkdirSync(path.join(ws, 'bundle'), { recursive: true });
  writeFileSync(
    path.join(ws, 'bundle', 'wire.py'),
    'def wire(entrypoint, params, seed):\n    return {"value": b"1"}\n',
  );
  const sets = Array.from({ length: TASKS / 200 }, (_, i) => ({ x: i }));
  writeFileSync(
    path.join(ws, 'job.json'),
    JSON.stringify({ job_id: JOB_ID, bundle: 'bundle', entrypoint: 'm.m/x', parameter_sets: sets, replicates: 200 }),
  );
}

/**
 * BENCH_RENDERER_PROFILE / BENCH_RENDERER_TRACE: what VS Code's renderer (the page) did during the
 * job, through the Chrome DevTools Protocol: a CPU profile (.cpuprofile, `startEpoch` added), a
 * Chrome trace (trace events: its main thread's tasks, layout, paint, messages received). Each is
 * summarised in a line: how busy the renderer was, and its tasks of 50 ms or more.
 */
async function recordRenderer(page) {
  const profileFile = process.env.BENCH_RENDERER_PROFILE;
  const traceFile = process.env.BENCH_RENDERER_TRACE;
  if (!profileFile && !traceFile) return { stop: async () => undefined };
  const cdp = await page.context().newCDPSession(page);
  const traceEvents = [];
  if (profileFile) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
    await cdp.send('Profiler.start');
  }
  if (traceFile) {
    cdp.on('Tracing.dataCollected', ({ value }) => traceEvents.push(...value));
    await cdp.send('Tracing.start', {
      categories: 'devtools.timeline,disabled-by-default-devtools.timeline,v8.execute,toplevel',
      transferMode: 'ReportEvents',
    });
  }
  return {
    async stop() {
      if (profileFile) {
        const { profile } = await cdp.send('Profiler.stop');
        profile.startEpoch = Date.now() - (profile.endTime - profile.startTime) / 1000;
        writeFileSync(profileFile, JSON.stringify(profile));
        const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
        const idleUs = profile.samples.reduce((sum, id, i) => sum + (idle.has(id) ? profile.timeDeltas[i] : 0), 0);
        const busy = 1 - idleUs / (profile.endTime - profile.startTime);
        console.log(`VS Code's renderer: busy ${(busy * 100).toFixed(0)} % of the job (CPU profile: ${profileFile})`);
      }
      if (traceFile) {
        const complete = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
        await cdp.send('Tracing.end');
        await complete;
        writeFileSync(traceFile, JSON.stringify({ traceEvents }));
        const main = new Set(
          traceEvents
            .filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain')
            .map((e) => `${e.pid}:${e.tid}`),
        );
        const tasks = traceEvents.filter((e) => e.name === 'RunTask' && e.ph === 'X' && main.has(`${e.pid}:${e.tid}`));
        const long = tasks.filter((e) => e.dur >= 50_000).map((e) => e.dur / 1000);
        const total = tasks.reduce((sum, e) => sum + e.dur, 0) / 1000;
        console.log(
          `VS Code's renderer: ${(total / 1000).toFixed(1)} s in main-thread tasks; ${long.length} of 50 ms or more (median ${quantile(long, 0.5)?.toFixed(0) ?? '-'} ms, max ${long.length ? Math.max(...long).toFixed(0) : '-'} ms) (trace: ${traceFile})`,
        );
      }
      await cdp.detach();
    },
  };
}

/**
 * BENCH_VIEW=timeline: the job run from the palette, "ModelOps: Show Timeline" opened on it as soon
 * as it shows in the Jobs view. The page's own statistics (timelineScript.ts) are read four times a
 * second from its frame while the job runs: frames drawn, updates received, each frame's time.
 * After the job, twenty wheel zooms in and out and ten drags over the whole run, each timed in
 * the page.
 */
async function timeTimeline(page) {
  const run = await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS);
  const started = Date.now();
  await run.press('Enter');
  await page.locator(`${VIEW} .monaco-list-row`).filter({ hasText: JOB_ID }).first().waitFor({ timeout: WAIT_MS });
  const show = await pickCommand(page, 'ModelOps: Show Timeline', WAIT_MS);
  await show.press('Enter');
  const job = page.locator('.quick-input-widget .monaco-list-row').filter({ hasText: JOB_ID }).first();
  await job.waitFor({ timeout: WAIT_MS });
  await job.click();
  const frame = await timelineFrame(page);
  const samples = [];
  for (;;) {
    const stats = await frame.evaluate(() => ({ ...window.timelineStats, at: Date.now() }));
    samples.push(stats);
    if (stats.ended) break;
    if (Date.now() - started > 30 * 60_000) throw new Error('the job did not finish within 30 min');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const live = await frame.evaluate(() => window.timelineFrameTimes.slice());
  const first = samples.find((s) => s.tasks > 0) ?? samples[0];
  const last = samples.at(-1);
  const liveSeconds = (last.at - first.at) / 1000;
  const liveFrames = last.frames - first.frames;
  // after the job: zoom in and out at the middle, then drag, each frame timed in the page
  const before = live.length;
  const box = await frame.locator('#tl-canvas').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let i = 0; i < 20; i++) {
    await page.mouse.wheel(0, i < 10 ? -300 : 300);
    await page.waitForTimeout(120);
  }
  for (let i = 0; i < 10; i++) {
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + (i % 2 ? 150 : -150), box.y + box.height / 2, { steps: 4 });
    await page.mouse.up();
    await page.waitForTimeout(120);
  }
  const all = await frame.evaluate(() => window.timelineFrameTimes.slice());
  const gestures = all.slice(before);
  console.log(`\n"ModelOps Timeline" on a ${TASKS}-task job, drawn in the page (ms per frame)`);
  console.log(
    `  during the job: ${liveFrames} frames in ${liveSeconds.toFixed(1)} s (${(liveFrames / liveSeconds).toFixed(1)}/s; target ≤ 10/s), ${last.updates} updates`,
  );
  console.log(`  ${describe('frame time while live', live, 'frames')}`);
  console.log(`  ${describe(`frame time zooming and panning ${last.tasks} tasks`, gestures, 'frames')}`);
  console.log(`  final: ${last.tasks} tasks on ${last.lanes} lanes, ${last.running} running`);
  const ok = last.tasks >= TASKS && liveFrames / liveSeconds <= 10.5;
  console.log(
    `  target: ≤ 10 frames/s live and every frame of the gestures under 100 ms — ${ok && Math.max(...gestures) < 100 ? 'met' : 'MISSED'}`,
  );
  return { ok };
}

/** The webview's content frame: the one whose page has the timeline's statistics. */
async function timelineFrame(page) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    for (const frame of page.frames()) {
      const found = await frame.evaluate(() => Boolean(window.timelineStats)).catch(() => false);
      if (found) return frame;
    }
    if (Date.now() > deadline) throw new Error('the timeline page never appeared');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * BENCH_VIEW=testing: the Testing view (the test explorer) open through the job. The page records
 * when the job's count leaves the status bar (the job ended) and when the job's row in the
 * Testing view first shows a final state (passed, failed, errored, skipped): its last result.
 */
async function timeTestingView(page) {
  const focus = await pickCommand(page, 'Testing: Focus on Test Explorer View', WAIT_MS);
  await focus.press('Enter');
  // no job yet: the view shows its welcome ("No tests have been found…") in place of the tree
  await page.locator('[id="workbench.view.extension.test"]').first().waitFor({ timeout: WAIT_MS });
  await page.evaluate((jobId) => {
    const marks = (window.__modelopsTesting = { rows: 0 });
    let statusSeen = false;
    const look = () => {
      const now = performance.timeOrigin + performance.now();
      const inStatus = [...document.querySelectorAll('.part.statusbar .statusbar-item')].some((e) =>
        e.textContent?.includes(jobId),
      );
      if (inStatus) statusSeen = true;
      else if (statusSeen && marks.ended === undefined) marks.ended = now;
      const rows = document.querySelectorAll('.test-explorer .monaco-list-row');
      marks.rows = Math.max(marks.rows, rows.length);
      const jobRow = [...rows].find((r) => r.getAttribute('aria-level') === '1' && r.textContent?.includes(jobId));
      const final = jobRow?.querySelector(
        '.codicon-testing-passed-icon, .codicon-testing-failed-icon, .codicon-testing-error-icon, .codicon-testing-skipped-icon',
      );
      if (final && marks.result === undefined) {
        marks.result = now;
        marks.state = final.className.match(/testing-(\w+)-icon/)?.[1];
      }
      if (jobRow && marks.shown === undefined) marks.shown = now;
    };
    new MutationObserver(look).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
    });
  }, JOB_ID);
  const input = await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS);
  const started = Date.now();
  await input.press('Enter');
  await page.waitForFunction(() => window.__modelopsTesting.result !== undefined, undefined, {
    timeout: 30 * 60_000,
    polling: 250,
  });
  await page.waitForFunction(() => window.__modelopsTesting.ended !== undefined, undefined, { timeout: WAIT_MS });
  const marks = await page.evaluate(() => window.__modelopsTesting);
  const s = (epoch) => ((epoch - started) / 1000).toFixed(2);
  console.log(`\nTesting view open through the job, ${TASKS} tasks:`);
  console.log(
    `  the job's row appeared ${s(marks.shown)} s after Run; the job ended (status bar) at ${s(marks.ended)} s`,
  );
  console.log(
    `  its last result (the job's row: ${marks.state}) at ${s(marks.result)} s: ${(marks.result - marks.ended).toFixed(0)} ms after the job ended; at most ${marks.rows} rows rendered in the view`,
  );
  return marks;
}

/** The Jobs view's pane (the container holds the other two views too). */
const VIEW = '[id="workbench.view.extension.modelops"] .pane:has(.pane-header[aria-label^="Jobs"])';

/** In the page: a timer that starts at the next mouse-down and stops when a row of `level` shows. */
function armTimer(page, level) {
  return page.evaluate(
    ({ view, level }) => {
      window.__modelopsBenchTimer = new Promise((resolve) => {
        let started;
        document.addEventListener('mousedown', () => (started = performance.now()), { capture: true, once: true });
        const root = document.querySelector(view) ?? document.body;
        const observer = new MutationObserver(() => {
          if (started !== undefined && root.querySelector(`.monaco-list-row[aria-level="${level}"]`)) {
            observer.disconnect();
            resolve(performance.now() - started);
          }
        });
        observer.observe(root, { subtree: true, childList: true, attributes: true });
      });
    },
    { view: VIEW, level },
  );
}

/** Expands `row` (a row of `level`) and times until its children (rows of level + 1) render. */
async function timeExpansion(page, row, level) {
  await armTimer(page, level + 1);
  await row.locator('.monaco-tl-twistie').click();
  const ms = await page.evaluate(() =>
    Promise.race([
      window.__modelopsBenchTimer,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the children did not render within 30 s')), 30_000),
      ),
    ]),
  );
  return ms;
}

async function collapse(page, row, level) {
  if ((await row.getAttribute('aria-expanded')) !== 'true') return;
  await row.locator('.monaco-tl-twistie').click();
  await page.waitForFunction(
    ({ view, level }) => !document.querySelector(`${view} .monaco-list-row[aria-level="${level + 1}"]`),
    { view: VIEW, level },
    { timeout: WAIT_MS },
  );
}

/**
 * A parameter set expanded for the first time: VS Code has never seen its children, so it must
 * ask the extension host (the node's replicates are made then, lazily). The set is one in the
 * upper half of the view, so its first replicates are rendered rather than scrolled out of the
 * virtual list; the view is scrolled down as the sets run out.
 */
async function sampleFirstExpansion(page, seen) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const index = await page.evaluate(
      ({ view, seen }) => {
        const pane = document.querySelector(view);
        const bottom = pane.getBoundingClientRect().bottom;
        const rows = [...pane.querySelectorAll('.monaco-list-row[aria-level="2"]')];
        const fresh = rows.filter(
          (r) => !seen.includes(r.dataset.index) && r.getBoundingClientRect().bottom + 4 * 22 < bottom,
        );
        fresh.sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index));
        return fresh[0]?.dataset.index;
      },
      { view: VIEW, seen },
    );
    if (index === undefined) {
      const box = await page.locator(VIEW).boundingBox();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.wheel(0, 5 * 22);
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    seen.push(index);
    const row = page.locator(`${VIEW} .monaco-list-row[data-index="${index}"]`);
    const ms = await timeExpansion(page, row, 2);
    await collapse(page, row, 2);
    return ms;
  }
  throw new Error('no parameter set left to expand in the Jobs view');
}

/**
 * In the page: records the status bar's count for the job and the counts on the job's row and
 * on the visible parameter-set rows (by their position among the job's sets) each time one of
 * them changes. `window.__modelopsLive` holds the records.
 */
function startLiveSampler(page) {
  return page.evaluate(
    ({ view, jobId }) => {
      const count = (text) => {
        const match = /(\d+)\/(\d+)/.exec(text ?? '');
        return match ? Number(match[1]) : null;
      };
      const records = (window.__modelopsLive = []);
      let last = '';
      const sample = () => {
        const item = [...document.querySelectorAll('.part.statusbar .statusbar-item')].find((e) =>
          e.textContent?.includes(jobId),
        );
        const pane = document.querySelector(view);
        // the job's row, or its sticky copy once the view is scrolled: the same item either way
        const jobRow = [...(pane?.querySelectorAll('.monaco-list-row[aria-level="1"]') ?? [])].find((r) =>
          r.textContent?.includes(jobId),
        );
        const sets = {};
        for (const row of pane?.querySelectorAll('.monaco-list-row[aria-level="2"]') ?? []) {
          const n = count(row.querySelector('.label-description')?.textContent);
          if (n !== null) sets[Number(row.getAttribute('aria-posinset')) - 1] = n;
        }
        const record = {
          status: item ? count(item.textContent) : null,
          job: jobRow ? count(jobRow.querySelector('.label-description')?.textContent) : null,
          sets,
        };
        const key = JSON.stringify(record);
        if (key === last) return;
        last = key;
        records.push({ t: performance.now(), e: performance.timeOrigin + performance.now(), ...record });
      };
      const observer = new MutationObserver(sample);
      for (const target of [document.querySelector('.part.statusbar'), document.querySelector(view)]) {
        if (target) observer.observe(target, { subtree: true, childList: true, characterData: true, attributes: true });
      }
      window.__modelopsLiveStop = () => observer.disconnect();
      sample();
    },
    { view: VIEW, jobId: JOB_ID },
  );
}

/**
 * The tree's lag behind the status bar, sampled every 10 ms of the page's clock while the job
 * runs (from the status bar's first count above 0 until it goes): at time t the status bar
 * shows s and the row shows r; the lag is s − r tasks, and t − (when the status bar first showed
 * more than r) ms, 0 when the row is not behind.
 */
function liveLag(records, replicates) {
  const running = records.filter((r) => r.status !== null);
  const first = running.find((r) => r.status > 0);
  if (!first) return undefined;
  // until the status bar goes (the job is over)
  const end = records.find((r) => r.t > first.t && r.status === null)?.t ?? records[records.length - 1].t;
  const statusAbove = (n) => records.find((r) => r.status !== null && r.status > n)?.t;
  const job = { ms: [], tasks: [] };
  const set = { ms: [], tasks: [] };
  let i = 0;
  for (let t = first.t; t <= end; t += 10) {
    while (i + 1 < records.length && records[i + 1].t <= t) i++;
    const now = records[i];
    if (now.status === null) continue;
    const behind = (shown, engine, offset) => {
      if (shown >= engine) return { ms: 0, tasks: 0 };
      return { ms: t - statusAbove(offset + shown), tasks: engine - shown };
    };
    if (now.job !== null) {
      const lag = behind(now.job, now.status, 0);
      job.ms.push(lag.ms);
      job.tasks.push(lag.tasks);
    }
    // every set in view that the status bar says has begun and its row does not show as done
    for (const [key, shown] of Object.entries(now.sets)) {
      const k = Number(key);
      const engine = Math.min(Math.max(now.status - k * replicates, 0), replicates);
      if (engine === 0 || shown >= replicates) continue;
      const lag = behind(shown, engine, k * replicates);
      set.ms.push(lag.ms);
      set.tasks.push(lag.tasks);
    }
  }
  const shownWhileRunning = (pick) => new Set(records.filter((r) => r.t >= first.t && r.t < end).map(pick)).size;
  return { job, set, updates: { status: shownWhileRunning((r) => r.status), job: shownWhileRunning((r) => r.job) } };
}

function describeLag(name, lag) {
  if (!lag.ms.length) return `${name}: no samples`;
  return `${name}: median ${quantile(lag.ms, 0.5).toFixed(0)} ms / ${quantile(lag.tasks, 0.5)} tasks, max ${Math.max(...lag.ms).toFixed(0)} ms / ${Math.max(...lag.tasks)} tasks (${lag.ms.length} samples, every 10 ms)`;
}

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1) + 0.5))];
}

function describe(name, samples, unit = 'expansions') {
  if (!samples.length) return `${name}: no samples`;
  const f = (ms) => `${ms.toFixed(0)} ms`;
  return `${name}: median ${f(quantile(samples, 0.5))}, p90 ${f(quantile(samples, 0.9))}, max ${f(Math.max(...samples))} (${samples.length} ${unit})`;
}

async function main() {
  const { host, work, stop } = await startCodeServer();
  const ws = path.join(work, 'ws');
  writeJob(ws);
  if (process.env.BENCH_NICENESS !== undefined) {
    // the runners' priority (modelopsDebugger.runnerNiceness; default 10) as a workspace setting
    mkdirSync(path.join(ws, '.vscode'), { recursive: true });
    writeFileSync(
      path.join(ws, '.vscode', 'settings.json'),
      JSON.stringify({ 'modelopsDebugger.runnerNiceness': Number(process.env.BENCH_NICENESS) }),
    );
  }
  let browser;
  try {
    browser = await launchBrowser(work);
    const page = browser.pages()[0] ?? (await browser.newPage());
    const payload = JSON.stringify([['extensionDevelopmentPath', `vscode-remote://${host}${ROOT}`]]);
    await page.goto(`http://${host}/?folder=${encodeURIComponent(ws)}&payload=${encodeURIComponent(payload)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: WAIT_MS });
    const container = page.locator('.activitybar [aria-label*="ModelOps"]').first();
    await container.waitFor({ timeout: WAIT_MS });
    await container.click();
    await page.getByText('No jobs yet.').first().waitFor({ timeout: WAIT_MS });
    // the other two views folded: the Jobs view gets the height
    for (const name of ['Warm Processes', 'Venv Caches']) {
      const header = page.locator(`.pane-header[aria-label^="${name}"]`).first();
      if ((await header.getAttribute('aria-expanded')) === 'true') await header.click();
    }

    // open the job file and run it from the palette, as a person would
    await quickOpen(page, 'job.json', WAIT_MS);
    if (process.env.BENCH_VIEW === 'testing') {
      const marks = await timeTestingView(page);
      if (marks.state !== 'passed') process.exitCode = 1;
      return;
    }
    if (process.env.BENCH_VIEW === 'timeline') {
      const result = await timeTimeline(page);
      if (!result.ok) process.exitCode = 1;
      return;
    }
    const input = await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS);
    await startLiveSampler(page);
    const recording = await recordRenderer(page);
    const started = Date.now();
    await input.press('Enter');

    // the job's row, or its sticky copy at the top once the view is scrolled
    const jobRow = page.locator(`${VIEW} .monaco-list-row`).filter({ hasText: JOB_ID }).first();
    await jobRow.waitFor({ timeout: WAIT_MS });
    if ((await jobRow.getAttribute('aria-expanded')) !== 'true') await jobRow.locator('.monaco-tl-twistie').click();
    await page.locator(`${VIEW} .monaco-list-row[aria-level="2"]`).first().waitFor({ timeout: WAIT_MS });
    const sets = TASKS / 200;
    const keepForIdle = Math.min(IDLE_SAMPLES, Math.floor(sets / 2));
    const during = [];
    const seen = [];
    let expanded = 0;
    let description = '';
    for (;;) {
      description = (await jobRow.textContent()) ?? '';
      if (/succeeded|failed|aborted|interrupted/.test(description)) break;
      if (Date.now() - started > 30 * 60_000) throw new Error(`the job did not finish within 30 min: ${description}`);
      if (!EXPAND_DURING || expanded >= sets - keepForIdle) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      during.push(await sampleFirstExpansion(page, seen));
      expanded++;
    }
    const jobSeconds = (Date.now() - started) / 1000;
    await recording.stop();
    const records = await page.evaluate(() => {
      window.__modelopsLiveStop();
      return window.__modelopsLive;
    });
    const lag = liveLag(records, 200);
    const idle = [];
    while (expanded++ < sets && idle.length < IDLE_SAMPLES) idle.push(await sampleFirstExpansion(page, seen));

    console.log(
      `\nJobs view: a parameter set's first expansion (its replicates asked of the extension host), ${TASKS} tasks, job ${jobSeconds.toFixed(1)} s in the editor`,
    );
    console.log(`  final: ${description.replace(/\s+/g, ' ').trim()}`);
    console.log(`  ${describe('during the job', during)}`);
    console.log(`  ${describe('idle, after it', idle)}`);
    const median = quantile(during, 0.5);
    if (during.length)
      console.log(
        `  during / idle: ${(median / quantile(idle, 0.5)).toFixed(2)}×; target: median under 200 ms during the job — ${median < 200 ? 'met' : 'MISSED'}`,
      );
    console.log(`Live counts during the job: the tree behind the status bar (sampled in the page)`);
    if (!lag) console.log('  the status bar never showed a count for the job');
    else {
      console.log(
        `  distinct counts shown while the job ran: status bar ${lag.updates.status}, job row ${lag.updates.job}`,
      );
      console.log(`  ${describeLag('job row', lag.job)}`);
      console.log(`  ${describeLag('set rows under way', lag.set)}`);
      const worst = Math.max(0, ...lag.job.ms, ...lag.set.ms);
      console.log(
        `  target: never more than one refresh interval (250 ms) behind — ${worst <= 250 ? 'met' : 'MISSED'} (max ${worst.toFixed(0)} ms)`,
      );
    }
    if (process.env.BENCH_LIVE_RECORDS) writeFileSync(process.env.BENCH_LIVE_RECORDS, JSON.stringify(records));
    if (!/succeeded/.test(description)) process.exitCode = 1;
  } catch (error) {
    const page = browser?.pages()[0];
    const rows = await page
      ?.evaluate(
        (view) =>
          [...document.querySelectorAll(`${view} .monaco-list-row`)].map(
            (r) => `${r.getAttribute('aria-level')}:${r.getAttribute('aria-expanded')}:${r.textContent}`,
          ),
        VIEW,
      )
      .catch(() => []);
    console.error(`rows of the Jobs view at the failure:\n  ${(rows ?? []).join('\n  ')}`);
    await page
      ?.screenshot({ path: path.join(ROOT, 'test-results', 'bench-editor-failure.png') })
      .catch(() => undefined);
    throw error;
  } finally {
    await browser?.close().catch(() => undefined);
    stop();
  }
}

main().catch((error) => {
  console.error(`bench:editor could not run: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
});
