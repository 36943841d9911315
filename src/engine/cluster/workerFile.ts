/**
 * Reading one file on a Dask worker through the scheduler (the driver's `dask/read-file`, worker
 * side src/runner/modelops_cluster_read.py): a runner's stderr log in a venv's `logs/`, or a
 * bundle's `pyproject.toml`; nothing else (the worker refuses other paths, symlinks resolved).
 * Size-capped per call; a log is read from where the last call ended, so repeated calls stream
 * what was appended (`LogTail`).
 */
import { RequestType } from 'vscode-jsonrpc';
import type { DriverErrorData } from '../backends/dask/protocol';

/** What one call may read: the worker caps it at 1 MiB too. */
export const READ_MAX_BYTES = 256 * 1024;

export interface ReadFileParams {
  /** The worker's address, as the scheduler knows it. */
  worker: string;
  /** As the worker's facts name it (a runner's `stderr_log.path`, a venv's `logs[].path`, a bundle's `pyproject`). */
  path: string;
  kind: 'log' | 'pyproject';
  /** From this byte; absent: the file's last `max_bytes`. */
  offset?: number;
  max_bytes: number;
  /** How long the worker has to answer. */
  timeout_s: number;
  /** As given to the inspection (else the worker's own environment decides, as there). */
  venvs_dir?: string;
  bundles_dir?: string;
}

export interface ReadFileResult {
  path: string;
  /** The file's size when it was read. */
  size: number;
  /** The bytes read: [start, end). `end` is the next call's offset. */
  start: number;
  end: number;
  text: string;
  /** The offset asked for was past the end: the file was truncated or replaced, read again from its tail. */
  restarted: boolean;
  mtime: number;
}

export const ReadFileRequest = {
  type: new RequestType<ReadFileParams, ReadFileResult, DriverErrorData>('dask/read-file'),
};

/** What to read; whoever reads it gives the worker its deadline. */
export type FileRequest = Omit<ReadFileParams, 'timeout_s'>;
/** Reads a file on a worker (a connected driver's request, with the worker's deadline). */
export type ReadWorkerFile = (params: FileRequest) => Promise<ReadFileResult>;

/**
 * A log followed on a worker: the first read is its tail, every next one what was appended since
 * (or its tail again, said, when it was truncated or replaced).
 */
export class LogTail {
  private offset: number | undefined;

  constructor(
    private readonly read: ReadWorkerFile,
    private readonly params: Omit<FileRequest, 'offset' | 'kind' | 'max_bytes'>,
    private readonly maxBytes = READ_MAX_BYTES,
  ) {}

  /** The new text (empty: nothing appended), and whether bytes before it were skipped. */
  async next(): Promise<{ text: string; skipped: number; restarted: boolean }> {
    const got = await this.read({ ...this.params, kind: 'log', offset: this.offset, max_bytes: this.maxBytes });
    const skipped = this.offset === undefined || got.restarted ? got.start : got.start - this.offset;
    this.offset = got.end;
    return { text: got.text, skipped, restarted: got.restarted };
  }
}

/**
 * The whole file, read `READ_MAX_BYTES` at a time; of a file over `capBytes` its last `capBytes`
 * (`skipped` says how many came before). What is appended while it is read is read too, up to the cap.
 */
export async function readWholeFile(
  read: ReadWorkerFile,
  params: Omit<FileRequest, 'offset' | 'max_bytes'>,
  capBytes: number,
): Promise<{ text: string; size: number; skipped: number }> {
  const first = await read({ ...params, offset: 0, max_bytes: READ_MAX_BYTES });
  const skipped = Math.max(0, first.size - capBytes);
  const parts = skipped === 0 ? [first.text] : [];
  let offset = skipped === 0 ? first.end : skipped;
  let size = first.size;
  while (offset - skipped < capBytes) {
    const got = await read({ ...params, offset, max_bytes: Math.min(READ_MAX_BYTES, capBytes - (offset - skipped)) });
    size = got.size;
    if (got.restarted || got.end === got.start) break; // replaced meanwhile, or the end
    parts.push(got.text);
    offset = got.end;
  }
  return { text: parts.join(''), size, skipped };
}
