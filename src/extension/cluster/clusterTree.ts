/**
 * The Cluster view: the last inspection of the scheduler (clusterSession.ts) as a tree. Cluster
 * Health first (the verdicts counted over every worker, the workers that disagree or did not
 * answer), then the scheduler → its workers → each worker's venv caches, bundles and runner
 * processes, every verdict with its reason and all the facts in the tooltip. The rows carry
 * capability tokens in `contextValue` (`worker;orphans;`, `venv;removable;`, `lock;stale;`,
 * `orphan;`, `handshake;`, `stderr;`) for the commands that act on them (clusterActions.ts).
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { describeLock, formatAge, formatTime } from '../../engine/cluster/describe';
import type { LockFacts, VenvsDirFacts } from '../../engine/cluster/facts';
import type { WorkerReport } from '../../engine/cluster/health';
import type {
  BundleView,
  RunnerView,
  StrayLockView,
  Verdict,
  VerdictKind,
  VenvView,
} from '../../engine/cluster/verdict';
import { formatSize } from '../../engine/venv/describe';
import type { ClusterSession, ShownReport } from './clusterSession';

type Parent = ClusterNode | undefined;

/** A line of facts under a row. */
export class DetailItem extends vscode.TreeItem {
  readonly kind = 'detail';
  constructor(
    readonly parent: Parent,
    id: string,
    label: string,
    description: string,
    icon?: vscode.ThemeIcon,
  ) {
    super(label, vscode.TreeItemCollapsibleState.None);
    this.id = id;
    this.description = description;
    this.tooltip = `${label}: ${description}`;
    this.iconPath = icon;
  }
}

export class HealthItem extends vscode.TreeItem {
  readonly kind = 'health';
  readonly parent = undefined;
  constructor(readonly report: ShownReport) {
    super('Cluster Health', vscode.TreeItemCollapsibleState.Expanded);
    const { health } = report;
    this.id = `cluster:${report.scheduler}:health`;
    this.description = report.soFar
      ? `${health.answered} worker(s) answered so far…`
      : `${health.healthy ? 'healthy' : 'NOT healthy'} · ${health.answered} of ${health.workers} worker(s) answered`;
    this.iconPath = health.healthy
      ? new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed'))
      : new vscode.ThemeIcon('error', new vscode.ThemeColor('testing.iconFailed'));
    this.contextValue = `health;${health.healthy ? 'healthy;' : ''}`;
  }

  children(): ClusterNode[] {
    const { health, scheduler, timeout_s } = this.report;
    const id = (what: string) => `cluster:${scheduler}:health:${what}`;
    return [
      ...Object.entries(health.counts).map(
        ([kind, n]) => new DetailItem(this, id(`count:${kind}`), kind, String(n), verdictIcon(kind as VerdictKind)),
      ),
      ...health.disagreements.flatMap((d) =>
        d.dissenters.map(
          (s) =>
            new DetailItem(
              this,
              id(`disagree:${d.name}:${s.address}`),
              `≠ ${d.name}`,
              `most workers say ${d.majority}, ${s.address} says ${s.reason}`,
              verdictIcon(s.verdict),
            ),
        ),
      ),
      ...health.silent.map(
        (address) =>
          new DetailItem(this, id(`silent:${address}`), address, `no answer within ${timeout_s} s`, SILENT_ICON),
      ),
      ...health.failed.map(
        ({ address, error }) =>
          new DetailItem(this, id(`failed:${address}`), address, `inspection failed: ${error}`, FAILED_ICON),
      ),
    ];
  }
}

