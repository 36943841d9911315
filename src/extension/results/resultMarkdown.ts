/**
 * A job's results as Markdown: an aggregation (per target its loss and diagnostics, the
 * summary statistics of every output, the replicates it used) and a replicate (seed, params,
 * outputs, attempts, pid, duration). Everything comes through the engine's reader, so a result
 * that is not there or not readable is said as such, never left blank. No `vscode` here: the
 * caller gives the links, and unit tests render it directly.
 */
import type { FailureKind, SourceLocation } from '../../engine/failure';
import { scalarJson, type Params } from '../../engine/job/ids';
import type { AggRecord, SimRecord } from '../../engine/job/records';
import {
  decodeOutput,
  readAggResult,
  readSimResult,
  readSimResults,
  type ReadResult,
} from '../../engine/job/resultsReader';
import type { Stats, Summary } from '../../engine/job/summary';
import { aggKey, simKey } from '../../engine/job/taskKeys';
import { PyFloat, stringifyWireJson } from '../../engine/pyjson/pyjson';
import type { JobSpec, ParameterSet } from '../../engine/job/spec';

/** Links from one results document to another, and to source lines. */
export interface ResultLinks {
  /** The document of a task of the same job, by its task key. */
  task(key: string): string;
  /** A source line. */
  source(location: SourceLocation): string;
}

/** A parameter set's replicates listed one per row up to this many; the rest counted. */
const MAX_REPLICATE_ROWS = 1000;

export async function aggregationMarkdown(
  dir: string,
  job: JobSpec,
  set: ParameterSet,
  links: ResultLinks,
): Promise<string> {
  const read = await readAggResult(dir, set);
  const lines = [
    `# Aggregation · ${paramsLabel(set.params)}`,
    '',
    `Job \`${job.jobId}\` · param_id \`${set.paramId}\``,
    '',
  ];
  lines.push(
    ...notFound(
      read,
      'aggregation',
      'the parameter set has not been aggregated yet: its replicates are still running or queued, or the run stopped before it',
    ),
  );
  const sims = await readSimResults(dir, set, MAX_REPLICATE_ROWS);
  if (read.state === 'found') {
    const agg = read.record;
    const used =
      agg.status === 'skipped'
        ? `${agg.n_replicates} of ${set.seeds.length} replicates succeeded, none aggregated`
        : `${agg.n_replicates} of ${set.seeds.length} replicates used`;
    lines.push(`**${agg.status}** · ${used} · ${agg.ms} ms`, '');
    if (agg.status !== 'ok' && agg.message) lines.push(`> ${agg.kind ?? 'failed'}: ${oneLine(agg.message)}`, '');
    lines.push(...targetsSection(job, agg, links), ...summarySection(agg.summary));
    lines.push(`Result file: \`${read.file}\``, '');
  }
  lines.push(...replicatesSection(set, sims, read.state === 'found' ? read.record : undefined, links));
  return lines.join('\n');
}

export async function replicateMarkdown(
  dir: string,
  job: JobSpec,
  set: ParameterSet,
  replicate: number,
  links: ResultLinks,
): Promise<string> {
  const read = await readSimResult(dir, set, replicate);
  const lines = [
    `# Replicate ${replicate} · ${paramsLabel(set.params)}`,
    '',
    `Job \`${job.jobId}\` · [aggregation](${links.task(aggKey(set.paramId))})`,
    '',
  ];
  const rows: [string, string][] = [
    ['seed', String(set.seeds[replicate])],
    ['task', `\`${simKey(set.paramId, replicate)}\``],
  ];
  if (read.state === 'found') {
    const sim = read.record;
    rows.push(
      ['status', `**${sim.status}**${sim.kind ? ` · ${sim.kind}` : ''}`],
      ['attempts', String(sim.attempts)],
      ['pid', sim.pid === undefined ? '—' : `${sim.pid}${sim.worker ? ` on ${sim.worker}` : ''}`],
      ['duration', `${sim.ms} ms`],
    );
  }
  lines.push('| | |', '|---|---|', ...rows.map(([name, value]) => `| ${name} | ${cell(value)} |`), '');
  lines.push('## Params', '', fence(paramsJson(set.params), 'json'), '');
  lines.push(
    ...notFound(read, 'replicate', 'it has not finished: it is queued or running, or the run stopped before it'),
  );
  if (read.state !== 'found') return lines.join('\n');
  const sim = read.record;
  if (sim.status === 'failed') lines.push(...failureSection(sim, links));
  lines.push(...outputsSection(sim), `Result file: \`${read.file}\``, '');
  return lines.join('\n');
}

