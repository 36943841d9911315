/**
 * The venvs directory itself, checked before it is used: a file where the directory should be,
 * a path through a file, or a directory that cannot be written is a `venv-create-failed` that
 * names the path and says the errno in words, not a raw `EEXIST: mkdir` from deep inside a build.
 */
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { explainErrno, systemError } from '../errno';
import { Failure } from '../failure';

const CHOOSE_ANOTHER =
  'choose another venvs directory with MODELOPS_VENVS_DIR or --venvs-dir (the modelopsDebugger.venvsDir setting in the editor)';

/**
 * Why `dir` cannot serve: for `list`, only a path that cannot be a directory at all; for `build`,
 * also one in which nothing can be created. Undefined when it can. A directory that does not
 * exist yet is fine (a build creates it) as long as its nearest existing ancestor is a
 * writable directory. Writability is asked of the kernel (access W_OK), which answers EROFS for
 * a read-only mount even to root, and nothing is written to find out.
 */
export async function venvsDirProblem(dir: string, purpose: 'list' | 'build'): Promise<Failure | undefined> {
  const found = await nearestExisting(dir);
  if ('error' in found) return problem(dir, `${found.at} cannot be examined`, found.error);
  const { at, stat } = found;
  if (!stat.isDirectory()) {
    const what = at === dir ? `is a file, not a directory` : `cannot be created: ${at} is a file, not a directory`;
    return new Failure(
      'venv-create-failed',
      `The venvs directory ${dir} ${what} (${explainErrno('ENOTDIR')}); ${CHOOSE_ANOTHER}.`,
      {
        notes: [`venvs directory: ${dir}`],
      },
    );
  }
  if (purpose === 'list') return undefined;
  try {
    await fs.access(at, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const doing = at === dir ? `nothing can be created in it` : `it cannot be created in ${at}`;
    return problem(dir, doing, error);
  }
}

function problem(dir: string, doing: string, error: unknown): Failure {
  const system = systemError(error);
  const why = system ? explainErrno(system.code) : String(error);
  return new Failure(
    'venv-create-failed',
    `The venvs directory ${dir} cannot be used: ${doing} (${why}); ${CHOOSE_ANOTHER}.`,
    {
      notes: [
        `venvs directory: ${dir}`,
        ...(system?.syscall ? [`${system.syscall} ${system.path ?? ''}: ${system.message}`.trim()] : []),
      ],
    },
  );
}

/** `dir`, or the closest of its ancestors that exists, with what it is. */
async function nearestExisting(
  dir: string,
): Promise<{ at: string; stat: import('node:fs').Stats } | { at: string; error: unknown }> {
  let at = path.resolve(dir);
  for (;;) {
    try {
      return { at, stat: await fs.stat(at) };
    } catch (error) {
      const code = systemError(error)?.code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || path.dirname(at) === at) return { at, error };
      at = path.dirname(at);
    }
  }
}
