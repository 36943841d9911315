/**
 * Building one venv, atomically: in a temporary sibling directory, with the bundle's
 * dependencies installed, checked to run our runner, marked, and only then renamed into
 * place. Whatever stops a build half-way leaves a `.tmp-*` directory that is never reused.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BundleDeps, Requirement } from '../bundle/deps';
import { unreachableIndex } from '../diagnose/installError';
import { Failure, isFailure } from '../failure';
import { ourRunnerScript } from '../process/runnerScript';
import { WarmProcess } from '../process/warmProcess';
import type { InterpreterInfo } from './interpreter';
import { binaryIdentity } from './interpreter';
import { processStartTime } from '../lock/dirLock';
import { MARKER_SCHEMA, venvPython, writeMarker, type VenvMarker } from './marker';

export interface BuildRequest {
  cacheDir: string;
  key: string;
  bundleDir: string;
  bundleDigest: string;
  deps: BundleDeps;
  base: InterpreterInfo;
  extraInstallArgs: string[];
  installTimeoutMs: number;
  env?: Record<string, string>;
  /** Recorded in the marker of a private (force-fresh) venv. */
  privateOwner?: boolean;
}

export interface BuildResult {
  path: string;
  marker: VenvMarker;
  logFile: string;
}

/** Paths and the log of one build. */
interface Workspace {
  temp: string;
  final: string;
  log: WriteStream;
  logFile: string;
}

const FUNCTIONAL_CHECK_TIMEOUT_MS = 60_000;
const BUNDLE_IMPORT_GRACE_MS = 2_000;
const MIN_PIP_FOR_PYTHON_OPTION = [22, 3];

export function installLogFile(cacheDir: string, key: string): string {
  return path.join(cacheDir, `${key}.install.log`);
}

export function tempPrefix(key: string): string {
  return `.tmp-${key}-`;
}