export class SchedulerItem extends vscode.TreeItem {
  readonly kind = 'scheduler';
  readonly parent = undefined;
  constructor(readonly report: ShownReport) {
    super(`Scheduler ${report.scheduler}`, vscode.TreeItemCollapsibleState.Expanded);
    this.id = `cluster:${report.scheduler}`;
    this.description = report.soFar
      ? `inspecting: ${report.workers.length} worker(s) so far`
      : `Dask ${report.dask_version} · ${report.workers.length} worker(s) · asked in ${(report.ms / 1000).toFixed(2)} s`;
    this.tooltip = `driver Python ${report.driver_python}; each worker had ${report.timeout_s} s to answer`;
    this.iconPath = new vscode.ThemeIcon('server-environment');
    this.contextValue = 'scheduler;';
  }

  children(): ClusterNode[] {
    return this.report.workers.map((w) => new WorkerItem(this, w, this.report.timeout_s));
  }
}

export class WorkerItem extends vscode.TreeItem {
  readonly kind = 'worker';
  constructor(
    readonly parent: SchedulerItem,
    readonly worker: WorkerReport,
    timeoutS: number,
  ) {
    super(worker.address, vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `${parent.id}:worker:${worker.address}`;
    const facts = worker.facts;
    const memory = `memory ${worker.memory !== null ? formatSize(worker.memory) : '?'}${worker.memory_limit ? ` / ${formatSize(worker.memory_limit)}` : ''}`;
    const said = [
      `host ${facts?.host ?? worker.host ?? '?'}`,
      ...(facts ? [`pid ${facts.pid}`, `Python ${facts.python}`] : []),
      memory,
      `${worker.nthreads ?? '?'} thread(s)`,
      `${worker.processing} processing`,
      ...(facts?.uptime_s !== null && facts?.uptime_s !== undefined ? [`up ${formatAge(facts.uptime_s)}`] : []),
    ];
    if (worker.no_answer) {
      this.description = `no answer within ${timeoutS} s · ${said.join(' · ')}`;
      this.iconPath = SILENT_ICON;
      this.collapsibleState = vscode.TreeItemCollapsibleState.None;
      this.contextValue = 'worker;silent;';
    } else if (!facts || !worker.judged) {
      this.description = `inspection failed: ${worker.error ?? '?'}`;
      this.iconPath = FAILED_ICON;
      this.collapsibleState = vscode.TreeItemCollapsibleState.None;
      this.contextValue = 'worker;failed;';
    } else {
      this.description = said.join(' · ');
      const judged = worker.judged;
      const wrong = [...judged.venvs, ...judged.strayLocks, ...judged.bundles, ...judged.runners].filter(
        (x) => x.verdict.kind !== 'ok',
      ).length;
      this.iconPath = new vscode.ThemeIcon(
        'vm',
        new vscode.ThemeColor(wrong ? 'list.warningForeground' : 'testing.iconPassed'),
      );
      const orphans = judged.venvs.some(isOrphan);
      this.contextValue = `worker;answered;${orphans ? 'orphans;' : ''}`;
    }
    this.tooltip = [
      `${worker.address} (${worker.name})`,
      ...said,
      ...(facts ? [`executable ${facts.executable} (${facts.platform})`, `answered in ${worker.ms} ms`] : []),
      ...(worker.error ? [`error: ${worker.error}`] : []),
    ].join('\n');
  }

  children(): ClusterNode[] {
    const facts = this.worker.facts;
    const judged = this.worker.judged;
    if (!facts || !judged) return [];
    return [
      ...facts.venvs_dirs.map((dir) => new VenvsGroupItem(this, dir)),
      new BundlesGroupItem(this),
      new RunnersGroupItem(this),
    ];
  }
}

export class VenvsGroupItem extends vscode.TreeItem {
  readonly kind = 'venvs';
  constructor(
    readonly parent: WorkerItem,
    readonly dir: VenvsDirFacts,
  ) {
    super('Venv caches', vscode.TreeItemCollapsibleState.Expanded);
    this.id = `${parent.id}:venvs:${dir.path}`;
    const count = parent.worker.judged!.venvs.filter((v) => v.dir === dir.path).length;
    this.description = `${dir.path} (${dir.source}) · ${dir.exists ? count : 'no such directory'}${dir.error ? ` · ${dir.error}` : ''}`;
    this.iconPath = new vscode.ThemeIcon('package');
    const orphans = parent.worker.judged!.venvs.some((v) => v.dir === dir.path && isOrphan(v));
    this.contextValue = `venvs;${orphans ? 'orphans;' : ''}`;
    if (!dir.exists) this.collapsibleState = vscode.TreeItemCollapsibleState.None;
  }