/** What a reader found in place of a result, in a sentence; nothing when it found one. */
function notFound<T>(read: ReadResult<T>, what: string, missingWhy: string): string[] {
  if (read.state === 'missing')
    return [`**No ${what} result**: \`${read.file}\` ${read.why ?? 'does not exist'}; ${missingWhy}.`, ''];
  if (read.state === 'unreadable')
    return [`**The ${what} result is unreadable**: \`${read.file}\`: ${oneLine(read.why)}.`, ''];
  return [];
}

function targetsSection(job: JobSpec, agg: AggRecord, links: ResultLinks): string[] {
  const names = Object.keys(agg.targets);
  if (names.length === 0)
    return [
      '## Targets',
      '',
      job.targets.length
        ? '_No target was run (the aggregation did not get that far)._'
        : '_The job has no targets: the summary statistics below are its aggregation._',
      '',
    ];
  const lines = ['## Targets', '', '| target | status | loss | replicates |', '|---|---|---|---|'];
  for (const name of names) {
    const target = agg.targets[name];
    lines.push(
      target.status === 'ok'
        ? `| \`${cell(name)}\` | ok | ${exact(target.loss)} | ${target.n_replicates} |`
        : `| \`${cell(name)}\` | **failed** · ${target.kind} | — | — |`,
    );
  }
  lines.push('');
  for (const name of names) {
    const target = agg.targets[name];
    lines.push(`### ${name}`, '');
    if (target.status === 'ok')
      lines.push(
        `loss **${exact(target.loss)}** over ${target.n_replicates} replicates; diagnostics:`,
        '',
        fence(json(target.diagnostics), 'json'),
        '',
      );
    else
      lines.push(
        `${target.kind}: ${oneLine(target.message)}${target.location ? ` ([${locationText(target.location)}](${links.source(target.location)}))` : ''}`,
        '',
      );
  }
  return lines;
}

function summarySection(summary: unknown): string[] {
  const lines = ['## Summary statistics', ''];
  if (!isSummary(summary))
    return [
      ...lines,
      '_No summary statistics in the result (the aggregation was skipped, or written by a version that kept none)._',
      '',
    ];
  lines.push(
    `Over ${summary.n_replicates} replicates.`,
    '',
    '| output | key | count | mean | std | min | max |',
    '|---|---|---|---|---|---|---|',
  );
  let rows = 0;
  for (const [name, stats] of Object.entries(summary.outputs)) {
    if (isStats(stats)) {
      lines.push(statsRow(name, '', stats));
      rows++;
    } else {
      for (const [key, perKey] of Object.entries(stats)) {
        lines.push(statsRow(name, key, perKey));
        rows++;
      }
    }
  }
  if (rows === 0) lines.splice(-2, 2, '_No output could be summarised._');
  lines.push('');
  const skipped = Object.entries(summary.skipped);
  if (skipped.length) lines.push('Not summarised:', '', ...skipped.map(([name, why]) => `- \`${name}\`: ${why}`), '');
  return lines;
}

function replicatesSection(
  set: ParameterSet,
  sims: ReadResult<SimRecord>[],
  agg: AggRecord | undefined,
  links: ResultLinks,
): string[] {
  const used = sims.filter((read) => read.state === 'found' && read.record.status === 'ok').length;
  const lines = ['## Replicates', ''];
  if (agg) {
    // an aggregation uses the replicates that succeeded; say so when the files no longer agree (a rerun since)
    const all = sims.length === set.seeds.length;
    const note =
      agg.status === 'skipped'
        ? 'None used: the aggregation was skipped.'
        : !all
          ? `Used: the ${agg.n_replicates} that succeeded (the first ${sims.length} listed).`
          : used === agg.n_replicates
            ? `Used: the ${used} that succeeded.`
            : `The aggregation used ${agg.n_replicates}; ${used} succeeded as the files are now (rerun since it was written?).`;
    lines.push(note, '');
  }
  lines.push('| replicate | seed | status | ms | pid | attempts |', '|---|---|---|---|---|---|');
  sims.forEach((read, replicate) => {
    const link = `[${replicate}](${links.task(simKey(set.paramId, replicate))})`;
    const seed = String(set.seeds[replicate]);
    if (read.state === 'found') {
      const sim = read.record;
      const status =
        sim.status === 'ok' ? (agg?.status === 'skipped' ? 'ok' : 'ok ✓ used') : `**failed** · ${sim.kind ?? ''}`;
      lines.push(`| ${link} | ${seed} | ${status} | ${sim.ms} | ${sim.pid ?? '—'} | ${sim.attempts} |`);
    } else {
      lines.push(
        `| ${link} | ${seed} | ${read.state === 'missing' ? 'no result' : `unreadable: ${cell(oneLine(read.why))}`} | | | |`,
      );
    }
  });
  if (sims.length < set.seeds.length)
    lines.push('', `… and ${set.seeds.length - sims.length} more replicates (open one from the Jobs view).`);
  lines.push('');
  return lines;
}

