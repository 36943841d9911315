// The UI test: the packaged extension (.vsix) installed into code-server, driven through
// headless Chromium as a person would — open the ModelOps container, run a job from the
// command palette, expand the failed parameter set, open the failing line — with screenshots
// in test-results/: the Jobs view with a failure, the editor with the diagnostic, the Venv
// Caches view, a handshake's conversation, a task that left a process running, a handshake's
// warning (its notification and its Problems entry), a job resumed after a cancel (every set
// "agg ok"), an aborted job saying why, the results view of an aggregation and a crashed
// replicate's tooltip, the Cluster view of a loopback Dask cluster and an action run from its
// context menu (Handshake on Worker: its confirmation, then its report). Prints a mocha-style summary.
// MODELOPS_UI_GREP=<regexp> runs only the steps whose name matches (the others are skipped, not failed).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { launchBrowser, pickCommand, quickOpen, ROOT, startCodeServer } from '../vscode/codeServer.mjs';

const RESULTS = path.join(ROOT, 'test-results');
const WAIT_MS = 60_000;
const STEPS = 18;
const GREP = process.env.MODELOPS_UI_GREP ? new RegExp(process.env.MODELOPS_UI_GREP) : undefined;

const steps = [];
async function step(name, body) {
  if (GREP && !GREP.test(name)) {
    steps.push({ name, ok: true, skipped: true });
    console.log(`    - ${name} (skipped)`);
    return;
  }
  try {
    await body();
    steps.push({ name, ok: true });
    console.log(`    ✔ ${name}`);
  } catch (error) {
    steps.push({ name, ok: false });
    console.log(`    ✘ ${name}\n      ${(error instanceof Error ? error.message : String(error)).split('\n')[0]}`);
    throw error;
  }
}