  children(): ClusterNode[] {
    const judged = this.parent.worker.judged!;
    return [
      ...judged.venvs.filter((v) => v.dir === this.dir.path).map((v) => new VenvItem(this, v)),
      ...judged.strayLocks.filter((s) => s.dir === this.dir.path).map((s) => strayLockItem(this, s)),
    ];
  }
}

export class VenvItem extends vscode.TreeItem {
  readonly kind = 'venv';
  constructor(
    readonly parent: VenvsGroupItem,
    readonly venv: VenvView,
  ) {
    super(venv.name, vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `${parent.parent.id}:venv:${venv.path}`;
    this.description = venv.verdict.reason;
    this.iconPath = verdictIcon(venv.verdict.kind);
    this.tooltip = venvTooltip(venv, parent.parent.worker.address);
    const usable = venv.interpreter.binPython !== null && venv.bundle !== null;
    this.contextValue = [
      'venv',
      venv.runners.length ? 'inUse' : 'removable',
      venv.verdict.kind === 'ok' ? 'ok' : 'problem',
      ...(isOrphan(venv) ? ['orphan'] : []),
      ...(usable ? ['handshake'] : []),
    ]
      .map((t) => `${t};`)
      .join('');
  }

  get worker(): string {
    return this.parent.parent.worker.address;
  }

  children(): ClusterNode[] {
    const v = this.venv;
    const id = (what: string) => `${this.id}:${what}`;
    const rows: ClusterNode[] = [
      new DetailItem(
        this,
        id('key'),
        'key',
        v.key
          ? `digest ${v.key.digest} · Python ${v.key.python} · deps ${v.key.deps}${v.key.fresh ? ` · fresh -${v.key.fresh}` : ''}`
          : 'not a venv key {digest12}-py{X.Y}-{deps8}[-{uuid8}]',
      ),
      new DetailItem(
        this,
        id('size'),
        'size',
        `${v.sizeBytes !== null ? formatSize(v.sizeBytes) : 'not measured (time budget)'} · modified ${formatTime(v.mtime)}`,
      ),
      new DetailItem(
        this,
        id('interpreter'),
        'interpreter',
        `${v.interpreter.version ?? '?'} (pyvenv.cfg ${v.interpreter.pyvenv ?? 'none'}, bin/python → ${v.interpreter.binPython ?? 'none'})`,
      ),
      new DetailItem(this, id('deps'), 'deps marker', `.deps_installed ${v.depsMarker}`),
    ];
    if (v.lock) rows.push(new LockItem(this, v.lock, lockVerdict(v)));
    if (v.installLock) rows.push(new LockItem(this, v.installLock, undefined));
    if (v.runners.length)
      rows.push(new DetailItem(this, id('runners'), 'used by', `runner pid ${v.runners.join(', ')}`));
    for (const log of v.logs) rows.push(new LogItem(this, this.worker, log.path, log.bytes));
    for (const p of v.problems.slice(1))
      rows.push(new DetailItem(this, id(`also:${p.kind}`), 'also', p.reason, verdictIcon(p.kind)));
    return rows;
  }
}

/** A fresh venv no runner uses: what "Remove Orphan Fresh Venvs" removes. */
function isOrphan(venv: VenvView): boolean {
  return venv.problems.some((p) => p.kind === 'orphan-fresh-venv');
}

/** A venv's lock, or a `{key}.lock` with no venv beside it (its verdict then its own). */
export class LockItem extends vscode.TreeItem {
  readonly kind = 'lock';
  constructor(
    readonly parent: VenvItem | VenvsGroupItem,
    readonly lock: LockFacts,
    verdict: Verdict | undefined,
  ) {
    super(parent instanceof VenvItem ? 'lock' : path.basename(lock.path), vscode.TreeItemCollapsibleState.None);
    this.id = `${parent.id}:lock:${lock.path}`;
    const stale = verdict !== undefined && (verdict.kind === 'locked-by-dead-pid' || verdict.kind === 'stale-lock');
    this.description =
      parent instanceof VenvItem
        ? `${path.basename(lock.path)}: ${describeLock(lock)}`
        : (verdict?.reason ?? describeLock(lock));
    this.iconPath = verdict && verdict.kind !== 'ok' ? verdictIcon(verdict.kind) : new vscode.ThemeIcon('lock');
    this.tooltip = [
      lock.path,
      describeLock(lock),
      ...(lock.probe ? [lock.probe] : []),
      ...(verdict ? [verdict.reason] : []),
    ].join('\n');
    this.contextValue = `lock;${stale ? 'stale;' : ''}${lock.held ? 'held;' : ''}`;
  }
}

function strayLockItem(parent: VenvsGroupItem, stray: StrayLockView): LockItem {
  return new LockItem(parent, stray.lock, stray.verdict);
}

/** The lock's part of a venv's verdict (its own problem, if any). */
function lockVerdict(venv: VenvView): Verdict | undefined {
  return venv.problems.find((p) => p.kind === 'locked-by-dead-pid' || p.kind === 'stale-lock');
}

export class BundlesGroupItem extends vscode.TreeItem {
  readonly kind = 'bundles';
  constructor(readonly parent: WorkerItem) {
    super('Bundles', vscode.TreeItemCollapsibleState.Expanded);
    const facts = parent.worker.facts!;
    this.id = `${parent.id}:bundles`;
    this.description = `${facts.bundles.path} (${facts.bundles_dir_source}) · ${facts.bundles.exists ? facts.bundles.entries.length : 'no such directory'}`;
    this.iconPath = new vscode.ThemeIcon('archive');
    this.contextValue = 'bundles;';
    if (!facts.bundles.exists) this.collapsibleState = vscode.TreeItemCollapsibleState.None;
  }

