/**
 * The command line that reproduces one replicate of a job ("Copy Reproduce Command" in the
 * editor): the parameter set named by its 16-digit param_id prefix, which stays right if the job
 * file's sets are reordered, where an index would not.
 */
export function replicateCommandArgs(resultsDir: string, paramId: string, replicate: number): string[] {
  return ['replicate', resultsDir, '--param', paramId.slice(0, 16), '--replicate', String(replicate)];
}

/** For a POSIX shell (bash, zsh, sh): each argument single-quoted when it needs to be. */
export function replicateCommandLine(resultsDir: string, paramId: string, replicate: number, program = 'modelops-debugger'): string {
  return [program, ...replicateCommandArgs(resultsDir, paramId, replicate)].map(shellWord).join(' ');
}

function shellWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
