/**
 * A run report as one HTML file with everything inlined (styles, data, the timeline's script):
 * it opens offline, from an e-mail, years later. No request leaves the page.
 */
import type { LogFacts, RunReport, Spread } from './runReport';
import { TIMELINE_SCRIPT, TIMELINE_STYLE } from '../trace/timelineScript';

/** Where the timeline is drawn (timelineScript.ts fills it). */
const TIMELINE_ROOT = '<div id="timeline-root"></div>';

export function reportHtml(report: RunReport): string {
  return page(report, report.logs ? logSections(report, report.logs) : folderSections(report));
}

function folderSections(report: RunReport): string[] {
  const { counts, time } = report;
  const share = (ms: number | undefined) =>
    ms === undefined || !time.run_ms ? '' : ` (${((ms / (time.run_ms * Math.max(1, time.slots))) * 100).toFixed(0)} %)`;
  return [
    `<h1>Run report: ${esc(report.job_id)}</h1>`,
    `<p class="outcome ${report.status === 'succeeded' ? 'ok' : 'bad'}">${esc(report.status)} · ${counts.ok} of ${counts.total} replicates ok, ${counts.failed} failed${counts.missing ? `, ${counts.missing} without a result` : ''} · ${counts.sets} parameter sets</p>`,
    `<p class="where">${esc(report.dir)}</p>`,
    '<h2>Where the time went</h2>',
    table(
      ['', 'time'],
      [
        ['the run (wall)', ms(time.run_ms)],
        [`runner slots`, String(time.slots)],
        ['tasks in their runners (compute)', `${ms(time.compute_ms)}${share(time.compute_ms)}`],
        ['around them (framing, transfer, engine)', `${ms(time.overhead_ms)}${share(time.overhead_ms)}`],
        ['slots idle', `${ms(time.idle_ms)}${share(time.idle_ms)}`],
      ],
      [0],
    ),
    '<h2>Timeline</h2>',
    '<p class="hint">A lane per runner slot (with its busy share); green ok, red failed, grey other; marks: crashes and timeouts (red), retries (grey). Wheel to zoom, drag to pan; hover for the task.</p>',
    TIMELINE_ROOT,
    '<h2>Parameter sets</h2>',
    table(
      ['params', 'param_id', 'ok', 'failed', 'aggregation', 'losses', 'p50', 'p95', 'peak RSS'],
      report.sets.map((set) => [
        Object.entries(set.params)
          .map(([key, value]) => `${key}=${value}`)
          .join(', '),
        set.param_id.slice(0, 12),
        String(set.ok),
        set.failed ? { html: `<b class="bad">${set.failed}</b>` } : '0',
        set.aggregation,
        {
          html: Object.entries(set.losses)
            .map(([target, loss]) => esc(`${target}: ${typeof loss === 'number' ? loss.toPrecision(6) : loss}`))
            .join('<br>'),
        },
        ms(set.p50_ms),
        ms(set.p95_ms),
        set.peak_rss_kb === undefined ? '–' : `${(set.peak_rss_kb / 1024).toFixed(1)} MB`,
      ]),
      [0, 1, 4, 5],
    ),
    '<h2>Failures, grouped</h2>',
    report.failures.length
      ? report.failures
          .map(
            (group) =>
              `<div class="group"><h3>${group.count} × ${esc(group.signature)}</h3><p>${esc(group.example)}</p>${group.shared.length ? `<p class="shared">${group.shared.map(esc).join('<br>')}</p>` : ''}<p class="hint">replicates: ${group.replicates
                .slice(0, 12)
                .map((r) => `${r.param_id.slice(0, 8)}/${r.replicate}`)
                .join(
                  ', ',
                )}${group.replicates.length > 12 ? ` … and ${group.replicates.length - 12} more` : ''}</p></div>`,
          )
          .join('')
      : '<p>None.</p>',
    `<h2>The ${report.slowest.length} slowest replicates</h2>`,
    table(
      ['params', 'replicate', 'ms', 'state'],
      report.slowest.map((task) => [task.params, String(task.replicate), String(task.ms), task.state]),
      [0, 3],
    ),
    '<h2>Durations</h2>',
    histogramSvg(report.histogram),
    '<h2>Environment</h2>',
    table(
      ['', ''],
      report.environment.map(({ field, value }) => [field, value]),
      [0, 1],
    ),
    `<p class="hint">modelops-debugger report, made from the results folder alone.</p>`,
  ];
}