  children(): ClusterNode[] {
    return this.parent.worker.judged!.bundles.map((b) => new BundleItem(this, b));
  }
}

export class BundleItem extends vscode.TreeItem {
  readonly kind = 'bundle';
  constructor(
    readonly parent: BundlesGroupItem,
    readonly bundle: BundleView,
  ) {
    super(bundle.name, vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `${parent.parent.id}:bundle:${bundle.path}`;
    const venvs = `${bundle.venvs.length} venv(s)`;
    this.description = bundle.complete ? `.complete · ${venvs}` : `${bundle.verdict.reason} · ${venvs}`;
    this.iconPath = verdictIcon(bundle.verdict.kind);
    this.tooltip = [
      bundle.path,
      bundle.complete ? '.complete marker present' : bundle.verdict.reason,
      `dependency files: ${bundle.deps_files.join(', ') || 'none'}`,
      `deps fingerprint (what .deps_installed must hold): ${bundle.deps_fingerprint}`,
      `key's deps part now: ${bundle.deps_hash8}`,
      `modified ${formatTime(bundle.mtime)}`,
      bundle.pyproject ? 'click: open its pyproject.toml (read only)' : 'no pyproject.toml',
    ].join('\n');
    this.contextValue = `bundle;${bundle.pyproject ? 'pyproject;' : ''}${bundle.complete ? 'complete;' : 'incomplete;'}`;
    if (bundle.pyproject)
      this.command = {
        command: 'modelopsDebugger.openClusterPyproject',
        title: 'Open pyproject.toml',
        arguments: [this],
      };
  }

  get worker(): string {
    return this.parent.parent.worker.address;
  }

  children(): ClusterNode[] {
    if (this.bundle.venvs.length === 0) return [new DetailItem(this, `${this.id}:none`, 'venvs', 'none')];
    return this.bundle.venvs.map((name) => new DetailItem(this, `${this.id}:venv:${name}`, 'venv', name));
  }
}

export class RunnersGroupItem extends vscode.TreeItem {
  readonly kind = 'runners';
  constructor(readonly parent: WorkerItem) {
    super('Runner processes', vscode.TreeItemCollapsibleState.Expanded);
    const facts = parent.worker.facts!;
    this.id = `${parent.id}:runners`;
    this.description = `${parent.worker.judged!.runners.length} (${facts.runner_scan})`;
    this.iconPath = new vscode.ThemeIcon('server-process');
    this.contextValue = 'runners;';
    if (parent.worker.judged!.runners.length === 0) this.collapsibleState = vscode.TreeItemCollapsibleState.None;
  }