async function main() {
  mkdirSync(RESULTS, { recursive: true });
  const vsix = path.join(RESULTS, 'modelops-debugger.vsix');
  const packaged = spawnSync(
    path.join(ROOT, 'node_modules', '.bin', 'vsce'),
    ['package', '--no-dependencies', '--allow-missing-repository', '--out', vsix],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (packaged.status !== 0) throw new Error(`vsce package failed: ${packaged.stderr || packaged.stdout}`);
  const { host, work, stop } = await startCodeServer({ vsix });
  const ws = path.join(work, 'ws');
  mkdirSync(path.join(ws, 'bundle'), { recursive: true });
  writeFileSync(
    path.join(ws, 'bundle', 'wire.py'),
    'def wire(entrypoint, params, seed):\n    if params["x"] == 2.0:\n        raise ValueError("x must not be 2")\n    return {"value": str(params["x"]).encode()}\n',
  );
  writeFileSync(
    path.join(ws, 'job.json'),
    '{"job_id": "ui-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1.0}, {"x": 2.0}], "replicates": 3}\n',
  );
  // the same bundle with a target, for the results view of an aggregation
  writeFileSync(
    path.join(ws, 'bundle', 'targets.py'),
    'import base64, json\n\ndef mean_value(sim_returns, target_data):\n    values = [json.loads(base64.b64decode(r["outputs"]["value"]["inline"])) for r in sim_returns]\n    return {"loss": abs(sum(values) / len(values) - 4.0), "diagnostics": {"mean": sum(values) / len(values), "observed": 4.0}, "n_replicates": len(values)}\n',
  );
  writeFileSync(
    path.join(ws, 'results-job.json'),
    '{"job_id": "ui-results", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 3.5}], "replicates": 5, "targets": ["targets:mean_value"]}\n',
  );
  // a simulation that starts a helper and never waits for it: the job still ends, and says so
  mkdirSync(path.join(ws, 'forking'), { recursive: true });
  writeFileSync(
    path.join(ws, 'forking', 'wire.py'),
    'import subprocess\n\ndef wire(entrypoint, params, seed):\n    subprocess.Popen(["sleep", "3600"])\n    return {"value": b"1"}\n',
  );
  // a job to cancel and resume (4 sets × 6 replicates of 1.2 s: events sparse enough for the view to refresh
  // between them), and one aborted before it runs (python-mismatch)
  mkdirSync(path.join(ws, 'slow'), { recursive: true });
  writeFileSync(
    path.join(ws, 'slow', 'wire.py'),
    'import time\n\ndef wire(entrypoint, params, seed):\n    time.sleep(1.2)\n    return {"value": b"1"}\n',
  );
  writeFileSync(
    path.join(ws, 'resume-job.json'),
    '{"job_id": "ui-resume", "bundle": "slow", "entrypoint": "m.m/x", "parameter_sets": [{"s": 1}, {"s": 2}, {"s": 3}, {"s": 4}], "replicates": 6}\n',
  );
  mkdirSync(path.join(ws, 'future'), { recursive: true });
  writeFileSync(
    path.join(ws, 'future', 'pyproject.toml'),
    '[project]\nname = "future"\nversion = "1"\nrequires-python = ">=3.99"\n',
  );
  writeFileSync(path.join(ws, 'future', 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {}\n');
  writeFileSync(
    path.join(ws, 'future-job.json'),
    '{"job_id": "ui-aborted", "bundle": "future", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}], "replicates": 2}\n',
  );
  writeFileSync(
    path.join(ws, 'fork-job.json'),
    '{"job_id": "ui-fork", "bundle": "forking", "entrypoint": "m.m/x", "parameter_sets": [{"k": 5}], "replicates": 2}\n',
  );
  // a bundle that prints at import: production's runner would break on it, ours warns
  mkdirSync(path.join(ws, 'noisy'), { recursive: true });
  writeFileSync(
    path.join(ws, 'noisy', 'wire.py'),
    'print("Loading model weights...")\n\n\ndef wire(entrypoint, params, seed):\n    return {"value": b"1"}\n',
  );
  // a simulation that crashes its runner in native code (SIGSEGV)
  mkdirSync(path.join(ws, 'crashing'), { recursive: true });
  writeFileSync(
    path.join(ws, 'crashing', 'wire.py'),
    'import ctypes\nimport sys\n\n\ndef crash_in_native():\n    ctypes.string_at(0)\n\n\ndef wire(entrypoint, params, seed):\n    sys.stderr.write("computing k=%s seed=%s\\n" % (params["k"], seed))\n    sys.stderr.flush()\n    crash_in_native()\n    return {}\n',
  );
  writeFileSync(
    path.join(ws, 'crash-job.json'),
    '{"job_id": "ui-crash", "bundle": "crashing", "entrypoint": "m.m/x", "parameter_sets": [{"k": 7}], "replicates": 1}\n',
  );
  // a job long enough to watch on the timeline (6 sets × 30 replicates of 60 ms), one set failing
  mkdirSync(path.join(ws, 'paced'), { recursive: true });
  writeFileSync(
    path.join(ws, 'paced', 'wire.py'),
    // after its first 20 tasks each runner holds while the file `timeline-gate` exists (60 s at
    // most), so the job still runs when the timeline's page first draws, however slowly the
    // webview starts (a CI run saw the 6 s job end first); the step removes the gate then
    'import os\nimport time\n\nGATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "timeline-gate")\nCALLS = [0]\n\n\ndef wire(entrypoint, params, seed):\n    CALLS[0] += 1\n    if CALLS[0] > 20:\n        until = time.monotonic() + 60\n        while os.path.exists(GATE) and time.monotonic() < until:\n            time.sleep(0.01)\n    time.sleep(0.06)\n    if params["p"] == 4 and seed % 3 == 0:\n        raise ValueError("p=4 diverged")\n    return {"value": b"1"}\n',
  );
  writeFileSync(
    path.join(ws, 'timeline-job.json'),
    '{"job_id": "ui-timeline", "bundle": "paced", "entrypoint": "m.m/x", "parameter_sets": [{"p": 1}, {"p": 2}, {"p": 3}, {"p": 4}, {"p": 5}, {"p": 6}], "replicates": 30}\n',
  );
  let browser;
  let laid; // the Cluster view's loopback cluster
  console.log('\n  the extension, driven through the UI');
  try {
    browser = await launchBrowser(work);
    const page = browser.pages()[0] ?? (await browser.newPage());
    await page.goto(`http://${host}/?folder=${encodeURIComponent(ws)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: WAIT_MS });
    // a row's tooltip: VS Code shows it only on a fresh hover, so the mouse leaves and comes back
    // until a hover holding `text` is up (a toast or a refresh of the row can swallow one)
    const hoverFor = async (row, text) => {
      const hover = page
        .locator(':is(.monaco-hover, .custom-hover, .workbench-hover)')
        .filter({ hasText: text })
        .first();
      for (let attempt = 1; ; attempt++) {
        await page.mouse.move(900, 450);
        await page.waitForTimeout(300);
        await row.hover();
        try {
          await hover.waitFor({ timeout: 10_000 });
          return;
        } catch (error) {
          if (attempt === 4) throw error;
        }
      }
    };
    const container = page.locator('.activitybar [aria-label*="ModelOps"]').first();
    // Quick Open lists recently opened files at once, before its search: wait for the file's own row
    const openFile = async (relative) => {
      await page.keyboard.press('Control+P');
      await page.locator('.quick-input-widget input.input').fill(relative);
      const name = path.basename(relative);
      const folder = path.dirname(relative);
      const row = page
        .locator(`.quick-input-widget .monaco-list-row[aria-label*="${name}"]`)
        .filter({ hasText: folder === '.' ? name : folder })
        .first();
      await row.waitFor({ timeout: WAIT_MS });
      await row.click();
    };

    /**
     * code-server's folder dialog is a quick input that takes a path, with the open label as its
     * button; `movedOn(timeoutMs)` resolves once it has moved on.
     */
    const pickFolderInDialog = async (input, label, folder, movedOn) => {
      const open = page.locator('.quick-input-widget .monaco-button').filter({ hasText: label }).first();
      await open.waitFor({ timeout: WAIT_MS });
      // it opens on the workspace folder, listing it, and then takes a typed path
      await page
        .locator(`.quick-input-widget .monaco-list-row[aria-label="${folder}"]`)
        .first()
        .waitFor({ timeout: WAIT_MS });
      const typed = `${path.join(ws, folder)}/`;
      await input.fill(typed);
      // it lists the folders inside the one typed (none here, only "..") once it has read it
      await page.waitForFunction(
        (typed) =>
          document.querySelector('.quick-input-widget input.input')?.value === typed &&
          [...document.querySelectorAll('.quick-input-widget .monaco-list-row')].every(
            (row) => row.getAttribute('aria-label') === '..',
          ),
        typed,
        { timeout: WAIT_MS },
      );
      // a click while the dialog is still settling on the typed path is ignored: click until it moves on
      for (let attempt = 1; ; attempt++) {
        await open.click();
        try {
          await movedOn(5_000);
          return;
        } catch (error) {
          if (attempt === 3) throw error;
        }
      }
    };

    await step('the installed .vsix activates: the ModelOps container and its welcome view', async () => {
      await container.waitFor({ timeout: WAIT_MS });
      await container.click();
      await page.getByText('No jobs yet.').first().waitFor({ timeout: WAIT_MS });
    });

    await step('a job runs from the command palette', async () => {
      await quickOpen(page, 'job.json', WAIT_MS);
      await (await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS)).press('Enter');
      await page
        .locator('.monaco-list-row:has-text("ui-job")')
        .filter({ hasText: 'failed' })
        .first()
        .waitFor({ timeout: WAIT_MS });
    });

    await step('the failed parameter set shows its failed replicates (screenshot jobs-failure.png)', async () => {
      await page.locator('.monaco-list-row:has-text("x=2.0")').first().click();
      await page
        .locator('.monaco-list-row:has-text("replicate 0")')
        .filter({ hasText: 'task-exception' })
        .first()
        .waitFor({ timeout: WAIT_MS });
      await page.screenshot({ path: path.join(RESULTS, 'jobs-failure.png') });
    });

    await step('a failed replicate opens its line, with the diagnostic (screenshot diagnostic.png)', async () => {
      await page
        .locator('.monaco-list-row:has-text("replicate 0")')
        .filter({ hasText: 'task-exception' })
        .first()
        .click();
      await page.locator('.tab[aria-label*="wire.py"]').first().waitFor({ timeout: WAIT_MS });
      await page.locator('.squiggly-error').first().waitFor({ timeout: WAIT_MS });
      await page.screenshot({ path: path.join(RESULTS, 'diagnostic.png') });
    });

    await step(
      '"ModelOps: Debug Replicate" from the palette offers the failed replicates, with their seed and how they failed (screenshot debug-palette.png)',
      async () => {
        await (await pickCommand(page, 'ModelOps: Debug Replicate', WAIT_MS)).press('Enter');
        await page
          .locator('.quick-input-widget .monaco-list-row')
          .filter({ hasText: /replicate 0 · seed \d+/ })
          .filter({ hasText: 'ValueError' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'debug-palette.png') });
        await page.keyboard.press('Escape');
        await page.locator('.quick-input-widget').first().waitFor({ state: 'hidden', timeout: WAIT_MS });
      },
    );

    await step(
      '"Debug Replicate" on the failed replicate stops at the line that raised, under debugpy (screenshot debug-stopped.png)',
      async () => {
        const row = page
          .locator('.monaco-list-row:has-text("replicate 0")')
          .filter({ hasText: 'task-exception' })
          .first();
        await row.hover();
        await row.locator('.action-label[aria-label="Debug Replicate"]').click();
        // the exception widget under the raising line, and the debug toolbar
        await page.locator('.exception-widget').first().waitFor({ timeout: WAIT_MS });
        await page.locator('.debug-toolbar').first().waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'debug-stopped.png') });
        await page.locator('.debug-toolbar .action-label[aria-label^="Stop"]').first().click();
        await page.locator('.debug-toolbar').first().waitFor({ state: 'hidden', timeout: WAIT_MS });
        // the debugger took the side bar and the panel: back to the ModelOps views for the steps after this one
        await container.click();
        await page.locator('.pane-header[aria-label^="Jobs"]').first().waitFor({ timeout: WAIT_MS });
      },
    );

    await step(
      'the Testing view has the job as a test run: the failed replicate at its raising line, with its actions in Test Results (screenshots testing-view.png, testing-actions.png)',
      async () => {
        await (await pickCommand(page, 'Testing: Focus on Test Explorer View', WAIT_MS)).press('Enter');
        const explorer = page.locator('.test-explorer');
        const expand = async (text) => {
          const row = explorer.locator('.monaco-list-row').filter({ hasText: text }).first();
          await row.waitFor({ timeout: WAIT_MS });
          if ((await row.getAttribute('aria-expanded')) !== 'true') await row.locator('.monaco-tl-twistie').click();
        };
        await expand('ui-job');
        await expand('x=2.0');
        const failed = explorer
          .locator('.monaco-list-row')
          .filter({ hasText: 'replicate 0' })
          .filter({ has: page.locator('.codicon-testing-failed-icon') })
          .first();
        await failed.waitFor({ timeout: WAIT_MS });
        await failed.click();
        await page.screenshot({ path: path.join(RESULTS, 'testing-view.png') });
        // the message in Test Results, and the actions on it
        await (await pickCommand(page, 'Focus on Test Results View', WAIT_MS)).press('Enter');
        const message = page
          .locator('.test-output-peek-tree .monaco-list-row')
          .filter({ hasText: 'x must not be 2' })
          .first();
        await message.waitFor({ timeout: WAIT_MS });
        await message.click({ button: 'right' });
        await page
          .locator('.context-view .action-label')
          .filter({ hasText: 'Rerun Cold' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'testing-actions.png') });
        await page.keyboard.press('Escape');
        await container.click();
        await page.locator('.pane-header[aria-label^="Jobs"]').first().waitFor({ timeout: WAIT_MS });
      },
    );

    await step('the Venv Caches view lists the venv the job built (screenshot venv-caches.png)', async () => {
      const header = page.locator('.pane-header[aria-label*="Venv Caches"]').first();
      await header.waitFor({ timeout: WAIT_MS });
      if ((await header.getAttribute('aria-expanded')) !== 'true') await header.click();
      await page.locator('.monaco-list-row:has-text("py3")').first().waitFor({ timeout: WAIT_MS });
      await page.screenshot({ path: path.join(RESULTS, 'venv-caches.png') });
    });

    await step(
      '"Replay Handshake…" from the palette shows the verdict and the conversation (screenshot handshake-transcript.png)',
      async () => {
        const input = await pickCommand(page, 'ModelOps: Replay Handshake', WAIT_MS);
        await input.press('Enter');
        await pickFolderInDialog(input, 'Replay Handshake', 'bundle', (timeout) =>
          page.locator('.quick-input-widget .monaco-list-row[aria-label*="Our runner"]').first().waitFor({ timeout }),
        );
        await input.fill('Our runner');
        await input.press('Enter');
        await page.locator('.view-lines:has-text("→ #1 ready")').first().waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'handshake-transcript.png') });
      },
    );

    await step(
      'a job whose simulations leave a process running ends, and each replicate says so, with a warning on the line (screenshots jobs-lingering.png, lingering-diagnostic.png)',
      async () => {
        await openFile('fork-job.json');
        await page.locator('.tab[aria-label*="fork-job.json"]').first().waitFor({ timeout: WAIT_MS });
        await (await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS)).press('Enter');
        await page
          .locator('.monaco-list-row:has-text("ui-fork")')
          .filter({ hasText: 'succeeded' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await page.locator('.monaco-list-row:has-text("k=5")').first().click();
        await page
          .locator('.monaco-list-row:has-text("replicate 1")')
          .filter({ hasText: 'left 1 process running' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'jobs-lingering.png') });
        // a click on the replicate opens the line that started it, with a warning (screenshot lingering-diagnostic.png)
        await page
          .locator('.monaco-list-row:has-text("replicate 1")')
          .filter({ hasText: 'left 1 process running' })
          .first()
          .click();
        await page.locator('.tab.active[aria-label*="wire.py"]').first().waitFor({ timeout: WAIT_MS });
        await page.locator('.breadcrumbs-control:has-text("forking")').first().waitFor({ timeout: WAIT_MS });
        await page.locator('.squiggly-warning').first().waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'lingering-diagnostic.png') });
      },
    );

    await step(
      '"Handshake Bundle…" on a bundle that prints at import: "ok with 1 warning" with Show, and the warning in Problems (screenshot handshake-warning.png)',
      async () => {
        const input = await pickCommand(page, 'ModelOps: Handshake Bundle', WAIT_MS);
        await input.press('Enter');
        // the dialog has moved on when it closes; the handshake (a venv to build first) then takes a while
        await pickFolderInDialog(input, 'Handshake Bundle', 'noisy', (timeout) =>
          page.locator('.quick-input-widget').first().waitFor({ state: 'hidden', timeout }),
        );
        const toast = page.locator('.notification-toast').filter({ hasText: 'Handshake ok with 1 warning' }).first();
        await toast.waitFor({ timeout: WAIT_MS });
        await toast.locator('.monaco-button').filter({ hasText: 'Show' }).first().waitFor({ timeout: WAIT_MS });
        await page.keyboard.press('Control+Shift+M');
        await page
          .locator('.markers-panel .monaco-list-row')
          .filter({ hasText: 'Loading model weights' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await toast.waitFor({ timeout: 5_000 }); // still shown beside Problems
        await page.screenshot({ path: path.join(RESULTS, 'handshake-warning.png') });
      },
    );

    await step(
      'Cancel then Resume: the resumed job with every set "agg ok"; an aborted job says why (screenshots jobs-resumed.png, jobs-aborted.png)',
      async () => {
        // a wider side bar, so that the rows' descriptions show whole
        const sidebar = await page.locator('.part.sidebar').first().boundingBox();
        await page.mouse.move(sidebar.x + sidebar.width + 1, sidebar.y + 300);
        await page.mouse.down();
        await page.mouse.move(sidebar.x + sidebar.width + 260, sidebar.y + 300, { steps: 5 });
        await page.mouse.up();
        await openFile('resume-job.json');
        await page.locator('.tab.active[aria-label*="resume-job.json"]').first().waitFor({ timeout: WAIT_MS });
        await (await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS)).press('Enter');
        const row = page.locator('.monaco-list-row:has-text("ui-resume")').first();
        // a few replicates done, then the row's inline Cancel
        await page
          .locator('.monaco-list-row:has-text("ui-resume")')
          .filter({ hasText: /running · [1-9]\d*\/24 ✓/ })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await row.hover();
        await row.locator('.action-label[aria-label="Cancel Job"]').click();
        await page
          .locator('.monaco-list-row:has-text("ui-resume")')
          .filter({ hasText: 'interrupted' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await row.hover();
        await row.locator('.action-label[aria-label="Resume Job"]').click();
        await page
          .locator('.monaco-list-row:has-text("ui-resume")')
          .filter({ hasText: 'succeeded · 24/24 ✓' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        for (const set of ['s=1', 's=2', 's=3', 's=4'])
          await page
            .locator(`.monaco-list-row:has-text("${set}")`)
            .filter({ hasText: '6/6 ✓ · agg ok' })
            .first()
            .waitFor({ timeout: WAIT_MS });
        await page.mouse.move(900, 600); // no hover over the rows
        await page.waitForTimeout(500);
        await page.screenshot({ path: path.join(RESULTS, 'jobs-resumed.png') });

        await openFile('future-job.json');
        await page.locator('.tab.active[aria-label*="future-job.json"]').first().waitFor({ timeout: WAIT_MS });
        await (await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS)).press('Enter');
        await page
          .locator('.monaco-list-row:has-text("ui-aborted")')
          .filter({ hasText: 'aborted: python-mismatch' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await page
          .locator('.monaco-list-row:has-text("x=1")')
          .filter({ hasText: 'not run' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        await hoverFor(page.locator('.monaco-list-row:has-text("ui-aborted")').first(), 'requires Python'); // its tooltip: the cause
        await page.screenshot({ path: path.join(RESULTS, 'jobs-aborted.png') });
      },
    );

    await step(
      'a click on an aggregation opens its results: loss and diagnostics per target, summary statistics, replicates, each linked to its own result (screenshots results-view.png, results-replicate.png)',
      async () => {
        await openFile('results-job.json');
        await page.locator('.tab[aria-label*="results-job.json"]').first().waitFor({ timeout: WAIT_MS });
        await (await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS)).press('Enter');
        await page
          .locator('.monaco-list-row:has-text("ui-results")')
          .filter({ hasText: 'succeeded' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        const set = page.locator('.monaco-list-row:has-text("x=3.5")').first();
        await set.waitFor({ timeout: WAIT_MS });
        if ((await set.getAttribute('aria-expanded')) !== 'true') await set.click(); // a click on an expanded row would fold it
        await page
          .locator('.monaco-list-row[aria-expanded="true"]:has-text("x=3.5")')
          .first()
          .waitFor({ timeout: WAIT_MS });
        // the aggregation is the set's first child: the row after it
        const index = Number(await set.getAttribute('data-index'));
        const aggregation = page.locator(`.monaco-list-row[data-index="${index + 1}"]`).first();
        await aggregation.filter({ hasText: 'aggregation' }).waitFor({ timeout: WAIT_MS });
        await aggregation.click();
        await page.locator('.tab[aria-label*="agg-"]').first().waitFor({ timeout: WAIT_MS });
        // the preview renders in a webview (an iframe within an iframe)
        const preview = page.frameLocator('iframe.webview.ready').frameLocator('iframe');
        await preview.getByText('Summary statistics').first().waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'results-view.png') });
        // each replicate in it links to its own result (screenshot results-replicate.png)
        await preview.locator('a', { hasText: /^2$/ }).first().click();
        await page.locator('.tab.active[aria-label*="sim-"]').first().waitFor({ timeout: WAIT_MS });
        // in the preview, or as Markdown when the link opens the document itself
        // (the aggregation's preview stays open in its own webview: any frame of the page may hold it)
        const shown = async () => {
          if ((await page.locator('.view-lines:has-text("# Replicate 2")').count()) > 0) return true;
          for (const frame of page.frames())
            if (
              (await frame
                .getByText('Replicate 2 · x=3.5')
                .count()
                .catch(() => 0)) > 0
            )
              return true;
          return false;
        };
        const deadline = Date.now() + WAIT_MS;
        while (!(await shown())) {
          if (Date.now() > deadline) throw new Error("the replicate's result did not show within the wait");
          await page.waitForTimeout(250);
        }
        await page.screenshot({ path: path.join(RESULTS, 'results-replicate.png') });
      },
    );

    await step(
      'a replicate whose runner crashed says how, where and what it last wrote, in its tooltip (screenshot crash-tooltip.png)',
      async () => {
        await openFile('crash-job.json');
        await page.locator('.tab[aria-label*="crash-job.json"]').first().waitFor({ timeout: WAIT_MS });
        await (await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS)).press('Enter');
        await page
          .locator('.monaco-list-row:has-text("ui-crash")')
          .filter({ hasText: 'failed' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        // expanded, whatever state the row came in (a click on an expanded row would fold it)
        const setRow = page.locator('.monaco-list-row:has-text("k=7")').first();
        await setRow.waitFor({ timeout: WAIT_MS });
        if ((await setRow.getAttribute('aria-expanded')) !== 'true') await setRow.click();
        await page
          .locator('.monaco-list-row[aria-expanded="true"]:has-text("k=7")')
          .first()
          .waitFor({ timeout: WAIT_MS });
        const replicate = page
          .locator('.monaco-list-row:has-text("replicate 0")')
          .filter({ hasText: 'SIGSEGV' })
          .first();
        await replicate.waitFor({ timeout: WAIT_MS });
        await hoverFor(replicate, 'killed by SIGSEGV');
        await page
          .locator(':is(.monaco-hover, .workbench-hover):has-text("computing k=7")')
          .first()
          .waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'crash-tooltip.png') });
      },
    );

    await step(
      '"ModelOps: Show Timeline" from the palette on a running job draws it live, then whole, with a task\'s details on hover (screenshots timeline-live.png, timeline.png)',
      async () => {
        const gate = path.join(ws, 'timeline-gate');
        writeFileSync(gate, '');
        await openFile('timeline-job.json');
        await page.locator('.tab.active[aria-label*="timeline-job.json"]').first().waitFor({ timeout: WAIT_MS });
        await (await pickCommand(page, 'ModelOps: Run Job File', WAIT_MS)).press('Enter');
        await page
          .locator('.monaco-list-row:has-text("ui-timeline")')
          .filter({ hasText: /running · [1-9]\d*\/180 ✓/ })
          .first()
          .waitFor({ timeout: WAIT_MS });
        const input = await pickCommand(page, 'ModelOps: Show Timeline', WAIT_MS);
        await input.press('Enter');
        const job = page.locator('.quick-input-widget .monaco-list-row').filter({ hasText: 'ui-timeline' }).first();
        await job.waitFor({ timeout: WAIT_MS });
        await job.click();
        // the page is two frames down: the webview's host frame, then its content
        const frame = page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
        const status = frame.locator('#tl-status');
        await status.filter({ hasText: /\d+ tasks, \d+ running, \d+ lanes · live/ }).waitFor({ timeout: WAIT_MS });
        await page.mouse.move(900, 600);
        await page.screenshot({ path: path.join(RESULTS, 'timeline-live.png') });
        rmSync(gate, { force: true });
        await status.filter({ hasText: /^186 tasks, \d+ lanes$/ }).waitFor({ timeout: WAIT_MS });
        // the tooltip of a bar in the first lane, halfway along
        const canvas = await frame.locator('#tl-canvas').boundingBox();
        await page.mouse.move(canvas.x + 190 + (canvas.width - 198) / 2, canvas.y + 22 + 11);
        await frame
          .locator('#tl-tip')
          .filter({ hasText: /replicate \d+|aggregation/ })
          .waitFor({ timeout: WAIT_MS });
        await page.screenshot({ path: path.join(RESULTS, 'timeline.png') });
      },
    );

    await step(
      'the run report of ui-job (modelops-debugger report) opens offline in Chromium, asking for nothing outside itself (screenshot report.png)',
      async () => {
        const file = path.join(RESULTS, 'report.html');
        const made = spawnSync(
          process.execPath,
          [path.join(ROOT, 'dist', 'cli.js'), 'report', path.join(ws, 'results', 'ui-job'), '-o', file],
          { encoding: 'utf8' },
        );
        if (made.status !== 0) throw new Error(`report exited ${made.status}: ${made.stderr}`);
        const report = await browser.newPage();
        const requests = [];
        report.on('request', (request) => request.url().startsWith('file:') || requests.push(request.url()));
        await report.goto(`file://${file}`);
        await report.getByText('all 3 failures have x = 2.0').first().waitFor({ timeout: WAIT_MS });
        await report.screenshot({ path: path.join(RESULTS, 'report.png'), fullPage: true });
        await report.close();
        if (requests.length) throw new Error(`the report asked for ${requests.join(', ')}`);
      },
    );

    await step(
      "the Cluster view of a loopback Dask cluster: Cluster Health, a worker's venv caches with their verdicts, bundles and runner (screenshot cluster.png)",
      async () => {
        const { startLaidOutCluster } = createRequire(import.meta.url)('../../out/shared/clusterLayout.js');
        laid = await startLaidOutCluster(mkdtempSync(path.join(os.tmpdir(), 'modelops-ui-cluster-')));
        const [a] = laid.cluster.workers; // worker A: the runner, the healthy venv
        // the container open (run alone, no step before opened it), its other views collapsed for room
        const jobs = page.locator('.pane-header[aria-label^="Jobs"]').first();
        if (!(await jobs.isVisible())) await container.click();
        await jobs.waitFor({ timeout: WAIT_MS });
        for (const name of ['Jobs', 'Warm Processes', 'Venv Caches']) {
          const header = page.locator(`.pane-header[aria-label^="${name}"]`).first();
          if ((await header.getAttribute('aria-expanded')) === 'true') await header.click();
        }
        const input = await pickCommand(page, 'ModelOps: Connect/Inspect Cluster…', WAIT_MS);
        await input.press('Enter');
        await input.fill(laid.cluster.address);
        await input.press('Enter');
        await page.locator('.monaco-list-row:has-text("Cluster Health")').first().waitFor({ timeout: WAIT_MS });
        const worker = page.locator(`.monaco-list-row:has-text("${a.address}")`).first();
        await worker.click();
        await page.locator('.monaco-list-row:has-text("locked by dead pid")').first().waitFor({ timeout: WAIT_MS });
        // the side bar widened so that the verdicts' reasons show whole, and the toasts cleared
        const sash = await page.locator('.part.sidebar').first().boundingBox();
        const edge = sash.x + sash.width;
        await page.mouse.move(edge, 450);
        await page.mouse.down();
        await page.mouse.move(edge + 560, 450, { steps: 10 });
        await page.mouse.up();
        const clear = await pickCommand(page, 'Notifications: Clear All Notifications', WAIT_MS);
        await clear.press('Enter');
        await page.mouse.move(1300, 850);
        await page.waitForTimeout(500);
        await page.screenshot({ path: path.join(RESULTS, 'cluster.png') });
      },
    );

    await step(
      "an action from the Cluster view's context menu: Handshake on Worker on a venv, its modal naming the worker and the venv (cluster-action-confirm.png), then its report in ModelOps Cluster (screenshot cluster-action.png)",
      async () => {
        if (!laid) throw new Error('needs the Cluster view step first (MODELOPS_UI_GREP="Cluster view")');
        const [a] = laid.cluster.workers;
        const venv = `sha256:abcde-py3.11-11111111`;
        // the healthy venv (its description names the runner using it), not its fresh sibling
        const row = page.locator('.monaco-list-row').filter({ hasText: 'ok, used by runner pid' }).first();
        await row.waitFor({ timeout: WAIT_MS });
        await row.click({ button: 'right' });
        const item = page.locator('.context-view .action-label').filter({ hasText: 'Handshake on Worker' }).first();
        await item.waitFor({ timeout: WAIT_MS });
        await item.click();
        const dialog = page.locator('.monaco-dialog-box').first();
        await dialog.waitFor({ timeout: WAIT_MS });
        const said = await dialog.innerText();
        if (!said.includes(`Start a runner on worker ${a.address} with venv `) || !said.includes(venv))
          throw new Error(`the confirmation does not name the worker and the venv: ${said}`);
        await page.screenshot({ path: path.join(RESULTS, 'cluster-action-confirm.png') });
        await dialog.locator('.monaco-button').filter({ hasText: 'Start Runner' }).first().click();
        // the report in the ModelOps Cluster channel (brought forward), and the notification
        await page.locator('.part.panel').filter({ hasText: 'Handshake ok in' }).first().waitFor({ timeout: WAIT_MS });
        await page
          .locator('.notifications-toasts')
          .filter({ hasText: 'Handshake ok' })
          .first()
          .waitFor({ timeout: WAIT_MS });
        // the side bar narrowed again, for the report's room
        const bar = await page.locator('.part.sidebar').first().boundingBox();
        await page.mouse.move(bar.x + bar.width, 450);
        await page.mouse.down();
        await page.mouse.move(bar.x + bar.width - 300, 450, { steps: 10 });
        await page.mouse.up();
        await page.mouse.move(1000, 120); // over the empty editor: no hover on the notification's button
        await page.waitForTimeout(500);
        await page.screenshot({ path: path.join(RESULTS, 'cluster-action.png') });
      },
    );
  } catch {
    try {
      await browser?.pages()[0]?.screenshot({ path: path.join(RESULTS, 'failure.png') });
    } catch {
      // no page to show
    }
  } finally {
    await browser?.close().catch(() => undefined);
    stop();
    await laid?.stop();
  }
  const passed = steps.filter((s) => s.ok && !s.skipped).length;
  const failed = steps.filter((s) => !s.ok).length + (steps.length < STEPS ? STEPS - steps.length : 0);
  console.log(`\n  ${passed} passing`);
  if (failed) console.log(`  ${failed} failing`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`the UI test could not run: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  },
);