/** The page around the sections; the timeline's data and script when a section draws it. */
function page(report: RunReport, sections: string[]): string {
  const timeline = sections.includes(TIMELINE_ROOT);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Run report: ${esc(report.job_id)}</title>
<style>${STYLE}${TIMELINE_STYLE}</style></head>
<body>${sections.join('\n')}
${
  timeline
    ? `<script type="application/json" id="timeline-data">${JSON.stringify(report.timeline).replace(/</g, '\\u003c')}</script>
<script>${TIMELINE_SCRIPT}</script>
`
    : ''
}</body></html>
`;
}

/**
 * The report from production's worker logs: what SIM_TIMING and AGG_TIMING lines say, and for the
 * sections they cannot fill, why not.
 */
function logSections(report: RunReport, logs: LogFacts): string[] {
  const { time } = logs;
  const workers = logs.workers.length;
  const workerTime = time.span_ms === undefined ? undefined : time.span_ms * workers;
  const share = (value: number) =>
    workerTime ? ` (${((value / workerTime) * 100).toFixed(0)} % of the workers' time)` : '';
  const spread = (label: string, values: Spread, unit: (value: number | undefined) => string) => [
    label,
    String(values.n),
    unit(values.p50),
    unit(values.p95),
    unit(values.max),
  ];
  const mb = (value: number | undefined) => (value === undefined ? '–' : `${value.toFixed(2)} MB`);
  const split = logs.split;
  const timestamps = logs.timestamps;
  const tasks = timestamps.with + timestamps.without;
  return [
    `<h1>Run report: ${esc(report.job_id)}</h1>`,
    `<p class="outcome">${logs.sims.n} simulations and ${logs.aggs.n} aggregations in ${report.sets.length} parameter sets on ${workers} worker${workers === 1 ? '' : 's'}${time.span_ms === undefined ? '' : ` · ${ms(time.span_ms)} from ${esc(time.from!)} to ${esc(time.to!)}`}</p>`,
    `<p class="where">${logs.files.map((file) => esc(`${file.file}: ${file.lines} lines, ${file.sims} SIM_TIMING, ${file.aggs} AGG_TIMING${file.unparsed ? `, ${file.unparsed} unparsed` : ''}${file.gzip ? ' (gzip)' : ''}`)).join('<br>')}</p>`,
    logs.unparsed.count
      ? `<div class="group"><h3>${logs.unparsed.count} line${logs.unparsed.count === 1 ? '' : 's'} with a marker that did not parse (not counted)</h3>${table(
          ['where', 'why', 'line'],
          logs.unparsed.first.map((u) => [`${u.file}:${u.line}`, u.why, u.text]),
          [0, 1, 2],
        )}${logs.unparsed.count > logs.unparsed.first.length ? `<p class="hint">… and ${logs.unparsed.count - logs.unparsed.first.length} more</p>` : ''}</div>`
      : '',
    '<h2>Where the time went</h2>',
    table(
      ['', 'time'],
      [
        ['simulations (sum of SIM_TIMING duration_ms)', `${ms(time.sim_ms)}${share(time.sim_ms)}`],
        ['aggregations (sum of AGG_TIMING duration_ms)', `${ms(time.agg_ms)}${share(time.agg_ms)}`],
        ['the span (first start to last end)', ms(time.span_ms)],
        ['workers', String(workers)],
        ['worker time (span × workers)', ms(workerTime)],
        [
          'outside the logged tasks (idle, transfer, scheduling)',
          workerTime === undefined
            ? '–'
            : `${ms(Math.max(0, round1(workerTime - time.sim_ms - time.agg_ms)))}${share(Math.max(0, workerTime - time.sim_ms - time.agg_ms))}`,
        ],
      ],
      [0],
    ),
    time.span_ms === undefined
      ? '<p class="hint">No line starts with a timestamp, so the span and the workers\' time are not known.</p>'
      : `<p class="hint">A worker with several threads runs tasks side by side: its share can pass 100 %.${timestamps.without ? ` ${timestamps.without} of ${tasks} tasks have no timestamp and are left out of the span.` : ''}</p>`,
    '<h2>Task runtimes and payloads</h2>',
    table(
      ['', 'n', 'p50', 'p95', 'max'],
      [
        spread('simulation (duration_ms)', logs.sims, ms),
        spread('aggregation (duration_ms)', logs.aggs, ms),
        spread('payload per aggregation (total_inline_mb)', logs.payload_mb, mb),
      ],
      [0],
    ),
    `<p>Largest single output: ${logs.max_single_kb ? esc(`${logs.max_single_kb.kb} KB, ${logs.max_single_kb.at}`) : '– (no aggregation)'}.</p>`,
    `<p>Split aggregations: ${
      split.sets
        ? `<b>${((split.split / split.sets) * 100).toFixed(1)} %</b> (${split.split} of ${split.sets} parameter sets with two targets or more had their targets aggregated on different workers, each of which fetched the set's simulation results)`
        : 'no parameter set has aggregations for two targets or more'
    }.</p>`,
    '<h2>Timeline</h2>',
    ...(timestamps.with
      ? [
          `<p class="hint">A lane per Dask worker; green simulations, grey aggregations (the logs do not say which failed). 0 s is ${esc(time.from!)}; each task ends at its line's timestamp (read as UTC when it has no zone). Wheel to zoom, drag to pan; hover for the task.${timestamps.without ? ` ${timestamps.without} tasks without a timestamp are not drawn.` : ''}</p>`,
          TIMELINE_ROOT,
        ]
      : [
          "<p>The timeline could not be drawn: the lines have no timestamps (a line that starts with <code>2026-01-24 10:11:12,345</code>, Python logging's default, or ISO 8601 with <code>T</code>/<code>Z</code>, as <code>kubectl logs --timestamps</code> writes, gives its task's end).</p>",
        ]),
    '<h2>Workers</h2>',
    table(
      ['worker', 'simulations', 'aggregations', 'busy (sum of durations)', 'span'],
      logs.workers.map((w) => [w.worker, String(w.sims), String(w.aggs), ms(w.busy_ms), ms(w.span_ms)]),
      [0],
    ),
    `<h2>The ${report.slowest.length} slowest tasks</h2>`,
    table(
      ['task', 'seed or target', 'ms', 'worker', 'line'],
      report.slowest.map((task) => [task.key, task.state, String(task.ms), task.worker ?? '', task.at ?? '']),
      [0, 1, 3, 4],
    ),
    '<h2>Durations</h2>',
    histogramSvg(report.histogram),
    '<h2>Parameter sets</h2>',
    table(
      ['param_id', 'simulations', 'p50', 'p95', 'aggregations (target: time, payload, worker)'],
      report.sets.map((set) => [
        set.param_id,
        String(set.ok),
        ms(set.p50_ms),
        ms(set.p95_ms),
        {
          html: (set.aggs ?? [])
            .map((agg) => esc(`${agg.target}: ${ms(agg.ms)}, ${agg.mb.toFixed(2)} MB, ${agg.worker}`))
            .join('<br>'),
        },
      ]),
      [0, 4],
    ),
    '<p class="hint">param_id as production logs it: its first 8 hex digits. The parameters themselves are not in the lines.</p>',
    '<h2>Failures, grouped</h2>',
    "<p>Not in the logs: production logs SIM_TIMING for a failed simulation too (its error is a result, not a Dask error), and neither line says whether its task failed. The workers' error lines, or the job's results, tell.</p>",
    '<h2>Environment</h2>',
    '<p>Not in the logs: the timing lines carry no bundle, Python or venv facts. The files read are listed at the top.</p>',
    `<p class="hint">modelops-debugger report --from-logs, made from production's SIM_TIMING and AGG_TIMING worker log lines alone.</p>`,
  ];
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/** A cell's text (escaped here), or HTML made of escaped parts. */
type Cell = string | { html: string };

