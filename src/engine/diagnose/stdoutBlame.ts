/** Which stray stdout writes would break production's runner, and how that is said. */
import type { SourceLocation } from '../failure';
import type { StdoutCaptureParams } from '../protocol';
import { showBytes } from './classify';
import { locate } from './pythonTrace';

/**
 * Production wraps only the *call* of the wire and target functions in
 * `redirect_stdout(sys.stderr)`. So a Python-level print there is harmless; anything at
 * import time, and any fd-level write at any time, corrupts production's frames. So does a
 * background thread's print, whenever it happens: the thread runs on between tasks, when
 * production's sys.stdout is the protocol stream again.
 */
export function breaksProduction(capture: StdoutCaptureParams): boolean {
  if (capture.source === 'sys.stdout' && !capture.thread)
    return capture.phase !== 'execute' && capture.phase !== 'aggregate';
  return true;
}

const SOURCE_WORDS: Record<StdoutCaptureParams['source'], string> = {
  'sys.stdout': 'print()/sys.stdout',
  'os.write': 'os.write(1, …)',
  fd: 'write to fd 1 (a child process or C code)',
  suppressed: 'further writes',
};

const PHASE_WORDS: Record<string, string> = {
  starting: 'at start-up',
  discovering: 'while the wire function was looked up',
  importing: 'at import',
  serving: 'between requests',
  execute: 'during execute',
  'aggregate-import': 'while importing the target',
  aggregate: 'during aggregate',
};

/**
 * How a stray write is said, by handshakes and jobs alike: who wrote what and when, and what
 * production's runner would make of it. `location`: where it was blamed, if anywhere;
 * `blameIsGuess`: say so when that line is only where the main thread was (a handshake's
 * blame; a job's child write is blamed on the process its task started).
 */
export function pollutionMessage(
  capture: StdoutCaptureParams,
  location: SourceLocation | undefined,
  textLimit = 120,
  blameIsGuess = true,
): string {
  const text = showBytes(Buffer.from(capture.bytes_b64, 'base64'), textLimit);
  const writer = capture.thread ? `print from thread ${JSON.stringify(capture.thread)}` : SOURCE_WORDS[capture.source];
  const what =
    capture.source === 'suppressed'
      ? `${capture.size} more bytes written to stdout (not reported one by one)`
      : `${writer} ${PHASE_WORDS[capture.phase] ?? `during ${capture.phase}`} wrote "${text}" to stdout`;
  const blame =
    blameIsGuess && capture.approximate && location ? ' (the line the main thread was on when the bytes arrived)' : '';
  return `${what}${blame}; this runner absorbed it, but it would corrupt the production runner's frames ("Invalid header" / "Stream closed while reading headers")`;
}

/**
 * The warning for a write our runner absorbed but production's would have broken on, once per
 * source line (`warned` remembers them), or undefined.
 */
export function pollutionWarning(
  capture: StdoutCaptureParams,
  bundleDir: string,
  warned: Set<string>,
): { message: string; location?: SourceLocation } | undefined {
  if (!breaksProduction(capture)) return undefined;
  const location = locate(capture.stack, bundleDir);
  const where = location ? `${location.file}:${location.line}` : capture.text;
  if (warned.has(where)) return undefined;
  warned.add(where);
  return { message: pollutionMessage(capture, location, 80, false), location };
}
