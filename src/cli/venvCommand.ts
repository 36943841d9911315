/** `modelops-debugger venv list|inspect|rm|prune`: the venv cache, explained and tidied. */
import { Command } from 'commander';
import { ExitCode, exitCodeFor, unexpectedFailure } from '../engine/failure';
import { VenvCache, type VenvEntry } from '../engine/venv/cache';
import { describeVenvEvent, formatSize } from '../engine/venv/describe';
import { venvCacheOptions } from './venvOptions';
import { nonNegative, positiveNumber, wholeNumber } from './parsers';

interface CommonFlags {
  venvsDir?: string;
  json?: boolean;
}

export function venvCommand(): Command {
  const venv = new Command('venv').description('List, inspect, remove and prune cached venvs.');
  const common = (command: Command) =>
    command
      .option(
        '--venvs-dir <dir>',
        'venv cache directory (default: $MODELOPS_VENVS_DIR, else ~/.cache/modelops-debugger/venvs)',
      )
      .option('--json', 'print JSON on stdout');

  venv.addCommand(
    common(
      new Command('list').description(
        'Every cached venv: key, bundle, python, size, created, last used, valid or why not.',
      ),
    ).action((flags: CommonFlags) =>
      run(flags, async (cache) => {
        const entries = await cache.list();
        // a read-only cache is listed, and said to be one: no venv can be built in it
        const readOnly = await cache.dirProblem('build');
        if (readOnly && !flags.json) process.stderr.write(`note: ${readOnly.message}\n`);
        return flags.json ? entries : renderList(entries, cache.dir);
      }),
    ),
  );
  venv.addCommand(
    common(new Command('inspect').description("One venv's validity checklist, line by line.").argument('<key>')).action(
      (key: string, flags: CommonFlags) =>
        run(flags, async (cache) => {
          const inspection = await cache.inspect(key);
          if (flags.json) return inspection;
          const lines = [`${inspection.valid ? '✔ valid' : `✘ broken: ${inspection.reason}`}  ${inspection.path}`];
          for (const check of inspection.checks) lines.push(`  ${check.ok ? '✔' : '✘'} ${check.name}: ${check.detail}`);
          lines.push(
            `  bundle: ${inspection.bundle ?? '?'}`,
            `  size: ${formatSize(inspection.sizeBytes)}`,
            `  created: ${inspection.createdAt ?? '?'}`,
            `  last used: ${inspection.lastUsedAt ?? 'never'}`,
          );
          if (inspection.marker)
            lines.push(
              `  installer: ${inspection.marker.installer.name} ${inspection.marker.installer.version}`,
              `  requirements: ${inspection.marker.requirements.join(', ') || 'none'}`,
            );
          lines.push(`  in use by: ${inspection.usedBy.length ? `pid ${inspection.usedBy.join(', ')}` : 'no process'}`);
          if (inspection.lock)
            lines.push(
              `  locked by: pid ${inspection.lock.pid} on ${inspection.lock.host} (${inspection.lock.purpose})`,
            );
          lines.push(`  install log: ${inspection.logFile}`);
          return `${lines.join('\n')}\n`;
        }),
    ),
  );
  venv.addCommand(
    common(
      new Command('rm')
        .description('Remove one venv (refused while a process uses it).')
        .argument('<key>')
        .option('--force', 'remove even while in use'),
    ).action((key: string, flags: CommonFlags & { force?: boolean }) =>
      run(flags, async (cache) => {
        await cache.remove(key, { force: flags.force });
        return flags.json ? { removed: key } : `removed ${key}\n`;
      }),
    ),
  );
  venv.addCommand(
    common(
      new Command('prune')
        .description('Remove broken and orphaned venvs, and those beyond the limits given.')
        .option('--older-than <days>', 'unused for more than this many days', nonNegative)
        .option('--keep <n>', 'keep at most this many (most recently used first)', wholeNumber)
        .option('--max-size <GB>', 'remove the least recently used until the cache fits', positiveNumber)
        .option('--dry-run', 'say what would go, remove nothing'),
    ).action((flags: CommonFlags & { olderThan?: number; keep?: number; maxSize?: number; dryRun?: boolean }) =>
      run(flags, async (cache) => {
        const result = await cache.prune({
          olderThanDays: flags.olderThan,
          keep: flags.keep,
          maxSizeGB: flags.maxSize,
          dryRun: flags.dryRun,
        });
        if (flags.json) return result;
        const verb = flags.dryRun ? 'would remove' : 'removed';
        const lines = result.removed.map((r) => `${verb} ${r.key} (${formatSize(r.sizeBytes)}): ${r.reason}`);
        lines.push(`${result.removed.length} ${verb}, ${result.kept} kept`);
        return `${lines.join('\n')}\n`;
      }),
    ),
  );
  return venv;
}

async function run(flags: CommonFlags, body: (cache: VenvCache) => Promise<unknown>): Promise<void> {
  const options = venvCacheOptions(
    flags,
    flags.json ? undefined : (event) => process.stderr.write(`${describeVenvEvent(event)}\n`),
  );
  try {
    const output = await body(new VenvCache(options));
    process.stdout.write(typeof output === 'string' ? output : `${JSON.stringify(output, null, 2)}\n`);
    process.exitCode = ExitCode.ok;
  } catch (error) {
    const failure = unexpectedFailure(error);
    if (flags.json)
      process.stdout.write(`${JSON.stringify({ ok: false, kind: failure.kind, message: failure.message }, null, 2)}\n`);
    else process.stderr.write(`modelops-debugger: ${failure.message}\n`);
    process.exitCode = exitCodeFor(failure.kind);
  }
}

function renderList(entries: VenvEntry[], dir: string): string {
  if (entries.length === 0) return `no venvs in ${dir}\n`;
  const rows = entries.map((e) => [
    e.key,
    e.python ?? '?',
    formatSize(e.sizeBytes),
    e.createdAt?.slice(0, 19).replace('T', ' ') ?? '?',
    e.lastUsedAt?.slice(0, 19).replace('T', ' ') ?? 'never',
    e.valid
      ? e.usedBy.length
        ? `valid, in use by ${e.usedBy.join(',')}`
        : 'valid'
      : `⚠ ${e.orphanedFresh ? 'orphaned private venv' : e.reason}`,
    e.bundle ?? '?',
  ]);
  const header = ['KEY', 'PYTHON', 'SIZE', 'CREATED', 'LAST USED', 'STATE', 'BUNDLE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return `${[line(header), ...rows.map(line)].join('\n')}\n${entries.length} venvs in ${dir}\n`;
}
