/** Which stray stdout writes would break production's runner. */
import type { StdoutCaptureParams } from '../protocol';

/**
 * Production wraps only the *call* of the wire and target functions in
 * `redirect_stdout(sys.stderr)`. So a Python-level print there is harmless; anything at
 * import time, and any fd-level write at any time, corrupts production's frames.
 */
export function breaksProduction(capture: StdoutCaptureParams): boolean {
  if (capture.source === 'sys.stdout') return capture.phase !== 'execute' && capture.phase !== 'aggregate';
  return true;
}
