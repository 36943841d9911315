// The extension-host tests, in a real VS Code: code-server on loopback, driven by Debian's
// headless Chromium. Mocha runs inside the extension host with the real `vscode` API (the
// suite is out/vscode/suite.js, built by esbuild.mjs); its output comes back through the
// page, and so does its exit code (window.codeAutomationExit).
import * as path from 'node:path';
import { launchBrowser, ROOT, startCodeServer } from './codeServer.mjs';

const SUITE = path.join(ROOT, 'out', 'vscode', 'suite.js');
const RUN_TIMEOUT_MS = 10 * 60_000;

async function main() {
  const { host, work, stop } = await startCodeServer();
  let browser;
  try {
    browser = await launchBrowser(work);
    const page = browser.pages()[0] ?? (await browser.newPage());
    let finish;
    const finished = new Promise((resolve) => (finish = resolve));
    await page.exposeFunction('codeAutomationLog', (_type, args) =>
      console.log(...(Array.isArray(args) ? args : [args])),
    );
    await page.exposeFunction('codeAutomationExit', (code) => finish(code));
    const remote = (file) => `vscode-remote://${host}${file}`;
    const payload = JSON.stringify([
      ['extensionDevelopmentPath', remote(ROOT)],
      ['extensionTestsPath', remote(SUITE)],
    ]);
    await page.goto(
      `http://${host}/?folder=${encodeURIComponent(path.join(ROOT, 'test', 'fixtures'))}&payload=${encodeURIComponent(payload)}`,
    );
    const code = await Promise.race([
      finished,
      new Promise((resolve) => setTimeout(() => resolve('timeout'), RUN_TIMEOUT_MS)),
    ]);
    if (code === 'timeout')
      console.error(`the extension-host tests did not finish within ${RUN_TIMEOUT_MS / 60_000} min`);
    return code === 0 ? 0 : 1;
  } finally {
    await browser?.close().catch(() => undefined);
    stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`editor tests could not run: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  },
);
