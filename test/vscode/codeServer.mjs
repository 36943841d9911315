// A code-server (VS Code 1.100.3) on loopback with a throwaway profile, and headless Chromium
// to drive it: shared by the extension-host tests and the UI test.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_TIMEOUT_MS = 60_000;

/** Installs Chromium and code-server on first use; returns the code-server binary. */
export function codeServerBinary() {
  const install = spawnSync('bash', [path.join(ROOT, 'scripts', 'install-vscode-test-deps.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (install.status !== 0) throw new Error('installing code-server and chromium failed');
  return install.stdout.trim().split('\n').pop();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForHealth(url, child) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode} before it was healthy`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`code-server did not answer ${url} within ${START_TIMEOUT_MS / 1000} s`);
}

/**
 * Starts code-server; `vsix`: an extension package to install first. Returns its host, a
 * scratch directory, and `stop()` (kills the whole process group, then removes the scratch).
 */
export async function startCodeServer({ vsix, env = {} } = {}) {
  const codeServer = codeServerBinary();
  const work = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-'));
  for (const dir of ['user/User', 'ext', 'xdg', 'ws', 'chrome']) mkdirSync(path.join(work, dir), { recursive: true });
  writeFileSync(
    path.join(work, 'user', 'User', 'settings.json'),
    JSON.stringify({
      'workbench.startupEditor': 'none',
      'telemetry.telemetryLevel': 'off',
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'workbench.tips.enabled': false,
      'security.workspace.trust.enabled': false,
    }),
  );
  const serverEnv = {
    ...process.env,
    XDG_CONFIG_HOME: path.join(work, 'xdg'),
    MODELOPS_VENVS_DIR: path.join(work, 'venvs'),
    ...env,
  };
  const profile = ['--extensions-dir', path.join(work, 'ext'), '--user-data-dir', path.join(work, 'user')];
  if (vsix) {
    const installed = spawnSync(codeServer, [...profile, '--install-extension', vsix], {
      env: serverEnv,
      encoding: 'utf8',
    });
    if (installed.status !== 0) throw new Error(`installing ${vsix} failed: ${installed.stderr || installed.stdout}`);
  }
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const server = spawn(
    codeServer,
    [
      '--auth',
      'none',
      '--bind-addr',
      host,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      ...profile,
      path.join(work, 'ws'),
    ],
    {
      env: serverEnv,
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore'],
    },
  );
  const stop = () => {
    try {
      process.kill(-server.pid, 'SIGKILL'); // the whole group: code-server leaves watchers otherwise
    } catch {
      // already gone
    }
    rmSync(work, { recursive: true, force: true });
  };
  try {
    await waitForHealth(`http://${host}/healthz`, server);
  } catch (error) {
    stop();
    throw error;
  }
  return { host, work, stop };
}

export async function launchBrowser(work) {
  return chromium.launchPersistentContext(path.join(work, 'chrome'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

const QUICK_INPUT = '.quick-input-widget input.input';

/** Opens a workspace file through Quick Open (Ctrl+P), as a person would. */
export async function quickOpen(page, name, timeout) {
  await page.keyboard.press('Control+P');
  const input = page.locator(QUICK_INPUT);
  await input.waitFor({ timeout });
  await input.fill(name);
  await page.locator('.quick-input-widget .monaco-list-row').first().waitFor({ timeout });
  await input.press('Enter');
  await page.locator(`.tab[aria-label*="${name}"]`).first().waitFor({ timeout });
}

/**
 * Picks a command in the command palette (F1) by its title; Enter runs it. Returns the palette's
 * input, which the command's own prompts reuse.
 */
export async function pickCommand(page, title, timeout) {
  await page.keyboard.press('F1');
  const input = page.locator(QUICK_INPUT);
  await input.fill(`>${title}`);
  await page
    .locator(`.quick-input-widget .monaco-list-row[aria-label*="${title.replace(/^ModelOps: /, '')}"]`)
    .first()
    .waitFor({ timeout });
  return input;
}