function failureSection(sim: SimRecord, links: ResultLinks): string[] {
  const lines = ['## Failure', '', `${sim.kind as FailureKind}: ${oneLine(sim.message ?? '')}`, ''];
  if (sim.location) lines.push(`At [${locationText(sim.location)}](${links.source(sim.location)})`, '');
  const evidence = sim.evidence ?? {};
  const facts = (['exitCode', 'signal', 'phase'] as const)
    .filter((k) => evidence[k] !== undefined && evidence[k] !== null)
    .map((k) => `${k} ${String(evidence[k])}`);
  if (facts.length) lines.push(facts.join(' · '), '');
  if (typeof evidence.stderrTail === 'string' && evidence.stderrTail)
    lines.push('Last stderr:', '', fence(evidence.stderrTail, ''), '');
  return lines;
}

function outputsSection(sim: SimRecord): string[] {
  const outputs = Object.entries(sim.outputs ?? {});
  if (sim.status !== 'ok') return [];
  const lines = ['## Outputs', ''];
  if (outputs.length === 0) return [...lines, '_The wire function returned no outputs._', ''];
  for (const [name, output] of outputs) {
    const decoded = decodeOutput(output);
    const cut = decoded.truncated ? ', truncated' : '';
    if (decoded.as === 'binary')
      lines.push(
        `### ${name}`,
        '',
        `${bytes(decoded.size)}, binary; the first bytes in hex${cut}:`,
        '',
        fence(decoded.hex, ''),
        '',
      );
    else
      lines.push(
        `### ${name}`,
        '',
        `${bytes(decoded.size)}, ${decoded.as === 'json' ? 'JSON' : 'text'}${cut}:`,
        '',
        fence(decoded.text, decoded.as === 'json' ? 'json' : ''),
        '',
      );
  }
  return lines;
}

function statsRow(name: string, key: string, stats: Stats): string {
  return `| \`${cell(name)}\` | ${cell(key)} | ${stats.count} | ${num(stats.mean)} | ${num(stats.std)} | ${num(stats.min)} | ${num(stats.max)} |`;
}

export function paramsLabel(params: Params): string {
  return (
    Object.entries(params)
      .map(([k, v]) => `${k}=${scalarJson(v)}`)
      .join(', ') || '(no parameters)'
  );
}

function paramsJson(params: Params): string {
  return `{${Object.entries(params)
    .map(([k, v]) => `${JSON.stringify(k)}: ${scalarJson(v)}`)
    .join(', ')}}`;
}

/** As the result file has it: floats stay floats (result files are read with their Python number kinds). */
function json(value: unknown): string {
  return value === undefined ? 'null' : stringifyWireJson(value, 2);
}

function exact(value: unknown): string {
  return value === undefined ? '—' : stringifyWireJson(value);
}

/** A statistic, to six significant digits. */
function num(value: unknown): string {
  const n = value instanceof PyFloat ? value.value : Number(value);
  return Number.isFinite(n) ? String(Number(n.toPrecision(6))) : String(n);
}

function bytes(size: number): string {
  return size >= 1024 ** 2
    ? `${(size / 1024 ** 2).toFixed(1)} MB (${size} bytes)`
    : size >= 1024
      ? `${(size / 1024).toFixed(1)} KB (${size} bytes)`
      : `${size} bytes`;
}

function locationText(location: SourceLocation): string {
  return `${location.file.split('/').slice(-2).join('/')}:${location.line}`;
}

/** A fenced block that its own text cannot close. */
function fence(text: string, language: string): string {
  const ticks = '`'.repeat(Math.max(3, ...[...text.matchAll(/`+/g)].map((m) => m[0].length + 1)));
  return `${ticks}${language}\n${text}\n${ticks}`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

function isSummary(value: unknown): value is Summary {
  const v = value as Summary | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.outputs === 'object' &&
    v.outputs !== null &&
    typeof v.skipped === 'object' &&
    v.skipped !== null &&
    typeof v.n_replicates === 'number'
  );
}

function isStats(value: unknown): value is Stats {
  const mean = (value as Stats).mean as unknown;
  return typeof (value as Stats).count === 'number' && (typeof mean === 'number' || mean instanceof PyFloat);
}
