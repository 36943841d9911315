/**
 * Reading a file on a worker through the scheduler (`dask/read-file`, the Cluster view's logs and
 * pyproject.toml) against a real scheduler and one worker on 127.0.0.1: the tail, then only what
 * was appended, a cut UTF-8 character never split, a truncated log read again from its tail, and
 * every path that is not a venv's log or a bundle's pyproject.toml refused (symlinks resolved).
 */
import * as assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ClusterConnection } from '../../src/engine/cluster/connection';
import { LogTail, readWholeFile, type FileRequest } from '../../src/engine/cluster/workerFile';
import { isFailure } from '../../src/engine/failure';
import { scratchDir } from '../unit/helpers';
import { DaskCluster, DASK_PYTHON } from './cluster';

describe('reading a file on a worker (dask/read-file)', function () {
  this.timeout(60_000);
  const root = scratchDir('mo-worker-file-');
  const venvs = path.join(root, 'venvs');
  const bundles = path.join(root, 'bundles');
  const logs = path.join(venvs, 'sha256:abcde-py3.11-11111111', 'logs');
  const log = path.join(logs, 'runner-sha256:abcde-4242.stderr');
  const pyproject = path.join(bundles, 'bundles', 'sha256:abcde', 'pyproject.toml');
  mkdirSync(logs, { recursive: true });
  mkdirSync(path.dirname(pyproject), { recursive: true });
  writeFileSync(pyproject, '[project]\nname = "sir"\n');
  writeFileSync(path.join(root, 'secret.txt'), 'not for the view\n');
  symlinkSync(path.join(root, 'secret.txt'), path.join(logs, 'escape.stderr'));
  let cluster: DaskCluster;
  let connection: ClusterConnection;

  before(async () => {
    cluster = await DaskCluster.start({ workers: 0 });
    await cluster.addWorker({ MODELOPS_VENVS_DIR: venvs, MODELOPS_BUNDLES_CACHE_DIR: bundles });
    connection = new ClusterConnection(cluster.address, { python: DASK_PYTHON, connectTimeoutMs: 10_000 });
  });
  after(async () => {
    await connection?.close();
    await cluster?.stop();
  });

  const worker = () => cluster.workers[0].address;
  const read = (params: FileRequest) => connection.readFile({ ...params, timeout_s: 10 });

  it('streams a log: its tail first, then only what was appended; a cut character waits whole; a truncated log starts over', async () => {
    writeFileSync(log, `${'x'.repeat(100)}\nfirst line\n`);
    const tail = new LogTail(read, { worker: worker(), path: log }, 12);
    assert.deepEqual(await tail.next(), { text: '\nfirst line\n', skipped: 100, restarted: false });
    assert.deepEqual(await tail.next(), { text: '', skipped: 0, restarted: false });
    appendFileSync(log, 'second é');
    const euro = Buffer.from('€'); // 3 bytes: the first two now, the last later
    appendFileSync(log, euro.subarray(0, 2));
    assert.deepEqual(await tail.next(), { text: 'second é', skipped: 0, restarted: false });
    appendFileSync(log, Buffer.concat([euro.subarray(2), Buffer.from('\n')]));
    assert.deepEqual(await tail.next(), { text: '€\n', skipped: 0, restarted: false });
    truncateSync(log, 0);
    appendFileSync(log, 'rotated\n');
    assert.deepEqual(await tail.next(), { text: 'rotated\n', skipped: 0, restarted: true });
    const whole = await readWholeFile(read, { worker: worker(), path: log, kind: 'log' }, 1024);
    assert.deepEqual(whole, { text: 'rotated\n', size: 8, skipped: 0 });
  });

  it("reads a bundle's pyproject.toml; refuses anything else, a symlink out of logs/ included", async () => {
    const got = await read({ worker: worker(), path: pyproject, kind: 'pyproject', offset: 0, max_bytes: 4096 });
    assert.equal(got.text, '[project]\nname = "sir"\n');
    const refused = async (file: string, kind: 'log' | 'pyproject') => {
      try {
        await read({ worker: worker(), path: file, kind, max_bytes: 4096 });
      } catch (error) {
        assert.ok(isFailure(error), String(error));
        return `${error.kind}: ${error.message}`;
      }
      return 'read';
    };
    const escape = await refused(path.join(logs, 'escape.stderr'), 'log');
    assert.match(escape, /^bad-input: .*PermissionError: refused: .*escape\.stderr is not a venv's logs\/ in /);
    assert.match(await refused(path.join(logs, '..', '..', '..', 'secret.txt'), 'log'), /^bad-input: .*refused/);
    assert.match(await refused(pyproject, 'log'), /^bad-input: .*refused/);
    assert.match(await refused(log, 'pyproject'), /^bad-input: .*refused/);
    assert.match(await refused('/etc/passwd', 'log'), /^bad-input: .*refused/);
    assert.match(await refused(path.join(logs, 'absent.stderr'), 'log'), /^dask-task-erred: .*FileNotFoundError/);
  });
});
