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

const SKIPPED_DIRS = new Set(['.git', '__pycache__', '.venv', 'venv', 'node_modules', '.tox', '.mypy_cache', '.pytest_cache', '.ruff_cache', '.ipynb_checkpoints']);
const SKIPPED_FILE = /(\.py[co]|^\.DS_Store)$/;

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
    throw new Failure('bad-input', `${absolute} is a file, not a bundle directory.`);
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

/** POSIX relative paths of the files that count, sorted by byte order. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(relative: string): Promise<void> {
    const entries = await fs.readdir(path.join(dir, relative), { withFileTypes: true });
    for (const entry of entries) {
      const rel = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) await walk(rel);
      } else if ((entry.isFile() || entry.isSymbolicLink()) && !SKIPPED_FILE.test(entry.name)) {
        out.push(rel);
      }
    }
  }
  await walk('');
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
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
