/**
 * The VS Code layer. It adapts the engine (src/engine, which never imports `vscode`) to the
 * editor; everything it owns is disposed with the extension.
 */
import * as vscode from 'vscode';
import { VenvCache, venvsDir } from '../engine/venv/cache';
import { ClusterActionLog, registerClusterActions } from './cluster/clusterActions';
import { registerClusterCommands } from './cluster/clusterCommands';
import { ClusterLogs } from './cluster/clusterLogs';
import { CLUSTER_VIEW, ClusterSession } from './cluster/clusterSession';
import { ClusterTreeProvider, type ClusterNode } from './cluster/clusterTree';
import { registerDaskCommands } from './dask/daskCommands';
import { registerReplicateDebugging } from './debug/replicateDebug';
import { FailureDiagnostics } from './diagnostics';
import { registerHandshakeCommands } from './handshake/handshakeCommands';
import { registerEntrypointCompletion } from './jobFiles/entrypointCompletion';
import { jobForCommand, registerJobCommands, showJobStderr } from './jobs/jobCommands';
import { JobModel } from './jobs/jobModel';
import { JobRunner } from './jobs/jobRunner';
import { JobsTreeProvider, type JobsNode } from './jobs/jobsTree';
import { ProtocolTrace } from './output/protocolTrace';
import { RunnerChannels } from './output/runnerChannels';
import { registerProcessCommands } from './processes/processCommands';
import { registerResultDocuments } from './results/resultDocuments';
import { ProcessTreeProvider } from './processes/processTree';
import { registerReportDocuments } from './util/commands';
import { Notices } from './util/notices';
import { registerReplicateTests, type ReplicateTestsApi } from './testing/replicateTests';
import { registerVenvCommands } from './venvs/venvCommands';
import { TimelinePanel, type TimelineApi } from './timeline/timelinePanel';
import { VenvTreeProvider } from './venvs/venvTree';

/** What the extension hands to its tests (and to other extensions). */
export interface ModelOpsApi {
  jobs: JobModel;
  jobsTree: JobsTreeProvider;
  /** The Jobs view itself (what is selected in it). */
  jobsView: vscode.TreeView<JobsNode>;
  venvTree: VenvTreeProvider;
  processTree: ProcessTreeProvider;
  stderr: RunnerChannels;
  diagnostics: FailureDiagnostics;
  trace: ProtocolTrace;
  /** What the user was told, latest last (with what each button does). */
  notices: Notices;
  /** The Testing view's controller, profiles and what they reported. */
  testing: ReplicateTestsApi;
  /** The "ModelOps Timeline" panel: what it was sent, what its page drew, what a click opened. */
  timeline: TimelineApi;
  /** The Cluster view: its scheduler and last inspection, its tree, the worker logs it follows. */
  cluster: {
    session: ClusterSession;
    tree: ClusterTreeProvider;
    view: vscode.TreeView<ClusterNode>;
    logs: ClusterLogs;
    /** The "ModelOps Cluster" channel: a line per action on a worker. */
    actions: ClusterActionLog;
  };
}

export function activate(context: vscode.ExtensionContext): ModelOpsApi {
  const log = vscode.window.createOutputChannel('ModelOps', { log: true });
  const jobs = new JobModel();
  const jobsTree = new JobsTreeProvider(jobs);
  const diagnostics = new FailureDiagnostics();
  const processTree = new ProcessTreeProvider();
  const stderr = new RunnerChannels();
  const trace = new ProtocolTrace();
  const notices = new Notices(log);
  const runner = new JobRunner(jobs, jobsTree, diagnostics, log, processTree, stderr, trace, notices);
  const venvCache = () =>
    new VenvCache({
      dir: venvsDir(vscode.workspace.getConfiguration('modelopsDebugger').get<string>('venvsDir') || undefined),
    });
  const venvTree = new VenvTreeProvider(venvCache);
  const results = registerResultDocuments(log);
  const debugging = registerReplicateDebugging(log, context.globalStorageUri, diagnostics, jobs);
  const testing = registerReplicateTests(runner, jobs, jobsTree, debugging.debugReplicate, log);
  const jobsView = vscode.window.createTreeView('modelopsDebugger.jobs', { treeDataProvider: jobsTree });
  const timeline = new TimelinePanel(jobsTree, jobsView, log);
  const clusterSession = new ClusterSession(log);
  const clusterTree = new ClusterTreeProvider(clusterSession);
  const clusterView = vscode.window.createTreeView(CLUSTER_VIEW, { treeDataProvider: clusterTree });
  clusterSession.view = clusterView;
  const clusterLogs = new ClusterLogs(clusterSession);
  const clusterActions = new ClusterActionLog();
  context.subscriptions.push(
    log,
    jobsTree,
    venvTree,
    processTree,
    diagnostics,
    stderr,
    trace,
    runner,
    jobsView,
    timeline,
    clusterLogs,
    clusterActions,
    clusterView,
    clusterTree,
    clusterSession,
    runner.watch(timeline),
    vscode.commands.registerCommand('modelopsDebugger.showTimeline', async (given?: unknown) => {
      const item = await jobForCommand(jobsTree, given, 'timeline');
      if (item) timeline.show(item.job);
    }),
    vscode.window.registerTreeDataProvider('modelopsDebugger.processes', processTree),
    vscode.window.registerTreeDataProvider('modelopsDebugger.venvs', venvTree),
    vscode.workspace.onDidChangeConfiguration((change) => {
      if (change.affectsConfiguration('modelopsDebugger.venvsDir')) venvTree.refresh();
    }),
    ...registerJobCommands(runner, jobs, jobsTree, log, () => {
      venvTree.refresh();
      results.documents.refresh();
    }),
    registerEntrypointCompletion(),
    ...registerHandshakeCommands(log, trace, diagnostics, notices),
    ...registerDaskCommands(log),
    ...registerClusterCommands(clusterSession, clusterLogs, log),
    ...registerClusterActions(clusterSession, clusterTree, clusterActions, diagnostics, notices),
    ...registerProcessCommands((given) => showJobStderr(jobsTree, given)),
    ...registerVenvCommands(venvCache, venvTree, log),
    ...debugging.disposables,
    ...testing.disposables,
    registerReportDocuments(),
    ...results.disposables,
  );
  return {
    jobs,
    jobsTree,
    jobsView,
    venvTree,
    processTree,
    stderr,
    diagnostics,
    trace,
    notices,
    testing: testing.api,
    timeline: timeline.api,
    cluster: {
      session: clusterSession,
      tree: clusterTree,
      view: clusterView,
      logs: clusterLogs,
      actions: clusterActions,
    },
  };
}

export function deactivate(): void {}