export async function buildVenv(request: BuildRequest): Promise<BuildResult> {
  const started = performance.now();
  const final = path.join(request.cacheDir, request.key);
  const temp = path.join(
    request.cacheDir,
    `${tempPrefix(request.key)}${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  const logFile = installLogFile(request.cacheDir, request.key);
  await fs.mkdir(request.cacheDir, { recursive: true });
  const log = createWriteStream(logFile);
  const workspace: Workspace = { temp, final, log, logFile };
  log.write(
    `# modelops-debugger venv build ${request.key}\n# bundle ${request.bundleDir}\n# python ${request.base.realPath} (${request.base.version})\n# started ${new Date().toISOString()}\n\n`,
  );
  try {
    const installer = await createAndInstall(request, workspace);
    await relocateScripts(temp, final);
    const functionalCheck = await functionalCheckOf(request, temp);
    const marker: VenvMarker = {
      schema: MARKER_SCHEMA,
      key: request.key,
      bundle: request.bundleDir,
      bundleName: request.deps.projectName,
      bundleDigest: request.bundleDigest,
      depsHash: request.deps.depsHash,
      python: { ...(await binaryIdentity(request.base.path)), path: request.base.path, version: request.base.version },
      installer,
      requirements: request.deps.requirements.map((r) => r.spec),
      createdAt: new Date().toISOString(),
      buildMs: Math.round(performance.now() - started),
      functionalCheck,
      owner: request.privateOwner
        ? { pid: process.pid, host: os.hostname(), startTime: processStartTime(process.pid) }
        : undefined,
    };
    await writeMarker(temp, marker);
    await fs.rename(temp, final);
    log.write(`\n# done in ${marker.buildMs} ms: ${functionalCheck}\n`);
    return { path: final, marker, logFile };
  } catch (error) {
    log.write(`\n# FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    await fs.rm(temp, { recursive: true, force: true });
    throw error;
  } finally {
    await new Promise((resolve) => log.end(resolve));
  }
}

// ---- create + install -----------------------------------------------------------------------

type Installer = 'uv' | 'pip --python' | 'pip in venv';

async function createAndInstall(
  request: BuildRequest,
  workspace: Workspace,
): Promise<{ name: string; version: string }> {
  const { base, deps } = request;
  const needsInstall = deps.requirements.length > 0 || deps.requirementOptions.length > 0;
  const uv = findOnPath('uv');
  const basePip = uv || !needsInstall ? undefined : await pipVersion(request, workspace.log);
  const installer: Installer = uv
    ? 'uv'
    : !needsInstall || (basePip && atLeast(basePip, MIN_PIP_FOR_PYTHON_OPTION))
      ? 'pip --python'
      : 'pip in venv';

  if (installer === 'uv') {
    await step(request, workspace, 'venv-create-failed', uv!, ['venv', '--python', base.path, workspace.temp]);
  } else {
    // without pip a venv takes ~50 ms instead of seconds; pip then runs from the base interpreter
    const args = ['-m', 'venv', ...(installer === 'pip in venv' ? [] : ['--without-pip']), workspace.temp];
    await step(request, workspace, 'venv-create-failed', base.path, args);
  }
  if (!needsInstall) {
    workspace.log.write('# no dependencies to install\n');
    return installer === 'uv'
      ? { name: 'uv', version: await toolVersion(uv!, ['--version']) }
      : { name: 'venv', version: `Python ${base.version}` };
  }

  const target = venvPython(workspace.temp);
  const what = installArguments(request);
  if (installer === 'uv') {
    await step(request, workspace, 'deps-install-failed', uv!, [
      'pip',
      'install',
      '--python',
      target,
      ...uvPipConfig(request.env),
      ...what,
    ]);
    return { name: 'uv', version: await toolVersion(uv!, ['--version']) };
  }
  if (installer === 'pip --python') {
    await step(request, workspace, 'deps-install-failed', base.path, [
      '-m',
      'pip',
      '--python',
      target,
      'install',
      ...what,
    ]);
    return { name: 'pip', version: basePip!.join('.') };
  }
  await step(request, workspace, 'deps-install-failed', target, ['-m', 'pip', 'install', ...what]);
  return { name: 'pip', version: await toolVersion(target, ['-m', 'pip', '--version']) };
}

function installArguments(request: BuildRequest): string[] {
  const { deps } = request;
  const pipOptions = ['--disable-pip-version-check', '--no-input'];
  if (deps.source === 'requirements.txt') {
    return [...pipOptions, ...request.extraInstallArgs, '-r', path.join(request.bundleDir, 'requirements.txt')];
  }
  return [...pipOptions, ...request.extraInstallArgs, ...deps.requirements.map((r) => r.spec)];
}

/**
 * uv does not read pip's environment; translate the settings that make an offline install
 * work (index, find-links, no-index) so that one configuration serves both installers.
 */
function uvPipConfig(env: Record<string, string> | undefined): string[] {
  const all = { ...process.env, ...env };
  const args: string[] = [];
  if (all.PIP_INDEX_URL) args.push('--index-url', all.PIP_INDEX_URL);
  for (const url of (all.PIP_EXTRA_INDEX_URL ?? '').split(/\s+/).filter(Boolean)) args.push('--extra-index-url', url);
  for (const dir of (all.PIP_FIND_LINKS ?? '').split(/\s+/).filter(Boolean)) args.push('--find-links', dir);
  if (/^(1|true|yes|on)$/i.test(all.PIP_NO_INDEX ?? '')) args.push('--no-index');
  return args;
}

/** Run one build command, its output into the log; a failure becomes the given kind, with the output's cause. */
async function step(
  request: BuildRequest,
  workspace: Workspace,
  kind: 'venv-create-failed' | 'deps-install-failed',
  file: string,
  args: string[],
): Promise<void> {
  workspace.log.write(`$ ${[file, ...args].join(' ')}\n`);
  const child = execa(file, args, {
    cwd: request.bundleDir,
    env: { ...request.env, PYTHONNOUSERSITE: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' },
    extendEnv: true,
    all: true,
    reject: false,
    timeout: request.installTimeoutMs,
    stdin: 'ignore',
  });
  child.all?.on('data', (chunk: Buffer) => workspace.log.write(chunk));
  const result = await child;
  workspace.log.write(`# exit ${result.exitCode ?? result.signal}${result.timedOut ? ' (timed out)' : ''}\n`);
  if (result.exitCode === 0) return;
  const output = String(result.all ?? '');
  const evidence = {
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
    stderrTail: output.slice(-4000),
    notes: [`full output: ${workspace.logFile}`],
  };
  const timedOut = result.timedOut ? ` (timed out after ${Math.round(request.installTimeoutMs / 1000)} s)` : '';
  if (kind === 'venv-create-failed') {
    throw new Failure(
      kind,
      `Creating the venv failed${timedOut}: ${lastErrorLine(output) ?? `${path.basename(file)} exited with ${result.exitCode ?? result.signal}`}`,
      evidence,
    );
  }
  const culprit = failingRequirement(output, request.deps.requirements);
  const what = culprit ? `Installing ${culprit.spec}` : "Installing the bundle's dependencies";
  // "No matching distribution found for X" reads like a typo in X; an index that could not be reached is the cause
  const unreachable = await unreachableIndex(output, args, { ...process.env, ...request.env });
  const said = lastErrorLine(output) ?? 'see the install log';
  const cause = unreachable
    ? `the package index ${unreachable.url ?? ''}${unreachable.url ? ' ' : ''}could not be reached (${unreachable.why}); ${path.basename(file) === 'uv' ? 'uv' : 'pip'} said: ${said}`
    : said;
  if (unreachable) {
    evidence.notes.push(
      unreachable.how === 'probe'
        ? `found by connecting to ${unreachable.url} after the install failed (the installer's output does not say why it found no versions)`
        : "found in the installer's output (its retries)",
    );
  }
  throw new Failure(
    kind,
    `${what} failed${timedOut}: ${cause}`,
    evidence,
    culprit ? { file: culprit.file, line: culprit.line } : undefined,
  );
}

/** The requirement pip or uv names in its error, matched by normalised project name. */
export function failingRequirement(output: string, requirements: readonly Requirement[]): Requirement | undefined {
  const patterns = [
    /No matching distribution found for ([^\s]+)/,
    /Could not find a version that satisfies the requirement ([^\s]+)/,
    /Because ([A-Za-z0-9._-]+)[^ ]* was not found/,
    /No solution found when resolving dependencies:[\s\S]*?Because ([A-Za-z0-9._-]+)/,
    /ERROR: Failed building wheel for ([^\s]+)/,
    /× Failed to (?:build|download) `([^`@=<>!~ ]+)/,
  ];
  for (const pattern of patterns) {
    const named = pattern.exec(output)?.[1];
    if (!named) continue;
    const name = named
      .replace(/[<>=!~;[].*$/, '')
      .toLowerCase()
      .replace(/[-_.]+/g, '-');
    const match = requirements.find((r) => r.name === name);
    if (match) return match;
  }
  return undefined;
}

function lastErrorLine(output: string): string | undefined {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (
    [...lines]
      .reverse()
      .find((l) => /^(ERROR|error)[:\s]|^×/.test(l))
      ?.replace(/^ERROR:\s*/, '') ?? lines.at(-1)
  );
}

async function pipVersion(request: BuildRequest, log: WriteStream): Promise<number[] | undefined> {
  const text = await toolVersion(request.base.path, ['-m', 'pip', '--version']).catch(() => '');
  log.write(`# base interpreter's pip: ${text || 'none'}\n`);
  const match = /^pip (\d+)\.(\d+)/.exec(text);
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

async function toolVersion(file: string, args: string[]): Promise<string> {
  const result = await execa(file, args, { reject: false, timeout: 30_000, stdin: 'ignore' });
  return result.exitCode === 0 ? String(result.stdout).trim() : '';
}

function atLeast(version: number[], minimum: number[]): boolean {
  return version[0] > minimum[0] || (version[0] === minimum[0] && version[1] >= minimum[1]);
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

// ---- after install ----------------------------------------------------------------------------

/**
 * Scripts in bin/ (activate, console-script shebangs) name the directory they were built in.
 * Point them at the final path before the rename, so the venv works there as built.
 */
async function relocateScripts(temp: string, final: string): Promise<void> {
  const bin = path.join(temp, 'bin');
  for (const entry of await fs.readdir(bin, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(bin, entry.name);
    const stat = await fs.stat(file);
    if (stat.size > 1024 * 1024) continue;
    const text = await fs.readFile(file, 'latin1');
    if (text.includes(temp)) await fs.writeFile(file, text.split(temp).join(final), 'latin1');
  }
}

/**
 * The new venv must run our runner. Reaching the bundle (the runner looking for its wire
 * function) is enough: a bundle with no wire, or one that fails or takes long to import, is
 * the bundle's problem (the handshake reports it), not the venv's; so from then on the runner
 * gets a short grace to answer `ready`.
 */
async function functionalCheckOf(request: BuildRequest, temp: string): Promise<string> {
  let reachedBundle: () => void = () => undefined;
  const importing = new Promise<void>((resolve) => (reachedBundle = resolve));
  const runner = WarmProcess.start({
    python: venvPython(temp),
    runnerScript: ourRunnerScript(),
    bundleDir: request.bundleDir,
    venvPath: temp,
    bundleDigest: request.bundleDigest,
    env: request.env,
    onPhase: (phase) => {
      if (phase.phase !== 'starting') reachedBundle();
    },
  });
  const reached = () => runner.marks.some((m) => m.name !== 'spawn' && m.name !== 'starting');
  let grace: NodeJS.Timeout | undefined;
  try {
    const ready = runner.ready(FUNCTIONAL_CHECK_TIMEOUT_MS).then(() => 'the runner answered ready in it');
    const slowBundle = importing
      .then(() => new Promise((resolve) => (grace = setTimeout(resolve, BUNDLE_IMPORT_GRACE_MS))))
      .then(() => "the runner reached the bundle's code in it (the bundle is still importing)");
    return await Promise.race([ready, slowBundle]);
  } catch (error) {
    if (reached())
      return `the runner reached the bundle's code in it (the bundle then failed: ${isFailure(error) ? error.kind : 'error'})`;
    const cause = isFailure(error) ? error.message : String(error);
    throw new Failure(
      'venv-create-failed',
      `The new venv cannot run the runner: ${cause}`,
      isFailure(error) ? error.evidence : {},
    );
  } finally {
    clearTimeout(grace);
    await runner.kill();
  }
}
