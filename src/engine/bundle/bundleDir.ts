/**
 * A bundle directory: checked before anything runs, and identified by a digest of its files.
 *
 * Digest formula (bundle identity, `sha256:`-less hex, 64 digits):
 *
 *     sha256( "modelops-debugger:bundle:v1\n"
 *             + for each file, sorted by its POSIX relative path (byte order):
 *                   relpath + "\0" + size + "\0" + sha256(content) + "\n" )
 *
 * Skipped: the directories `.git`, `__pycache__`, `.venv`, `venv`, `node_modules`, `.tox`,
 * `.mypy_cache`, `.pytest_cache`, `.ruff_cache`, `.ipynb_checkpoints`, and the files
 * `*.pyc`, `*.pyo`, `.DS_Store`. Symbolic links are not followed (their target may lie
 * outside the bundle); a link counts as `relpath + "\0link\0" + target + "\n"`.
 * Content only: unlike production's file repository, mtimes do not count, so a checkout
 * that touches nothing keeps its digest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Failure } from '../failure';
import { describeSpecialFile } from '../inputFile';

const SKIPPED_DIRS = new Set([
  '.git',
  '__pycache__',
  '.venv',
  'venv',
  'node_modules',
  '.tox',
  '.mypy_cache',
  '.pytest_cache',
  '.ruff_cache',
  '.ipynb_checkpoints',
]);
const SKIPPED_FILE = /(\.py[co]|^\.DS_Store)$/;

/**
 * A bundle is a project folder, not a disk: above this many files (the skipped folders above
 * not counted) a directory is refused before anything is created, rather than digested, copied
 * into a venv's checklist or shipped to Dask workers.
 */
export const MAX_BUNDLE_FILES = 10_000;

/** The bundle's absolute path, or a `bad-input` failure that says in one sentence what is wrong. */
export async function checkBundleDir(dir: string): Promise<string> {
  const absolute = path.resolve(dir);
  let stat;
  try {
    stat = await fs.stat(absolute);
  } catch {
    throw new Failure('bad-input', `Bundle directory ${absolute} does not exist.`);
  }
  if (!stat.isDirectory()) {
    throw new Failure('bad-input', `${absolute} is ${describeSpecialFile(stat) ?? 'a file'}, not a bundle directory.`);
  }
  const real = await fs.realpath(absolute);
  if (real === path.parse(real).root) {
    throw new Failure(
      'bad-input',
      `${absolute === real ? absolute : `${absolute} (${real})`} is the root of the file system, not a bundle directory.`,
    );
  }
  // counted with an early stop: a home directory or a checkout of everything is never walked whole
  const counted = await countFiles(absolute, MAX_BUNDLE_FILES + 1);
  if (counted > MAX_BUNDLE_FILES) {
    throw new Failure(
      'bad-input',
      `${absolute} holds more than ${MAX_BUNDLE_FILES} files, too many for a bundle directory (.git, .venv, node_modules and caches are not counted).`,
    );
  }
  return absolute;
}

export async function bundleDigest(dir: string): Promise<string> {
  const files = await listFiles(dir);
  const digest = createHash('sha256').update('modelops-debugger:bundle:v1\n');
  for (const file of files) {
    const full = path.join(dir, ...file.split('/'));
    const stat = await fs.lstat(full);
    if (stat.isSymbolicLink()) {
      digest.update(`${file}\0link\0${await fs.readlink(full)}\n`);
    } else {
      digest.update(`${file}\0${stat.size}\0${await sha256File(full)}\n`);
    }
  }
  return digest.digest('hex');
}

/** POSIX relative paths of the files that count, sorted by byte order; a bundle over MAX_BUNDLE_FILES is refused. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  await walkFiles(dir, (rel) => {
    out.push(rel);
    if (out.length > MAX_BUNDLE_FILES) {
      throw new Failure(
        'bad-input',
        `${dir} holds more than ${MAX_BUNDLE_FILES} files, too many for a bundle directory.`,
      );
    }
    return true;
  });
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** The files that count, up to `limit` (the walk stops there). */
async function countFiles(dir: string, limit: number): Promise<number> {
  let count = 0;
  await walkFiles(dir, () => ++count < limit);
  return count;
}

/**
 * Visits the files that count, in directory order, until `visit` returns false. Entries are
 * read as a stream (opendir), so one huge directory costs no more than the files visited;
 * symbolic links are never followed.
 */
async function walkFiles(dir: string, visit: (relative: string) => boolean): Promise<boolean> {
  async function walk(relative: string): Promise<boolean> {
    const where = path.join(dir, relative);
    let entries;
    try {
      entries = await fs.opendir(where, { bufferSize: 256 }); // entries read in batches, not one system call each
    } catch (error) {
      throw new Failure(
        'bad-input',
        `${where} in the bundle cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`,
      );
    }
    // breaking out of the loop closes the directory
    for await (const entry of entries) {
      const rel = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name) && !(await walk(rel))) return false;
      } else if ((entry.isFile() || entry.isSymbolicLink()) && !SKIPPED_FILE.test(entry.name)) {
        if (!visit(rel)) return false;
      }
    }
    return true;
  }
  return walk('');
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}
