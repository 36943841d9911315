/**
 * A run's defaults live in one place (backends/contract.ts RUN_DEFAULTS): the command line's
 * flags and the editor's settings must say the same, or a job would run differently from each.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { RUN_DEFAULTS } from '../../src/engine/backends/contract';
import { CLI, ROOT } from './helpers';

describe('run defaults', () => {
  it("the editor's settings default to RUN_DEFAULTS (package.json cannot import them)", () => {
    const settings = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).contributes.configuration
      .properties;
    const defaultOf = (name: string) => settings[`modelopsDebugger.${name}`].default;
    assert.equal(defaultOf('taskTimeoutSeconds') * 1000, RUN_DEFAULTS.taskTimeoutMs);
    assert.equal(defaultOf('installTimeoutSeconds') * 1000, RUN_DEFAULTS.installTimeoutMs);
    assert.equal(defaultOf('handshakeTimeoutSeconds') * 1000, RUN_DEFAULTS.handshakeTimeoutMs);
    assert.equal(defaultOf('retries'), RUN_DEFAULTS.retries);
    assert.equal(defaultOf('executor'), RUN_DEFAULTS.executor);
    assert.equal(defaultOf('maxFrameMb') * 1024 * 1024, RUN_DEFAULTS.maxFrameBytes);
    assert.equal(defaultOf('runnerNiceness'), RUN_DEFAULTS.runnerNice);
  });

  it("the command line's flags default to RUN_DEFAULTS (--help says them)", () => {
    const help = (command: string) => {
      const out = spawnSync(process.execPath, [CLI, command, '--help'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(out.status, 0, out.stderr);
      return out.stdout.replace(/\s+/g, ' ');
    };
    const run = help('run');
    assert.match(
      run,
      new RegExp(
        `--ready-timeout <seconds> for a runner to answer ready \\(default: ${RUN_DEFAULTS.readyTimeoutMs / 1000}\\)`,
      ),
    );
    assert.match(
      run,
      new RegExp(
        `--task-timeout <seconds> per simulation or aggregation \\(default: ${RUN_DEFAULTS.taskTimeoutMs / 1000}\\)`,
      ),
    );
    assert.match(
      run,
      new RegExp(`--retries <n> extra attempts for a task whose runner crashed \\(default: ${RUN_DEFAULTS.retries}\\)`),
    );
    assert.match(
      run,
      new RegExp(`--connect-timeout <seconds> .*?\\(default: ${RUN_DEFAULTS.connectTimeoutMs / 1000}\\)`),
    );
    assert.match(
      help('replicate'),
      new RegExp(
        `--ready-timeout <seconds> for the runner to answer ready \\(default: ${RUN_DEFAULTS.readyTimeoutMs / 1000}\\)`,
      ),
    );
    assert.match(
      help('handshake'),
      new RegExp(
        `--timeout <seconds> how long the runner may take to answer ready \\(default: ${RUN_DEFAULTS.handshakeTimeoutMs / 1000}\\)`,
      ),
    );
  });
});
