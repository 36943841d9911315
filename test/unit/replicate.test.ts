/**
 * `modelops-debugger replicate`: real jobs run by the CLI, real runners in real venvs, then one
 * replicate reproduced and compared with what the job recorded.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { paramId, replicateSeed, type Params } from '../../src/engine/job/ids';
import { outputChecksum } from '../../src/engine/job/results';
import { PARAM_PREFIX_DIGITS, replicateCommandLine } from '../../src/engine/job/reproduce';
import { PyFloat } from '../../src/engine/pyjson/pyjson';
import { simRecord } from '../shared/simRecords';
import { bundle, CLI, lineOf, readJson, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-replicate-');
let counter = 0;

/**
 * Its outputs and its failure message depend on REPLICATE_TEST_SALT, which the test changes
 * between the job and the reproduction: a change outside the bundle (its digest, and so its
 * venv key, stay the same) that makes a replicate come out different.
 */
const SALTED_WIRE = `import json, os


def wire(entrypoint, params, seed):
    salt = os.environ.get("REPLICATE_TEST_SALT", "none")
    if params["mode"] == "fail":
        raise ValueError("failed with salt " + salt)  # MARK:salted-raise
    value = {"x": params["x"], "seed": seed, "salt": salt}
    return {"value": json.dumps(value, separators=(",", ":")).encode(), "fixed": b"same bytes every time"}
`;

function saltedBundle(): string {
  return writeBundle(path.join(scratch, `salted-${++counter}`), { 'wire.py': SALTED_WIRE });
}

