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
  if (capture.source === 'sys.stdout' && !capture.thread) return capture.phase !== 'execute' && capture.phase !== 'aggregate';
  return true;
}

/**
 * The warning for a write our runner absorbed but production's would have broken on, once per
 * source line (`warned` remembers them), or undefined.
 */
export function pollutionWarning(capture: StdoutCaptureParams, bundleDir: string, warned: Set<string>): { message: string; location?: SourceLocation } | undefined {
  if (!breaksProduction(capture)) return undefined;
  const location = locate(capture.stack, bundleDir);
  const where = location ? `${location.file}:${location.line}` : capture.text;
  if (warned.has(where)) return undefined;
  warned.add(where);
  const text = showBytes(Buffer.from(capture.bytes_b64, 'base64'), 80);
  const writer = capture.thread ? `print from thread ${JSON.stringify(capture.thread)}` : capture.source === 'fd' ? 'write to fd 1 (a child process or C code)' : 'stdout write';
  return { message: `${writer} during ${capture.phase} ("${text}") would corrupt the production runner's frames`, location };
}
