/**
 * `modelops-debugger cluster inspect`: a production Dask cluster's workers, through the scheduler
 * only — each worker's venv caches, locks, bundles and runner processes, a verdict for each, and
 * the cluster's health first. Read only.
 *
 * Exit codes: 0 every worker answered and every verdict is ok; 1 some verdict is not ok, or some
 * worker did not answer or failed; 2 bad input; 3 no scheduler there (`scheduler-unreachable`),
 * or no Python with distributed to ask it with.
 *
 * `cluster handshake|rm-venv|clear-lock|rm-orphans` act on one worker (clusterActions.ts), each
 * with consent.
 */
import { Command } from 'commander';
import { ExitCode, exitCodeFor, Failure, unexpectedFailure } from '../engine/failure';
import { inspectCluster, type ClusterReport } from '../engine/cluster/inspect';
import type { WorkerReport } from '../engine/cluster/health';
import type { Verdict } from '../engine/cluster/verdict';
import { describeLock, formatAge, formatTime } from '../engine/cluster/describe';
import { checkSchedulerAddress, timeoutSeconds } from './parsers';
import { writeStderr, writeStdout } from './stdio';
import { formatSize } from '../engine/venv/describe';
import { clusterActionCommands, DEFAULT_CONNECT_TIMEOUT_S } from './clusterActions';

const DEFAULT_TIMEOUT_S = 10;

interface InspectFlags {
  scheduler?: string;
  venvsDir?: string;
  bundlesDir?: string;
  timeout: number;
  connectTimeout: number;
  daskPython?: string;
  json?: boolean;
}

export function clusterCommand(): Command {
  const cluster = new Command('cluster').description('A production Dask cluster, seen through its scheduler.');
  cluster.addCommand(
    new Command('inspect')
      .description(
        "Every worker's venv caches, locks, bundles and runner processes, each with a verdict; the cluster's health first. Read only.",
      )
      .option('--scheduler <address>', 'the Dask scheduler, tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS)')
      .option(
        '--venvs-dir <dir>',
        "the venvs directory on the workers (default: each worker's $MODELOPS_VENVS_DIR, else /tmp/modelops/venvs and ~/.cache/modelops-debugger/venvs)",
      )
      .option(
        '--bundles-dir <dir>',
        "the bundles cache on the workers, holding bundles/{digest12} (default: each worker's $MODELOPS_BUNDLES_CACHE_DIR, else /tmp/modelops/bundles)",
      )
      .option(
        '--timeout <seconds>',
        'how long each worker has to answer; one that has not is listed as not answering',
        timeoutSeconds,
        DEFAULT_TIMEOUT_S,
      )
      .option(
        '--connect-timeout <seconds>',
        'how long to try to reach the scheduler',
        timeoutSeconds,
        DEFAULT_CONNECT_TIMEOUT_S,
      )
      .option('--dask-python <path>', 'a Python that can import distributed (default: /usr/bin/python3, then python3)')
      .option('--json', 'print one JSON object with everything on stdout')
      .action(async (flags: InspectFlags) => {
        process.exitCode = await inspect(flags);
      }),
  );
  for (const action of clusterActionCommands()) cluster.addCommand(action);
  return cluster;
}

async function inspect(flags: InspectFlags): Promise<number> {
  try {
    const scheduler = flags.scheduler ?? process.env.DASK_SCHEDULER_ADDRESS;
    if (!scheduler)
      throw new Failure('bad-input', 'cluster inspect needs --scheduler tcp://HOST:PORT (or DASK_SCHEDULER_ADDRESS).');
    const report = await inspectCluster(checkSchedulerAddress(scheduler), {
      python: flags.daskPython,
      connectTimeoutMs: flags.connectTimeout * 1000,
      timeoutS: flags.timeout,
      venvsDir: flags.venvsDir,
      bundlesDir: flags.bundlesDir,
    });
    writeStdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
    return report.health.healthy ? ExitCode.ok : ExitCode.failedWork;
  } catch (error) {
    const failure = unexpectedFailure(error, 'inspecting the cluster');
    if (flags.json) writeStdout(`${JSON.stringify({ ok: false, ...failure.toJSON() }, null, 2)}\n`);
    else writeStderr(`modelops-debugger: ${failure.kind}: ${failure.message}\n`);
    return exitCodeFor(failure.kind);
  }
}

export function renderReport(report: ClusterReport): string {
  const { health } = report;
  const lines = [
    `Cluster Health: ${health.workers} worker(s), ${health.answered} answered (timeout ${report.timeout_s} s each, ${(report.ms / 1000).toFixed(2)} s in all)`,
  ];
  const counts = Object.entries(health.counts).map(([kind, n]) => `${kind} ${n}`);
  lines.push(`  verdicts: ${counts.join(' · ') || 'nothing found'}`);
  for (const address of health.silent) lines.push(`  ✘ ${address}: no answer within ${report.timeout_s} s`);
  for (const { address, error } of health.failed) lines.push(`  ✘ ${address}: inspection failed: ${error}`);
  for (const d of health.disagreements)
    for (const s of d.dissenters)
      lines.push(`  ≠ ${d.name}: most workers say ${d.majority}, ${s.address} says ${s.reason}`);
  lines.push(
    health.healthy ? '  healthy' : '  NOT healthy',
    '',
    `Scheduler ${report.scheduler} (Dask ${report.dask_version})`,
  );
  for (const worker of report.workers) lines.push('', ...renderWorker(worker, report.timeout_s));
  return `${lines.join('\n')}\n`;
}