function cli(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a job file with the CLI and returns its results folder. */
function runJob(job: Record<string, unknown>, env: Record<string, string> = {}, expectedCode = 0): string {
  const out = path.join(scratch, `out-${++counter}`);
  const file = path.join(scratch, `job-${counter}.json`);
  writeFileSync(file, JSON.stringify(job));
  const ran = cli(['run', file, '--out', out, '--workers', '1'], env);
  assert.equal(ran.code, expectedCode, ran.stderr);
  return path.join(out, String(job.job_id));
}

/** Every file of a folder with its bytes' hash: what a reproduction must leave as it was. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) walk(full);
      else
        files[path.relative(dir, full)] =
          `${statSync(full).mtimeMs} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    }
  };
  walk(dir);
  return files;
}

function replicateJson(args: string[], env: Record<string, string> = {}) {
  const ran = cli(['replicate', ...args, '--json'], env);
  assert.equal(ran.stdout.trim().split('\n').length, 1, `one JSON object on stdout:\n${ran.stdout}\n${ran.stderr}`);
  return { code: ran.code, report: JSON.parse(ran.stdout) as Record<string, any>, stderr: ran.stderr };
}

describe('modelops-debugger replicate', () => {
  const sets = [
    { mode: 'ok', x: 1.0 },
    { mode: 'fail', x: 2.0 },
  ];
  let dir: string;
  let untouched: Record<string, string>;
  let wire: string;

  before(() => {
    const bundleDir = saltedBundle();
    wire = path.join(bundleDir, 'wire.py');
    dir = runJob(
      { job_id: 'salted', bundle: bundleDir, entrypoint: 'salted/run', parameter_sets: sets, replicates: 3 },
      { REPLICATE_TEST_SALT: 'first' },
      1,
    );
    untouched = snapshot(dir);
  });

  after(() => {
    // every reproduction above ran against this folder: not a byte, not a timestamp changed
    assert.deepEqual(snapshot(dir), untouched);
  });

  it("same: the replicate re-run in the job's venv gives the recorded bytes (by index), exit 0, and the results folder is byte-identical afterwards", () => {
    const recorded = simRecord(dir, paramId(sets[0] as unknown as Params), 2);
    const ran = cli(['replicate', dir, '--param', '0', '--replicate', '2'], { REPLICATE_TEST_SALT: 'first' });
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^✔ same: 2 outputs, byte for byte as recorded/);
    assert.match(ran.stdout, new RegExp(`seed ${recorded.seed}, entrypoint salted/run, job salted`));
    assert.match(ran.stdout, /fixed +21 B, blake2b [0-9a-f]{12} += recorded/);
    const { code, report } = replicateJson([dir, '--param', '0', '--replicate', '2'], { REPLICATE_TEST_SALT: 'first' });
    assert.equal(code, 0);
    assert.equal(report.verdict, 'same');
    assert.equal(report.seed, replicateSeed(report.param_id, 2));
    assert.equal(report.seed, recorded.seed);
    const manifest = readJson(path.join(dir, 'manifest.json'));
    assert.equal(report.ran.venv.key, manifest.environment.venv.key, "the job's venv");
    assert.equal(report.ran.job_venv_key, manifest.environment.venv.key);
    assert.notEqual(report.ran.pid, recorded.pid, 'a fresh runner');
    const value = report.outputs.find((o: any) => o.name === 'value');
    assert.deepEqual(value.recorded, { size: value.size, checksum: value.checksum });
    assert.deepEqual(snapshot(dir), untouched);
  });

  it('different: an environment variable the output depends on changed; names the output and its first differing bytes, exit 1', () => {
    const { code, report } = replicateJson(
      [dir, '--param', paramId(sets[0] as unknown as Params).slice(0, 10), '--replicate', '1'],
      { REPLICATE_TEST_SALT: 'other' },
    );
    assert.equal(code, 1);
    assert.equal(report.verdict, 'different');
    assert.match(report.message, /1 of 2 outputs differ from the recorded result: value \(different\)/);
    const fixed = report.outputs.find((o: any) => o.name === 'fixed');
    assert.equal(fixed.status, 'same');
    const value = report.outputs.find((o: any) => o.name === 'value');
    assert.equal(value.status, 'different');
    assert.notEqual(value.checksum, value.recorded.checksum);
    // {"x":1.0,"seed":N,"salt":"first"} against …"salt":"other"}: the first difference is the salt's first letter
    const recordedText = Buffer.from(simRecord(dir, report.param_id, 1).outputs.value.inline, 'base64').toString();
    assert.equal(value.first_difference.offset, recordedText.indexOf('"first"') + 1);
    assert.equal(value.first_difference.recorded.text, 'first"}');
    assert.equal(value.first_difference.now.text, 'other"}');
    assert.equal(value.first_difference.now.hex, Buffer.from('other"}').toString('hex'));
    const human = cli(['replicate', dir, '--param', '0', '--replicate', '1'], { REPLICATE_TEST_SALT: 'other' });
    assert.equal(human.code, 1);
    assert.match(human.stdout, /^✘ different: 1 of 2 outputs differ/);
    assert.match(human.stdout, /first difference at byte \d+: now "other"}" \([0-9a-f]+\), recorded "first"}"/);
  });

  it('failed like before: the same kind and message, at the bundle line, exit 1', () => {
    const { code, report } = replicateJson([dir, '--param', '1', '--replicate', '0'], { REPLICATE_TEST_SALT: 'first' });
    assert.equal(code, 1);
    assert.equal(report.verdict, 'failed-like-before');
    assert.equal(report.failure.kind, 'task-exception');
    assert.equal(report.failure.message, 'ValueError: failed with salt first');
    assert.deepEqual(
      [report.failure.location.file, report.failure.location.line],
      [wire, lineOf(wire, 'salted-raise')],
    );
    assert.equal(report.recorded_failure.message, report.failure.message);
    const human = cli(['replicate', dir, '--param', '1', '--replicate', '0'], { REPLICATE_TEST_SALT: 'first' });
    assert.match(
      human.stdout,
      /^✘ failed like before: task-exception: ValueError: failed with salt first\n {2}at .*wire\.py:\d+ in wire\(\)/,
    );
  });

  it('failed differently: the same replicate fails with another message, both are said, exit 1', () => {
    const { code, report } = replicateJson([dir, '--param', '1', '--replicate', '2'], { REPLICATE_TEST_SALT: 'other' });
    assert.equal(code, 1);
    assert.equal(report.verdict, 'failed-differently');
    assert.equal(report.failure.message, 'ValueError: failed with salt other');
    assert.equal(report.recorded_failure.message, 'ValueError: failed with salt first');
    assert.match(
      report.message,
      /failed differently: task-exception: ValueError: failed with salt other; the recorded run failed with task-exception: ValueError: failed with salt first/,
    );
  });

  it('bad input is exit 2 with the field and why: an index out of range (says the range), a replicate out of range, not a prefix; --json says it as one object', () => {
    const outOfRange = cli(['replicate', dir, '--param', '7', '--replicate', '0']);
    assert.equal(outOfRange.code, 2);
    assert.match(outOfRange.stderr, /--param 7: job salted has parameter sets 0 to 1/);
    const replicateRange = cli(['replicate', dir, '--param', '0', '--replicate', '3']);
    assert.equal(replicateRange.code, 2);
    assert.match(replicateRange.stderr, /--replicate 3: parameter set 0 \([0-9a-f]{16}\) has replicates 0 to 2/);
    const noPrefix = cli(['replicate', dir, '--param', 'not-hex', '--replicate', '0']);
    assert.equal(noPrefix.code, 2);
    assert.match(noPrefix.stderr, /--param "not-hex" is neither an index nor a param_id prefix/);
    const json = replicateJson([dir, '--param', '9', '--replicate', '0']);
    assert.equal(json.code, 2);
    assert.equal(json.report.verdict, 'error');
    assert.equal(json.report.kind, 'bad-input');
    assert.deepEqual(snapshot(dir), untouched);
  });

  it('an ambiguous param_id prefix lists the candidates (index, param_id, params); a longer one selects', () => {
    // 40 sets: several of their param_ids share a first hex letter
    const bundleDir = saltedBundle();
    const manyDir = runJob({
      job_id: 'many',
      bundle: bundleDir,
      entrypoint: 'e',
      parameter_sets: Array.from({ length: 40 }, (_, i) => ({ mode: 'ok', x: i + 0.5 })),
      replicates: 1,
    });
    const jobIds: string[] = readJson(path.join(manyDir, 'job.json')).parameter_sets.map((set: any) => set.param_id);
    const shared = [...'abcdef'].find((c) => jobIds.filter((id) => id.startsWith(c)).length >= 2);
    assert.ok(shared, 'some param_ids share a first letter');
    const candidates = jobIds.map((id, index) => ({ id, index })).filter(({ id }) => id.startsWith(shared));
    const ambiguous = cli(['replicate', manyDir, '--param', shared, '--replicate', '0']);
    assert.equal(ambiguous.code, 2);
    assert.match(
      ambiguous.stderr,
      new RegExp(
        `--param ${shared} is ambiguous: ${candidates.length} parameter sets of job many have a param_id starting with it`,
      ),
    );
    for (const { id, index } of candidates.slice(0, 10))
      assert.ok(ambiguous.stderr.includes(`index ${index} (${id.slice(0, 16)}: mode="ok", x=`), `lists index ${index}`);
    const chosen = cli(['replicate', manyDir, '--param', candidates[1].id.slice(0, 12), '--replicate', '0', '--json']);
    assert.equal(chosen.code, 0, chosen.stderr);
    assert.equal(JSON.parse(chosen.stdout).param_index, candidates[1].index);
  });

  it('--export-study writes the replicate as a production study (model/scenario, its params and explicit seed) before it runs, from a results folder or a bundle; production would derive the same param_id; an entrypoint that is not model/scenario is refused, nothing written', () => {
    // what production does with the file (modelops-contracts study.py from_dict + to_simjob, and
    // make_param_id's formula), said in Python over the file as written
    const asProduction = (file: string) => {
      const ran = spawnSync(
        'python3',
        [
          '-c',
          [
            'import hashlib, json, sys',
            'study = json.load(open(sys.argv[1]))',
            'entry = study["parameter_sets"][0]',
            'canonical = json.dumps(entry["params"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)',
            'param_id = hashlib.blake2b(("contracts:param:v1|" + canonical).encode(), digest_size=32).hexdigest()',
            'print(json.dumps({"entrypoint": study["model"] + "/" + study["scenario"], "entries": len(study["parameter_sets"]), "keys": sorted(entry), "param_id": param_id, "seed": str(entry["seed"]), "seed_is_int": type(entry["seed"]) is int, "kinds": {k: type(v).__name__ for k, v in entry["params"].items()}, "n_replicates": study["n_replicates"]}))',
          ].join('\n'),
          file,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(ran.status, 0, ran.stderr);
      return JSON.parse(ran.stdout);
    };

    // the failing replicate: a study is what one wants then, so it is written before the run
    const fromJob = path.join(scratch, `study-${++counter}.json`);
    const ran = cli(['replicate', dir, '--param', '1', '--replicate', '0', '--export-study', fromJob], {
      REPLICATE_TEST_SALT: 'first',
    });
    assert.equal(ran.code, 1, ran.stderr);
    assert.match(ran.stdout, /^✘ failed like before/);
    assert.match(ran.stdout, new RegExp(`\\n  study: .*study-${counter}\\.json \\(this replicate for production`));
    const recorded = simRecord(dir, paramId(sets[1] as unknown as Params), 0);
    assert.deepEqual(asProduction(fromJob), {
      entrypoint: 'salted/run',
      entries: 1,
      keys: ['params', 'seed'],
      param_id: paramId(sets[1] as unknown as Params),
      seed: String(recorded.seed),
      seed_is_int: true,
      kinds: { mode: 'str', x: 'int' },
      n_replicates: 1,
    });
    assert.deepEqual(readJson(fromJob).metadata.reproduces, {
      job_id: 'salted',
      param_id: paramId(sets[1] as unknown as Params),
      replicate: 0,
      seed: recorded.seed,
    });

    // the bundle form: a float stays a float, a seed beyond 2^53 keeps its digits
    const fromBundle = path.join(scratch, `study-${++counter}.json`);
    const big = '18446744073709551615';
    const { code, report } = replicateJson([
      bundle('healthy-wire-py'),
      '--entrypoint',
      'models.sir/baseline',
      '--params',
      '{"beta": 1.0}',
      '--seed',
      big,
      '--export-study',
      fromBundle,
    ]);
    assert.equal(code, 0);
    assert.equal(report.study, fromBundle);
    assert.deepEqual(asProduction(fromBundle), {
      entrypoint: 'models.sir/baseline',
      entries: 1,
      keys: ['params', 'seed'],
      param_id: paramId({ beta: new PyFloat(1) }),
      seed: big,
      seed_is_int: true,
      kinds: { beta: 'float' },
      n_replicates: 1,
    });

    // production could not name the simulation: refused before anything runs
    const refused = path.join(scratch, `study-${++counter}.json`);
    const main = cli([
      'replicate',
      bundle('healthy-wire-py'),
      '--entrypoint',
      'main',
      '--params',
      '{"beta": 1.0}',
      '--seed',
      '7',
      '--export-study',
      refused,
    ]);
    assert.equal(main.code, 2, main.stdout);
    assert.match(
      main.stderr,
      /^modelops-debugger: A production study names its simulation as model\/scenario .*"main" is not of that form/,
    );
    assert.equal(main.stdout, '', 'nothing ran');
    assert.ok(!existsSync(refused));
  });

  it('the bundle form runs a replicate from --entrypoint, --params and --seed and prints its outputs; params keep their floats and a seed beyond 2^53 its digits', () => {
    const ran = cli([
      'replicate',
      bundle('healthy-wire-py'),
      '--entrypoint',
      'main',
      '--params',
      '{"beta": 1.0}',
      '--seed',
      '7',
    ]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^✔ ok: 1 output\n/);
    assert.match(ran.stdout, /replicate of \([0-9a-f]{16}: beta=1\.0\), seed 7, entrypoint main/);
    assert.match(ran.stdout, /result +\d+ B, blake2b [0-9a-f]{12}\n/);
    const big = '18446744073709551615';
    const { code, report } = replicateJson([
      bundle('healthy-wire-py'),
      '--entrypoint',
      'main',
      '--params',
      '{"beta": 1.0}',
      '--seed',
      big,
    ]);
    assert.equal(code, 0);
    assert.equal(report.verdict, 'ok');
    assert.equal(report.param_id, paramId({ beta: new PyFloat(1) }));
    assert.match(ran.stdout, /seed 7,/);
    // the runner got the float and the exact seed: its output is byte for byte what Python makes of them
    const expected = spawnSync(
      'python3',
      [
        '-c',
        `import json,random; r=random.Random(${big}); print(json.dumps({"value": round(1.0 + r.random(), 12), "seed": ${big}}, separators=(",", ":")), end="")`,
      ],
      { encoding: 'utf8' },
    ).stdout;
    assert.ok(expected.includes(`"seed":${big}`));
    assert.equal(report.outputs[0].checksum, outputChecksum(Buffer.from(expected)));
    assert.ok(
      cli([
        'replicate',
        bundle('healthy-wire-py'),
        '--entrypoint',
        'main',
        '--params',
        '{"beta": 1.0}',
        '--seed',
        big,
        '--json',
      ]).stdout.includes(`"seed":${big}`),
    );
    const failing = replicateJson([
      bundle('raise-in-execute'),
      '--entrypoint',
      'main',
      '--params',
      '{}',
      '--seed',
      '1',
    ]);
    assert.equal(failing.code, 1);
    assert.equal(failing.report.verdict, 'failed');
    assert.equal(failing.report.failure.kind, 'task-exception');
    const missing = cli(['replicate', bundle('healthy-wire-py'), '--entrypoint', 'main']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /as a bundle directory it needs --params, --seed/);
    const badParams = cli([
      'replicate',
      bundle('healthy-wire-py'),
      '--entrypoint',
      'main',
      '--params',
      '{"beta": [1]}',
      '--seed',
      '1',
    ]);
    assert.equal(badParams.code, 2);
    assert.match(badParams.stderr, /--params: params\.beta is a list; parameters are numbers, strings or booleans/);
  });

  it("--cold: a private venv with the job's key built from scratch for the run and removed after; still the same bytes", () => {
    const manifest = readJson(path.join(dir, 'manifest.json'));
    const { code, report } = replicateJson([dir, '--param', '0', '--replicate', '0', '--cold'], {
      REPLICATE_TEST_SALT: 'first',
    });
    assert.equal(code, 0);
    assert.equal(report.verdict, 'same');
    assert.equal(report.ran.venv.fresh, true);
    assert.equal(report.ran.venv.built, true);
    assert.match(report.ran.venv.key, new RegExp(`^${manifest.environment.venv.key}-fresh-[0-9a-f]{8}$`));
    assert.equal(existsSync(report.ran.venv.path), false, 'removed after the run');
  });

  it("a venv that would not be the job's is refused before anything is built: another Python is python-mismatch (exit 3), another digest bad-input (exit 2)", () => {
    const manifest = readJson(path.join(dir, 'manifest.json'));
    const key: string = manifest.environment.venv.key;
    const [digest12, py, deps8] = /^([0-9a-f]{12})-py(\d+\.\d+)-([0-9a-f]{8})$/.exec(key)!.slice(1);
    // a copy of the results folder whose manifest says the job ran under Python 3.1 (a copy: the real one is
    // never touched)
    const copy = path.join(scratch, `copy-${++counter}`, 'salted');
    mkdirSync(path.dirname(copy));
    cpSync(dir, copy, { recursive: true });
    const otherPython = `${digest12}-py3.1-${deps8}`;
    writeFileSync(
      path.join(copy, 'manifest.json'),
      JSON.stringify({
        ...manifest,
        environment: { ...manifest.environment, venv: { ...manifest.environment.venv, key: otherPython } },
      }),
    );
    const mismatch = replicateJson([copy, '--param', '0', '--replicate', '0']);
    assert.equal(mismatch.code, 3);
    assert.equal(mismatch.report.kind, 'python-mismatch');
    assert.match(
      mismatch.report.message,
      new RegExp(
        `The venv would be ${key}, but the run to reproduce used ${otherPython}: the interpreter \\S+ is Python ${py.replace('.', '\\.')}, not 3\\.1`,
      ),
    );
    const otherDigest = `000000000000-py${py}-${deps8}`;
    writeFileSync(
      path.join(copy, 'manifest.json'),
      JSON.stringify({
        ...manifest,
        environment: { ...manifest.environment, venv: { ...manifest.environment.venv, key: otherDigest } },
      }),
    );
    const changed = replicateJson([copy, '--param', '0', '--replicate', '0']);
    assert.equal(changed.code, 2);
    assert.match(
      changed.report.message,
      /the bundle's digest begins [0-9a-f]{12}, not 000000000000 \(its files changed\)/,
    );
    const venvs = readdirSync(process.env.MODELOPS_VENVS_DIR!);
    assert.ok(
      !venvs.some((name) => name.startsWith(otherPython) || name.startsWith(otherDigest)),
      'no venv built for either key',
    );
  });

  it('a job run with --python (no venv) is reproduced with that interpreter as it is', () => {
    const bundleDir = saltedBundle();
    const out = path.join(scratch, `out-${++counter}`);
    const file = path.join(scratch, `job-${counter}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        job_id: 'plain',
        bundle: bundleDir,
        entrypoint: 'e',
        parameter_sets: [{ mode: 'ok', x: 3.0 }],
        replicates: 2,
      }),
    );
    const ran = cli(['run', file, '--out', out, '--workers', '1', '--python', 'python3']);
    assert.equal(ran.code, 0, ran.stderr);
    const manifest = readJson(path.join(out, 'plain', 'manifest.json'));
    const { code, report } = replicateJson([path.join(out, 'plain'), '--param', '0', '--replicate', '1']);
    assert.equal(code, 0);
    assert.equal(report.verdict, 'same');
    assert.equal(report.ran.venv, undefined);
    assert.equal(report.ran.python, manifest.environment.python.venv_python);
    assert.ok(report.notes.some((note: string) => note.includes('as it is (no venv)')));
  });

  it('Ctrl-C while the replicate runs stops its runner and exits 130 (cancelled)', async () => {
    const marker = path.join(scratch, `started-${++counter}`);
    const bundleDir = writeBundle(path.join(scratch, `hang-${counter}`), {
      'wire.py': `import os, time\n\n\ndef wire(entrypoint, params, seed):\n    with open(os.environ["REPLICATE_TEST_MARKER"], "w") as f:\n        f.write(str(os.getpid()))\n    while True:\n        time.sleep(0.05)\n`,
    });
    const child = spawn(
      process.execPath,
      [CLI, 'replicate', bundleDir, '--entrypoint', 'e', '--params', '{}', '--seed', '1'],
      { env: { ...process.env, REPLICATE_TEST_MARKER: marker } },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!existsSync(marker) || readFileSync(marker, 'utf8') === '') {
      assert.ok(Date.now() < deadline, `the replicate never started: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const runnerPid = Number(readFileSync(marker, 'utf8'));
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.match(stderr, /interrupted by SIGINT: stopping the runner/);
    assert.match(stderr, /The reproduction was stopped before the replicate finished/);
    assert.throws(() => process.kill(runnerPid, 0), /ESRCH/, 'the runner is gone');
  });

  it('the reproduce command line (for the editor to copy) runs exactly that replicate, and quotes a path a shell would split', () => {
    const set = readJson(path.join(dir, 'job.json')).parameter_sets[0];
    const { args } = replicateCommandLine(dir, set.param_id, 1);
    assert.deepEqual(args.slice(3), ['--param', set.param_id.slice(0, PARAM_PREFIX_DIGITS), '--replicate', '1']);
    const ran = cli([...args.slice(1), '--json'], { REPLICATE_TEST_SALT: 'first' });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(JSON.parse(ran.stdout).verdict, 'same');
    const odd = "/tmp/it's a dir/$HOME/salted";
    const { line, args: oddArgs } = replicateCommandLine(odd, set.param_id, 1);
    const split = spawnSync(
      'python3',
      ['-c', 'import shlex, sys, json; print(json.dumps(shlex.split(sys.argv[1])))', line],
      { encoding: 'utf8' },
    );
    assert.deepEqual(JSON.parse(split.stdout), oddArgs);
  });

  it('a bundle that changed since the job ran is not reproduced (exit 2), and nothing is written', () => {
    const bundleDir = saltedBundle();
    const changed = runJob({
      job_id: 'changed',
      bundle: bundleDir,
      entrypoint: 'e',
      parameter_sets: [{ mode: 'ok', x: 1.0 }],
      replicates: 1,
    });
    const unchanged = snapshot(changed);
    writeFileSync(path.join(bundleDir, 'wire.py'), `${SALTED_WIRE}\n# edited\n`);
    const ran = cli(['replicate', changed, '--param', '0', '--replicate', '0']);
    assert.equal(ran.code, 2);
    assert.match(
      ran.stderr,
      /The bundle .* changed since job changed ran \(digest [0-9a-f]{12} then, [0-9a-f]{12} now\)/,
    );
    assert.deepEqual(snapshot(changed), unchanged);
  });
});