/** A table; columns but the `textColumns` are numbers, set right. */
function table(head: string[], rows: Cell[][], textColumns: number[] = []): string {
  const cell = (value: Cell, i: number) =>
    `<td${textColumns.includes(i) ? '' : ' class="num"'}>${typeof value === 'string' ? esc(value) : value.html}</td>`;
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((row) => `<tr>${row.map(cell).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function histogramSvg(buckets: RunReport['histogram']): string {
  if (!buckets.length) return '<p>No replicate has a result.</p>';
  const max = Math.max(...buckets.map((b) => b.count));
  const width = 40;
  const bars = buckets
    .map((b, i) => {
      const h = max ? Math.round((b.count / max) * 110) : 0; // room above the highest bar for its count
      return `<g><rect x="${i * width + 4}" y="${130 - h}" width="${width - 8}" height="${h}"><title>${b.count} replicates from ${b.from_ms} ms</title></rect><text x="${i * width + width / 2}" y="146">${b.from_ms}</text><text x="${i * width + width / 2}" y="${125 - h}">${b.count || ''}</text></g>`;
    })
    .join('');
  return `<svg class="histogram" width="${buckets.length * width + 8}" height="160" role="img" aria-label="replicates by duration (ms)">${bars}</svg><p class="hint">replicates by duration, ms (each bar from its value to the next)</p>`;
}

function ms(value: number | undefined): string {
  if (value === undefined) return '–';
  return value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${value} ms`;
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1f2328; --bg: #fff; --muted: #59636e; --line: #d1d9e0; --ok: #1a7f37; --bad: #cf222e; --other: #8c959f; --run: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1; --line: #3d444d; --ok: #3fb950; --bad: #f85149; --other: #6e7681; --run: #4493f8; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 24px auto; max-width: 1200px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 14px; margin: 0 0 4px; }
.outcome { font-size: 16px; margin: 0; } .ok { color: var(--ok); } .bad { color: var(--bad); }
.where, .hint { color: var(--muted); font-size: 12px; margin: 4px 0; }
table { border-collapse: collapse; font-size: 13px; } th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.group { border-left: 3px solid var(--bad); padding: 4px 10px; margin: 8px 0; } .shared { font-weight: 600; }
svg.histogram rect { fill: var(--other); } svg.histogram text { fill: var(--muted); font-size: 10px; text-anchor: middle; }
`;
