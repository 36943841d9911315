/**
 * stdout and stderr as a Unix filter's: a reader that goes away (`run --json | head -1`, a
 * closed terminal) is ordinary use, not a reason to lose the job. Without a listener, Node turns
 * a write error (EPIPE, EIO) into an uncaught exception that kills the process mid-job; here
 * the first error on stdout is said once on stderr and the command goes on without stdout
 * (every event is in events.jsonl anyway); an error on stderr silences stderr.
 */

const closed = { stdout: false, stderr: false };
let guarded = false;

/** Installs the listeners once per process (idempotent). */
export function guardStdio(): void {
  if (guarded) return;
  guarded = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (closed.stdout) return;
    closed.stdout = true;
    writeStderr(
      `modelops-debugger: stdout was closed (${error.code ?? error.message}): nothing more is written there; the command goes on (a job's events are all in its events.jsonl)\n`,
    );
  });
  process.stderr.on('error', () => {
    closed.stderr = true;
  });
}

/** False once a write to stdout has failed: callers may skip building what nobody reads. */
export function stdoutOpen(): boolean {
  return !closed.stdout;
}

export function writeStdout(text: string): void {
  if (!closed.stdout) process.stdout.write(text);
}

export function writeStderr(text: string): void {
  if (!closed.stderr) process.stderr.write(text);
}