  children(): ClusterNode[] {
    return this.parent.worker.judged!.runners.map((r) => new RunnerItem(this, r));
  }
}

export class RunnerItem extends vscode.TreeItem {
  readonly kind = 'runner';
  constructor(
    readonly parent: RunnersGroupItem,
    readonly runner: RunnerView,
  ) {
    super(`pid ${runner.pid}`, vscode.TreeItemCollapsibleState.None);
    this.id = `${parent.parent.id}:runner:${runner.pid}`;
    const state = runner.verdict.kind === 'ok' ? `state ${runner.state}` : runner.verdict.reason;
    this.description = [
      state,
      `up ${runner.age_s !== null ? formatAge(runner.age_s) : '?'}`,
      `RSS ${runner.rss_bytes !== null ? formatSize(runner.rss_bytes) : '?'}`,
      runner.venv ? path.basename(runner.venv) : 'venv ?',
    ].join(' · ');
    this.iconPath =
      runner.verdict.kind === 'ok' ? new vscode.ThemeIcon('vm-running') : verdictIcon(runner.verdict.kind);
    this.tooltip = [
      runner.argv.join(' ') || `(no command line: ${runner.comm ?? '?'})`,
      `parent pid ${runner.ppid ?? '?'}, venv ${runner.venv ?? '?'}, bundle ${runner.bundle_digest ?? '?'}`,
      `stderr ${runner.stderr_log ? `${runner.stderr_log.path}${runner.stderr_log.exists ? '' : ' (absent)'}` : 'unknown'}`,
    ].join('\n');
    const kind = runner.verdict.kind;
    this.contextValue = `runner;${runner.stderr_log?.exists ? 'stderr;' : ''}${kind === 'zombie-runner' ? 'zombie;' : ''}${kind === 'stopped-runner' ? 'stopped;' : ''}`;
  }

  get worker(): string {
    return this.parent.parent.worker.address;
  }
}

/** One of a venv's logs (`logs/runner-{digest12}-{pid}.stderr`). */
export class LogItem extends vscode.TreeItem {
  readonly kind = 'log';
  constructor(
    readonly parent: VenvItem,
    readonly worker: string,
    readonly logPath: string,
    bytes: number | null,
  ) {
    super(path.basename(logPath), vscode.TreeItemCollapsibleState.None);
    this.id = `${parent.id}:log:${logPath}`;
    this.description = bytes !== null ? formatSize(bytes) : '?';
    this.tooltip = logPath;
    this.iconPath = new vscode.ThemeIcon('output');
    this.contextValue = 'log;stderr;';
  }
}

export type ClusterNode =
  | HealthItem
  | SchedulerItem
  | WorkerItem
  | VenvsGroupItem
  | VenvItem
  | LockItem
  | BundlesGroupItem
  | BundleItem
  | RunnersGroupItem
  | RunnerItem
  | LogItem
  | DetailItem;

export class ClusterTreeProvider implements vscode.TreeDataProvider<ClusterNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ClusterNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly listening: vscode.Disposable;

