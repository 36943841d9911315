/**
 * `npm run bench:runner-cost`: what our runner spends per trivial request, its own CPU (user +
 * system, all its threads, from /proc/<pid>/stat; Linux only) and the round trip, with its
 * per-task measures (wall, CPU, peak RSS: task_usage) and without them (MODELOPS_RESOURCES=off),
 * side by side in interleaved rounds. Requests go two in flight, as in jobs (queue depth 2), to
 * one warm runner. Issue 15's goal is the whole bookkeeping within 5 % of the trivial job; this
 * isolates the runner's share of it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExecuteRequest } from '../../src/engine/protocol';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { WarmProcess } from '../../src/engine/process/warmProcess';
import { median } from './stats';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);

/** Ticks of CPU (user + system) a process has used: fields 14 and 15 of /proc/<pid>/stat. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function measure(
  python: string,
  env: Record<string, string>,
  bundleDir: string,
): Promise<{ cpuUs: number; tripUs: number }> {
  const runner = WarmProcess.start({
    python,
    runnerScript: ourRunnerScript(),
    bundleDir,
    venvPath: '',
    bundleDigest: 'bench',
    env,
  });
  try {
    await runner.ready(30_000);
    const one = (seed: number) =>
      runner.request(ExecuteRequest.type, { entrypoint: 'm.m/x', params: { x: 1 }, seed }, { timeoutMs: 30_000 });
    for (let i = 0; i < 500; i++) await one(i); // warm
    const pid = runner.pid!;
    const ticks = cpuTicks(pid);
    const began = performance.now();
    let next = 0;
    const lane = async () => {
      while (next < REQUESTS) await one(next++);
    };
    await Promise.all([lane(), lane()]);
    const ms = performance.now() - began;
    const cpuS = (cpuTicks(pid) - ticks) / 100; // USER_HZ is 100 on Linux
    return { cpuUs: (cpuS * 1e6) / REQUESTS, tripUs: (ms * 1000) / REQUESTS };
  } finally {
    await runner.kill();
  }
}

async function main(): Promise<void> {
  if (!existsSync('/proc/self/stat')) {
    console.log('bench:runner-cost reads /proc/<pid>/stat: Linux only; nothing measured here.');
    return;
  }
  const python = (await resolvePython('/usr/bin/python3')).path;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mo-runner-cost-'));
  writeFileSync(path.join(dir, 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {"value": b"1"}\n');
  const contestants: [string, Record<string, string>][] = [
    ['measuring', {}],
    ['not measuring', { MODELOPS_RESOURCES: 'off' }],
  ];
  const results = new Map<string, { cpu: number[]; trip: number[] }>(
    contestants.map(([name]) => [name, { cpu: [], trip: [] }]),
  );
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const said: string[] = [];
      for (const [name, env] of round % 2 ? contestants : [...contestants].reverse()) {
        const { cpuUs, tripUs } = await measure(python, env, dir);
        results.get(name)!.cpu.push(cpuUs);
        results.get(name)!.trip.push(tripUs);
        said.push(`${name} ${cpuUs.toFixed(1)} µs CPU, ${tripUs.toFixed(1)} µs a request`);
      }
      console.log(`round ${round}/${ROUNDS}: ${said.join('; ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${REQUESTS} trivial requests to one warm runner, two in flight; medians of ${ROUNDS} rounds`);
  for (const [name, { cpu, trip }] of results)
    console.log(
      `  ${name.padEnd(13)} runner CPU ${median(cpu).toFixed(1)} µs/request, round trip ${median(trip).toFixed(1)} µs`,
    );
  const on = results.get('measuring')!;
  const off = results.get('not measuring')!;
  console.log(
    `  what measuring costs: ${(median(on.cpu) - median(off.cpu)).toFixed(1)} µs of runner CPU, ${(median(on.trip) - median(off.trip)).toFixed(1)} µs a round trip`,
  );
}

main().catch((error) => {
  console.error(`bench:runner-cost could not run: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
});