function renderWorker(worker: WorkerReport, timeoutS: number): string[] {
  const facts = worker.facts;
  const memory = `memory ${worker.memory !== null ? formatSize(worker.memory) : '?'}${worker.memory_limit ? ` / ${formatSize(worker.memory_limit)}` : ''}`;
  const head = [
    `Worker ${worker.address}`,
    `host ${facts?.host ?? worker.host ?? '?'}`,
    ...(facts ? [`pid ${facts.pid}`, `Python ${facts.python}`] : []),
    memory,
    `threads ${worker.nthreads ?? '?'}`,
    `processing ${worker.processing}`,
    ...(facts?.uptime_s !== null && facts?.uptime_s !== undefined ? [`up ${formatAge(facts.uptime_s)}`] : []),
  ].join('  ');
  if (worker.no_answer) return [head, `  ✘ no answer within ${timeoutS} s`];
  if (worker.error !== undefined || !facts || !worker.judged)
    return [head, `  ✘ inspection failed: ${worker.error ?? '?'}`];
  const lines = [`${head}  (answered in ${worker.ms} ms)`];
  const judged = worker.judged;
  for (const dir of facts.venvs_dirs) {
    const venvs = judged.venvs.filter((v) => v.dir === dir.path);
    lines.push(
      `  venvs in ${dir.path} (${dir.source}): ${dir.exists ? `${venvs.length}` : 'no such directory'}${dir.error ? ` (${dir.error})` : ''}`,
    );
    for (const v of venvs) {
      lines.push(`    ${mark(v.verdict)} ${v.name}  ${v.verdict.reason}`);
      const extra = v.problems.slice(1).map((p) => p.reason);
      const details = [
        v.key
          ? `digest ${v.key.digest}, py${v.key.python}, deps ${v.key.deps}${v.key.fresh ? `, fresh -${v.key.fresh}` : ''}`
          : 'key not parsed',
        `interpreter ${v.interpreter.version ?? '?'} (pyvenv.cfg ${v.interpreter.pyvenv ?? 'none'}, bin/python → ${v.interpreter.binPython ?? 'none'})`,
        `${v.sizeBytes !== null ? formatSize(v.sizeBytes) : 'size not measured'}, modified ${formatTime(v.mtime)}`,
        `bundle ${v.bundle ?? 'not in the bundles dir'}, .deps_installed ${v.depsMarker}`,
        `lock ${v.lock ? describeLock(v.lock) : 'none'}`,
        ...(v.runners.length ? [`used by runner pid ${v.runners.join(', ')}`] : []),
        ...(extra.length ? [`also: ${extra.join('; ')}`] : []),
      ];
      for (const d of details) lines.push(`        ${d}`);
    }
    for (const stray of judged.strayLocks.filter((s) => s.dir === dir.path))
      lines.push(`    ${mark(stray.verdict)} ${stray.lock.path}  ${stray.verdict.reason}`);
  }
  const bundles = facts.bundles;
  lines.push(
    `  bundles in ${bundles.path} (${facts.bundles_dir_source}): ${bundles.exists ? bundles.entries.length : 'no such directory'}`,
  );
  for (const b of judged.bundles)
    lines.push(
      `    ${mark(b.verdict)} ${b.name}  ${b.complete ? '.complete' : b.verdict.reason}  pyproject ${b.pyproject ?? 'none'}  venvs: ${b.venvs.join(', ') || 'none'}`,
    );
  lines.push(`  runner processes (${facts.runner_scan}): ${judged.runners.length}`);
  for (const r of judged.runners) {
    lines.push(
      `    ${mark(r.verdict)} pid ${r.pid}  state ${r.state}${r.verdict.kind === 'ok' ? '' : ` (${r.verdict.reason})`}  up ${r.age_s !== null ? formatAge(r.age_s) : '?'}  RSS ${r.rss_bytes !== null ? formatSize(r.rss_bytes) : '?'}  venv ${r.venv ?? '?'}`,
      `        ${r.argv.join(' ') || `(no command line: ${r.comm ?? '?'})`}${r.argv_from ? ` (from ${r.argv_from})` : ''}`,
      `        stderr ${r.stderr_log ? `${r.stderr_log.path} (${r.stderr_log.source}${r.stderr_log.exists ? '' : ', absent'})` : 'unknown'}`,
    );
  }
  return lines;
}

function mark(verdict: Verdict): string {
  return verdict.kind === 'ok' ? '✔' : '✘';
}
