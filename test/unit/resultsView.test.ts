/**
 * The results documents' text, read from a real job's folder (the CLI ran it, with real
 * runners) through the engine's reader: what is there, what is missing, what is unreadable.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  decodeOutput,
  readAggResult,
  readJobJson,
  readSimResult,
  readSimResults,
} from '../../src/engine/job/resultsReader';
import type { JobSpec } from '../../src/engine/job/spec';
import { aggregationMarkdown, replicateMarkdown, type ResultLinks } from '../../src/extension/results/resultMarkdown';
import { replaceSim } from '../shared/simRecords';
import { CLI, MEAN_VALUE_TARGET, scratchDir, writeBundle } from './helpers';

const WIRE = `import json

def wire(entrypoint, params, seed):
    if params["x"] == 3.0 and seed % 3 == 0:
        raise ValueError("x=3 fails on seeds divisible by 3")  # MARK:raise
    return {
        "value": json.dumps(params["x"] * 2.0).encode(),
        "stats": json.dumps({"a": 1.5, "b": seed % 7}).encode(),
        "blob": bytes(range(256)) * 40,
        "note": ("line of text " * 600).encode(),
    }
`;

const links: ResultLinks = {
  task: (key) => `link:${key}`,
  source: (location) => `src:${location.file}#${location.line}`,
};

describe('results view: an aggregation and its replicates as Markdown', function () {
  this.timeout(180_000);
  const scratch = scratchDir('mo-results-view-');
  let dir: string;
  let job: JobSpec;

  before(async () => {
    writeBundle(path.join(scratch, 'bundle'), { 'wire.py': WIRE, 'targets.py': MEAN_VALUE_TARGET });
    const jobFile = path.join(scratch, 'job.json');
    writeFileSync(
      jobFile,
      '{"job_id": "view-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1.0}, {"x": 3.0}], "replicates": 6, "targets": ["targets:mean_value"]}',
    );
    const run = spawnSync(process.execPath, [CLI, 'run', jobFile, '--out', path.join(scratch, 'out')], {
      encoding: 'utf8',
      timeout: 150_000,
    });
    assert.equal(run.status, 1, run.stderr); // the x=3.0 set has failed replicates
    dir = path.join(scratch, 'out', 'view-job');
    job = (await readJobJson(dir)).job;
  });

  it("an aggregation: the loss and diagnostics per target, every output's statistics, the replicates it used with their seeds", async () => {
    const set = job.parameterSets[0];
    const text = await aggregationMarkdown(dir, job, set, links);
    assert.match(text, /^# Aggregation · x=1\.0$/m);
    assert.match(text, /^\*\*ok\*\* · 6 of 6 replicates used/m);
    assert.match(text, /^\| `targets:mean_value` \| ok \| 2\.0 \| 6 \|$/m);
    assert.match(text, /"n": 6/);
    assert.match(text, /^\| `value` \| {2}\| 6 \| 2 \| 0 \| 2 \| 2 \|$/m);
    assert.match(text, /^\| `stats` \| a \| 6 \| 1\.5 \| 0 \| 1\.5 \| 1\.5 \|$/m);
    assert.match(text, /^\| `stats` \| b \| 6 \|/m);
    assert.match(text, /^- `blob`: not JSON$/m);
    assert.deepEqual(
      (await readSimResults(dir, set, 2)).map((read) => read.state),
      ['found', 'found'],
      'a view reads only the replicates it lists',
    );
    for (let i = 0; i < 6; i++)
      assert.match(
        text,
        new RegExp(
          `^\\| \\[${i}\\]\\(link:sim-${set.paramId}-${i}\\) \\| ${set.seeds[i]} \\| ok ✓ used \\| \\d+ \\| \\d+ \\| 1 \\|$`,
          'm',
        ),
      );
  });

  it('a skipped aggregation names its failed replicates; a failed replicate links its line', async () => {
    const set = job.parameterSets[1];
    const text = await aggregationMarkdown(dir, job, set, links);
    assert.match(text, /^\*\*skipped\*\* · \d of 6 replicates succeeded, none aggregated/m);
    assert.match(text, /^> aggregation-skipped: \d of 6 replicates failed/m);
    assert.match(text, /None used: the aggregation was skipped\./);
    const failed = set.seeds.findIndex((seed) => Number(seed) % 3 === 0);
    assert.ok(failed >= 0, 'a seed divisible by 3 among six');
    assert.match(
      text,
      new RegExp(
        `^\\| \\[${failed}\\]\\(link:sim-[0-9a-f]{64}-${failed}\\) \\| ${set.seeds[failed]} \\| \\*\\*failed\\*\\* · task-exception \\|`,
        'm',
      ),
    );
    const replicate = await replicateMarkdown(dir, job, set, failed, links);
    assert.match(replicate, /^task-exception: ValueError: x=3 fails on seeds divisible by 3$/m);
    assert.match(
      replicate,
      new RegExp(
        `^At \\[bundle/wire\\.py:5\\]\\(src:${path.join(scratch, 'bundle', 'wire.py').replace(/[.]/g, '\\.')}#5\\)$`,
        'm',
      ),
    );
    assert.doesNotMatch(replicate, /## Outputs/);
  });

  it('a replicate: seed, params, attempts, pid, duration, and its outputs decoded where JSON, sized and cut otherwise', async () => {
    const set = job.parameterSets[0];
    const text = await replicateMarkdown(dir, job, set, 2, links);
    assert.match(text, new RegExp(`^\\| seed \\| ${set.seeds[2]} \\|$`, 'm'));
    assert.match(text, /^\| status \| \*\*ok\*\* \|$/m);
    assert.match(text, /^\| attempts \| 1 \|$/m);
    assert.match(text, /^\| pid \| \d+ \|$/m);
    assert.match(text, /^\| duration \| \d+ ms \|$/m);
    assert.match(text, /^```json\n\{"x": 1\.0\}\n```$/m);
    assert.match(text, /^### value\n\n3 bytes, JSON:\n\n```json\n2\.0\n```$/m);
    assert.match(text, /^### stats\n\n\d+ bytes, JSON:\n\n```json\n\{\n {2}"a": 1\.5,/m);
    assert.match(
      text,
      /^### blob\n\n10\.0 KB \(10240 bytes\), binary; the first bytes in hex, truncated:\n\n```\n00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\n10 11/m,
    );
    assert.match(text, /^### note\n\n7\.6 KB \(7800 bytes\), text, truncated:/m);
  });

  it('says so when a result is missing or unreadable, never a blank', async () => {
    const set = job.parameterSets[0];
    const sim = await readSimResult(dir, set, 4);
    assert.equal(sim.state, 'found');
    replaceSim(dir, set.paramId, 4);
    replaceSim(dir, set.paramId, 5, '{"status": "ok", "replicate": 5}');
    const replicate = await replicateMarkdown(dir, job, set, 4, links);
    assert.match(
      replicate,
      /^\*\*No replicate result\*\*: `.*\/sims\/[0-9a-f]{16}\.jsonl` has no line for replicate 4; it has not finished/m,
    );
    assert.match(
      await replicateMarkdown(dir, job, set, 5, links),
      /^\*\*The replicate result is unreadable\*\*: `.*\.jsonl`: line \d+: it is not a result of this task: key is "undefined"/m,
    );
    const agg = await aggregationMarkdown(dir, job, set, links);
    assert.match(agg, /^\| \[4\]\(link:sim-[0-9a-f]{64}-4\) \| \d+ \| no result \| \| \| \|$/m);
    assert.match(agg, /The aggregation used 6; 4 succeeded as the files are now/);
    writeFileSync((await readAggResult(dir, set)).file, 'not json');
    assert.match(
      await aggregationMarkdown(dir, job, set, links),
      /^\*\*The aggregation result is unreadable\*\*: `.*\.json`: it is not JSON/m,
    );
    rmSync((await readAggResult(dir, set)).file);
    assert.match(
      await aggregationMarkdown(dir, job, set, links),
      /^\*\*No aggregation result\*\*: .* has not been aggregated yet/m,
    );
    // a FIFO in place of a result is said at once, never waited on
    const fifo = (await readSimResult(dir, set, 3)).file;
    rmSync(fifo);
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    assert.match(
      await replicateMarkdown(dir, job, set, 3, links),
      /^\*\*The replicate result is unreadable\*\*: `.*\.jsonl`: .*\.jsonl is a FIFO \(named pipe\), not a result file\.$/m,
    );
  });

  it('decodeOutput: JSON as Python wrote it, long JSON as it came, binary in hex', async () => {
    const encode = (bytes: Buffer) => ({ size: bytes.length, inline: bytes.toString('base64') });
    assert.deepEqual(decodeOutput(encode(Buffer.from('[1.0,2]'))), {
      size: 7,
      as: 'json',
      text: '[\n  1.0,\n  2\n]',
      truncated: false,
    });
    const long = JSON.stringify(Array.from({ length: 100 }, (_, i) => i));
    assert.equal(
      (decodeOutput(encode(Buffer.from(long))) as { text: string }).text,
      long,
      'a long list stays on one line',
    );
    assert.deepEqual(decodeOutput(encode(Buffer.from([0, 255, 16]))), {
      size: 3,
      as: 'binary',
      hex: '00 ff 10',
      truncated: false,
    });
  });
});
