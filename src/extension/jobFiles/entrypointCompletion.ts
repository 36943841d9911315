/**
 * Completion of `entrypoint` and `targets` values in a job file: the entrypoints its bundle
 * offers (engine/bundle/entrypoints.ts reads them from the bundle's files, never importing
 * it). The JSON Schema (schemas/job-file.schema.json) does the rest of the completion and the
 * validation, through VS Code's JSON language service.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { findEntrypoints, type FoundEntrypoint } from '../../engine/bundle/entrypoints';
import { recogniseJob } from '../../engine/job/spec';

/** A bundle's entrypoints are read again at most this often while one types. */
const CACHE_MS = 3000;

export function registerEntrypointCompletion(): vscode.Disposable {
  const cache = new Map<string, { at: number; found: Promise<FoundEntrypoint[]> }>();
  const entrypointsOf = (bundleDir: string) => {
    const cached = cache.get(bundleDir);
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.found;
    // a bundle that is missing or too big offers nothing to complete; the run says why
    const found = findEntrypoints(bundleDir).catch(() => []);
    cache.set(bundleDir, { at: Date.now(), found });
    return found;
  };
  return vscode.languages.registerCompletionItemProvider(
    [
      { language: 'json', scheme: 'file' },
      { language: 'jsonc', scheme: 'file' },
    ],
    {
      async provideCompletionItems(document, position) {
        const text = document.getText();
        const offset = document.offsetAt(position);
        const where = valueAt(text, offset);
        if (!where) return undefined;
        const bundle = bundleOf(text);
        if (!bundle) return undefined;
        const found = (await entrypointsOf(path.resolve(path.dirname(document.uri.fsPath), bundle))).filter(
          (entry) => entry.kind === where.kind,
        );
        const range =
          where.stringStart === undefined
            ? undefined
            : new vscode.Range(document.positionAt(where.stringStart + 1), position);
        return found.map((entry) => {
          const item = new vscode.CompletionItem(entry.value, vscode.CompletionItemKind.Value);
          item.detail = `${entry.kind} entrypoint · ${path.relative(path.resolve(path.dirname(document.uri.fsPath), bundle), entry.file)}:${entry.line}`;
          item.insertText = range ? entry.value : JSON.stringify(entry.value);
          if (range) item.range = range;
          item.sortText = `0${entry.value}`; // before the schema's generic suggestions
          return item;
        });
      },
    },
    '"',
  );
}

/** The job's `bundle` as written, when the document is a job file (even one half typed). */
function bundleOf(text: string): string | undefined {
  try {
    const shape = recogniseJob(JSON.parse(text));
    return shape?.bundle;
  } catch {
    // mid-edit: the document is not JSON right now; its bundle line usually is
    const match = /"bundle"\s*:\s*"((?:[^"\\\n]|\\.)+)"/.exec(text);
    return match && /"parameter_sets"\s*:/.test(text) ? (JSON.parse(`"${match[1]}"`) as string) : undefined;
  }
}

interface Frame {
  type: 'object' | 'array';
  /** The property whose value is being read (objects), or the key this container is the value of. */
  key?: string;
  parentKey?: string;
  expectingKey: boolean;
}

/**
 * Which completion applies at `offset`: an `entrypoint` value (a model entrypoint), or an item
 * of `targets` (a target entrypoint). A small scan of the JSON up to the cursor, tolerant of
 * the document being half written; `stringStart` is the opening quote when inside a string.
 */
export function valueAt(
  text: string,
  offset: number,
): { kind: FoundEntrypoint['kind']; stringStart?: number } | undefined {
  const stack: Frame[] = [];
  let pendingKey: string | undefined;
  let i = 0;
  while (i < offset) {
    const char = text[i];
    if (char === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"' && text[end] !== '\n') end += text[end] === '\\' ? 2 : 1;
      if (end >= offset) return decide(stack, i); // the cursor is in this string
      const value = text.slice(i + 1, end);
      const top = stack[stack.length - 1];
      if (top?.type === 'object' && top.expectingKey) pendingKey = value;
      i = end + 1;
      continue;
    }
    const top = stack[stack.length - 1];
    if (char === '{' || char === '[')
      stack.push({
        type: char === '{' ? 'object' : 'array',
        parentKey: top?.type === 'object' ? top.key : top?.parentKey,
        expectingKey: char === '{',
      });
    else if (char === '}' || char === ']') stack.pop();
    else if (char === ':' && top?.type === 'object') {
      top.key = pendingKey;
      top.expectingKey = false;
    } else if (char === ',' && top?.type === 'object') {
      top.expectingKey = true;
      top.key = undefined;
    }
    i++;
  }
  return decide(stack, undefined);
}

function decide(stack: Frame[], stringStart: number | undefined): ReturnType<typeof valueAt> {
  const top = stack[stack.length - 1];
  if (!top) return undefined;
  if (top.type === 'object' && !top.expectingKey && top.key === 'entrypoint') return { kind: 'model', stringStart };
  if (top.type === 'array' && (top.parentKey === 'targets' || top.parentKey === 'target_entrypoints'))
    return { kind: 'target', stringStart };
  return undefined;
}