  constructor(private readonly session: ClusterSession) {
    this.listening = session.onDidChange(() => this.changed.fire(undefined));
  }

  getTreeItem(element: ClusterNode): vscode.TreeItem {
    return element;
  }

  getChildren(element?: ClusterNode): ClusterNode[] {
    if (element) return 'children' in element ? element.children() : [];
    const report = this.session.report;
    // the view's first look at a scheduler it has not inspected yet starts the inspection
    if (!report) {
      this.session.inspectOnFirstLook();
      return [];
    }
    return [new HealthItem(report), new SchedulerItem(report)];
  }

  getParent(element: ClusterNode): ClusterNode | undefined {
    return element.parent;
  }

  dispose(): void {
    this.listening.dispose();
    this.changed.dispose();
  }
}

const SILENT_ICON = new vscode.ThemeIcon('debug-disconnect', new vscode.ThemeColor('list.warningForeground'));
const FAILED_ICON = new vscode.ThemeIcon('error', new vscode.ThemeColor('list.errorForeground'));

/** One icon per verdict; the colour says how bad. */
const VERDICT_ICONS: Record<VerdictKind, [string, 'ok' | 'warning' | 'error']> = {
  ok: ['pass', 'ok'],
  'half-built': ['tools', 'error'],
  'marker-invalid': ['tools', 'error'],
  'python-mismatch': ['versions', 'error'],
  'interpreter-changed': ['versions', 'error'],
  'locked-by-dead-pid': ['lock', 'error'],
  'stale-lock': ['unlock', 'warning'],
  'deps-marker-stale': ['history', 'warning'],
  'deps-mismatch': ['history', 'warning'],
  'orphan-fresh-venv': ['trash', 'warning'],
  'unrecognised-name': ['question', 'warning'],
  'bundle-incomplete': ['package', 'warning'],
  'zombie-runner': ['debug-stop', 'error'],
  'stopped-runner': ['debug-pause', 'warning'],
};

export function verdictIcon(kind: VerdictKind): vscode.ThemeIcon {
  const [icon, how] = VERDICT_ICONS[kind] ?? ['circle-outline', 'warning'];
  const colour = { ok: 'testing.iconPassed', warning: 'list.warningForeground', error: 'testing.iconFailed' }[how];
  return new vscode.ThemeIcon(icon, new vscode.ThemeColor(colour));
}

function venvTooltip(v: VenvView, worker: string): vscode.MarkdownString {
  const lines = [
    `**${v.name}** on ${worker}`,
    `\`${v.path}\` (${v.layout} layout)`,
    `verdict: ${v.verdict.reason}`,
    ...v.problems.slice(1).map((p) => `also: ${p.reason}`),
    v.key
      ? `key: digest \`${v.key.digest}\`, Python ${v.key.python}, deps ${v.key.deps}${v.key.fresh ? `, fresh -${v.key.fresh}` : ''}`
      : 'key: not parsed',
    `interpreter ${v.interpreter.version ?? '?'}: pyvenv.cfg ${v.interpreter.pyvenv ?? 'none'}, bin/python → ${v.interpreter.target ?? '(not a link)'} = ${v.interpreter.binPython ?? 'none'}`,
    `size ${v.sizeBytes !== null ? formatSize(v.sizeBytes) : 'not measured'}, modified ${formatTime(v.mtime)}`,
    `bundle ${v.bundle ?? 'not in the bundles dir'}, .deps_installed ${v.depsMarker}`,
    `lock ${v.lock ? `${v.lock.path}: ${describeLock(v.lock)}` : 'none'}`,
    `.install.lock ${v.installLock ? describeLock(v.installLock) : 'none'}`,
    `runners ${v.runners.length ? v.runners.map((p) => `pid ${p}`).join(', ') : 'none'}`,
    `logs ${v.logs.map((l) => path.basename(l.path)).join(', ') || 'none'}`,
  ];
  return new vscode.MarkdownString(lines.join('\n\n'));
}
