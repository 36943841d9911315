/**
 * Replaying a recorded transcript: the same requests, in order, to a fresh runner, and the
 * differences between what it answers now and what was recorded. Pids, interpreter and venv
 * paths, the bundle's location and all timings are ignored: they differ on every run.
 */
import { readInputFile } from '../inputFile';
import { isDeepStrictEqual } from 'node:util';
import { Failure, isFailure } from '../failure';
import type { RequestType } from 'vscode-jsonrpc';
import { WarmProcess } from '../process/warmProcess';
import { prepareRunner } from '../runtime/prepare';
import type { HandshakeOptions, TranscriptFile } from './handshake';
import { describeOutput } from './outputs';

export interface ReplayDifference {
  /** "#2 execute" */
  request: string;
  /** Where in the response, e.g. "result.result" or "error.data.exc". */
  path: string;
  recorded: unknown;
  replayed: unknown;
}

export interface ReplayReport {
  same: boolean;
  requests: number;
  differences: ReplayDifference[];
  message: string;
}

interface RecordedExchange {
  id: number;
  method: string;
  params: unknown;
  response: unknown;
}

/** Parameters that vary between runs and say nothing about the bundle's behaviour. */
const VOLATILE_READY_FIELDS = ['pid', 'python', 'venv'];
const SHUTDOWN = 'shutdown';

export async function readTranscript(file: string): Promise<TranscriptFile> {
  const text = await readInputFile(file, 'a transcript');
  let parsed: TranscriptFile;
  try {
    parsed = JSON.parse(text) as TranscriptFile;
  } catch (error) {
    throw new Failure('bad-input', `Transcript ${file} is not JSON: ${(error as Error).message}.`);
  }
  if (parsed?.version !== 1 || !Array.isArray(parsed.entries)) {
    throw new Failure(
      'bad-input',
      `Transcript ${file} is not a modelops-debugger transcript (version 1 with entries).`,
    );
  }
  return parsed;
}

export function recordedExchanges(transcript: TranscriptFile): RecordedExchange[] {
  const responses = new Map<number, unknown>();
  const requests: RecordedExchange[] = [];
  for (const entry of transcript.entries) {
    if (!('message' in entry) || !entry.message || typeof entry.message !== 'object') continue;
    const message = entry.message as { id?: number; method?: string; params?: unknown };
    if (entry.dir === 'out' && typeof message.id === 'number' && message.method && message.method !== SHUTDOWN) {
      requests.push({ id: message.id, method: message.method, params: message.params, response: undefined });
    } else if (entry.dir === 'in' && typeof message.id === 'number' && !message.method) {
      responses.set(message.id, message);
    }
  }
  for (const request of requests) request.response = responses.get(request.id);
  return requests;
}

export async function replay(transcript: TranscriptFile, options: HandshakeOptions): Promise<ReplayReport> {
  const { bundleDir, python, runnerScript, digest, venv, lease } = await prepareRunner(options);
  const exchanges = recordedExchanges(transcript);
  const runner = WarmProcess.start({
    python,
    runnerScript,
    bundleDir,
    venvPath: venv,
    bundleDigest: digest,
    env: options.env,
    maxFrameBytes: options.maxFrameBytes,
    onStderr: options.onStderr,
  });
  const differences: ReplayDifference[] = [];
  try {
    for (const [index, exchange] of exchanges.entries()) {
      const label = `#${index + 1} ${exchange.method}`;
      const replayed = await runner
        .request({ method: exchange.method } as RequestType<unknown, unknown, unknown>, exchange.params ?? {}, {
          timeoutMs: options.timeoutMs,
        })
        .then(
          (result) => ({ result }),
          (error: unknown) => ({ error: failureShape(error) }),
        );
      const recorded = normalize(exchange.method, exchange.response, transcript.bundle);
      const now = normalize(exchange.method, replayed, bundleDir);
      diff(recorded, now, '', (path, a, b) => differences.push({ request: label, path, recorded: a, replayed: b }));
      if ('error' in replayed && !runner.alive) break; // the runner is gone; later requests cannot be compared
    }
  } finally {
    await runner.shutdown();
    await lease?.release();
  }
  const message =
    differences.length === 0
      ? `Replayed ${exchanges.length} request${exchanges.length === 1 ? '' : 's'} against a fresh runner: no differences.`
      : `Replayed ${exchanges.length} request${exchanges.length === 1 ? '' : 's'}: ${differences.length} difference${differences.length === 1 ? '' : 's'}.`;
  return { same: differences.length === 0, requests: exchanges.length, differences, message };
}

/** A failure in the shape of a recorded JSON-RPC error, so the two compare field by field. */
function failureShape(error: unknown): unknown {
  if (!isFailure(error)) return { message: String(error) };
  const exception = error.evidence.exception;
  return exception
    ? { kind: error.kind, data: { exc_type: exception.type, exc: exception.message } }
    : { kind: error.kind, message: error.message };
}

/** The comparable part of a response: volatile fields dropped, outputs decoded, paths relative. */
function normalize(method: string, response: unknown, bundleDir: string): unknown {
  if (!response || typeof response !== 'object') return response;
  const { result, error } = response as {
    result?: unknown;
    error?: { code?: number; message?: string; data?: Record<string, unknown>; kind?: string };
  };
  if (error !== undefined) {
    const data = error.data ?? {};
    if (data.exc_type === undefined) return { error: { failure: `${error.kind ?? error.code}: ${error.message}` } };
    // recorded errors carry a code, replayed ones a failure kind: compare what user code raised
    return {
      error: {
        data: {
          exc_type: data.exc_type,
          exc: typeof data.exc === 'string' ? data.exc.split(bundleDir).join('<bundle>') : data.exc,
        },
      },
    };
  }
  if (method === 'ready' && result && typeof result === 'object') {
    const copy: Record<string, unknown> = { ...(result as Record<string, unknown>) };
    for (const field of VOLATILE_READY_FIELDS) delete copy[field];
    return { result: copy };
  }
  if (method === 'execute' && result && typeof result === 'object') {
    const outputs = Object.entries(result as Record<string, string>).map(([name, b64]) => {
      const view = describeOutput(b64, Number.MAX_SAFE_INTEGER);
      return [name, view.text ?? b64];
    });
    return { result: Object.fromEntries(outputs) };
  }
  return { result };
}

function diff(a: unknown, b: unknown, path: string, report: (path: string, a: unknown, b: unknown) => void): void {
  if (isDeepStrictEqual(a, b)) return;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      diff(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        path ? `${path}.${key}` : key,
        report,
      );
    }
    return;
  }
  report(path || '(response)', a, b);
}
