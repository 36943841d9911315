/**
 * The frame cap: the largest JSON-RPC message the engine reads from a runner or the Dask
 * driver. A bigger frame is never allocated; a result over it is `result-too-large`. Our runner
 * is told the cap (MAX_FRAME_ENV) so that it measures its answer and refuses before sending.
 */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** The same in MiB, as `--max-frame-mb` and the editor's setting say it. */
export const DEFAULT_FRAME_MB = DEFAULT_MAX_FRAME_BYTES / (1024 * 1024);
/** The environment variable that tells a runner (ours; production's ignores it) the cap in bytes. */
export const MAX_FRAME_ENV = 'MODELOPS_MAX_FRAME_BYTES';
/**
 * What a Dask driver's report of one simulation may carry beside its outputs (its stderr, up to
 * 1 MiB, stdout captures, the facts of failed attempts): its frames may be this much larger.
 */
export const DRIVER_FRAME_SLACK_BYTES = 16 * 1024 * 1024;

/** `--max-frame-mb` (MiB, fractions allowed) in bytes. */
export function frameCapBytes(megabytes: number | undefined): number {
  return megabytes === undefined ? DEFAULT_MAX_FRAME_BYTES : Math.floor(megabytes * 1024 * 1024);
}

/** Bytes as a person reads them: "20.0 MB" (MiB), "512 bytes". */
export function showSize(bytes: number): string {
  return bytes < 1024 * 1024 ? `${bytes} bytes` : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
