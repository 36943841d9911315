// The extension-host tests, in a real VS Code: code-server (VS Code 1.100.3) on loopback,
// driven by Debian's headless Chromium. Mocha runs inside the extension host with the real
// `vscode` API (the suite is out/vscode/suite.js, built by esbuild.mjs); its output comes back
// through the page, and so does its exit code (window.codeAutomationExit).
//
// Usage: node test/vscode/run.mjs  (after scripts/install-vscode-test-deps.sh and a build)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUITE = path.join(ROOT, 'out', 'vscode', 'suite.js');
const RUN_TIMEOUT_MS = 10 * 60_000;
const START_TIMEOUT_MS = 60_000;

function codeServerBinary() {
  const install = spawnSync('bash', [path.join(ROOT, 'scripts', 'install-vscode-test-deps.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
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

async function main() {
  const codeServer = codeServerBinary();
  const work = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-'));
  for (const dir of ['user/User', 'ext', 'xdg', 'ws', 'chrome']) mkdirSync(path.join(work, dir), { recursive: true });
  writeFileSync(
    path.join(work, 'user', 'User', 'settings.json'),
    JSON.stringify({ 'workbench.startupEditor': 'none', 'telemetry.telemetryLevel': 'off', 'extensions.autoCheckUpdates': false, 'extensions.autoUpdate': false, 'workbench.tips.enabled': false, 'security.workspace.trust.enabled': false }),
  );
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const server = spawn(
    codeServer,
    ['--auth', 'none', '--bind-addr', host, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override', '--extensions-dir', path.join(work, 'ext'), '--user-data-dir', path.join(work, 'user'), path.join(work, 'ws')],
    { env: { ...process.env, XDG_CONFIG_HOME: path.join(work, 'xdg'), MODELOPS_VENVS_DIR: path.join(work, 'venvs') }, detached: true, stdio: ['ignore', 'ignore', 'ignore'] },
  );
  const stopServer = () => {
    try {
      process.kill(-server.pid, 'SIGKILL'); // the whole group: code-server leaves watchers otherwise
    } catch {
      // already gone
    }
  };
  let browser;
  try {
    await waitForHealth(`http://${host}/healthz`, server);
    browser = await chromium.launchPersistentContext(path.join(work, 'chrome'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    let finish;
    const finished = new Promise((resolve) => (finish = resolve));
    await page.exposeFunction('codeAutomationLog', (_type, args) => console.log(...(Array.isArray(args) ? args : [args])));
    await page.exposeFunction('codeAutomationExit', (code) => finish(code));
    const remote = (file) => `vscode-remote://${host}${file}`;
    const payload = JSON.stringify([['extensionDevelopmentPath', remote(ROOT)], ['extensionTestsPath', remote(SUITE)]]);
    await page.goto(`http://${host}/?folder=${encodeURIComponent(path.join(ROOT, 'test', 'fixtures'))}&payload=${encodeURIComponent(payload)}`);
    const code = await Promise.race([finished, new Promise((resolve) => setTimeout(() => resolve('timeout'), RUN_TIMEOUT_MS))]);
    if (code === 'timeout') console.error(`the extension-host tests did not finish within ${RUN_TIMEOUT_MS / 60_000} min`);
    return code === 0 ? 0 : 1;
  } finally {
    await browser?.close().catch(() => undefined);
    stopServer();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`editor tests could not run: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  },
);
