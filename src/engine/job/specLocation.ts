/**
 * Where in a job file its refusal points. spec.ts says what is wrong with a field in words
 * (`job.json: replicates must be a whole number…`), which is what the command line prints;
 * the editor also wants the line, to put the diagnostic on and to open. Found from the words:
 * the field the sentence names (`bundle` for a bundle directory that is not one), its n-th
 * occurrence for `parameter_sets[n]`, else line 1.
 */
import * as fs from 'node:fs/promises';
import { Failure, isFailure } from '../failure';

export async function locateInJobFile(error: unknown, file: string): Promise<unknown> {
  if (!isFailure(error) || error.location || error.kind !== 'bad-input') return error;
  // about the file, or about the bundle it names; anything else (a --replicates count) has no line here
  if (!error.message.includes(file) && !/bundle/i.test(error.message)) return error;
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return error; // it could not be read: the message says so, there is no line to show
  return new Failure(error.kind, error.message, error.evidence, { file, line: lineOf(error.message, file, text) });
}

export function lineOf(message: string, file: string, text: string): number {
  const lines = text.split('\n');
  if (/is not valid JSON/.test(message)) return syntaxErrorLine(text) ?? 1;
  const why = message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message;
  // a field named in quotes ("unknown field \"replicate\""), else the path the sentence starts with
  const quoted = /field "([^"]+)"/.exec(why)?.[1];
  const pathMatch = /^([A-Za-z_][\w]*)((?:\[\d+\])?)(?:\.([^\s.]+))?/.exec(why);
  const bundleProblem = !message.startsWith(`${file}: `) && /bundle/i.test(message);
  const key = quoted ?? (bundleProblem ? 'bundle' : (pathMatch?.[3] ?? pathMatch?.[1]));
  if (!key) return 1;
  const keyLine = (name: string, nth = 0): number | undefined => {
    const pattern = new RegExp(`"${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\s*:`);
    const found = lines.map((line, index) => (pattern.test(line) ? index + 1 : 0)).filter(Boolean);
    return found[Math.min(nth, found.length - 1)];
  };
  // parameter_sets[2].beta: parameter sets usually share their keys, so the third "beta"
  const nth = pathMatch?.[2] && pathMatch[3] ? Number(pathMatch[2].slice(1, -1)) : 0;
  return keyLine(key, nth) ?? (pathMatch?.[1] ? keyLine(pathMatch[1]) : undefined) ?? 1;
}

/** The line of a JSON syntax error, from the position V8 names (when it names one). */
function syntaxErrorLine(text: string): number | undefined {
  try {
    JSON.parse(text);
    return undefined; // valid for JSON.parse but not for us (NaN tokens and such): no line to say
  } catch (error) {
    const position = /at position (\d+)/.exec((error as Error).message)?.[1];
    const line = /\(line (\d+) column \d+\)/.exec((error as Error).message)?.[1];
    if (line) return Number(line);
    return position === undefined ? undefined : text.slice(0, Number(position)).split('\n').length;
  }
}
