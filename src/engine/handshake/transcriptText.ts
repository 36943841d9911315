/**
 * JSON-RPC traffic as people read it, one line per frame: the editor's protocol trace and its
 * transcript view both show runners' conversations this way.
 *
 *   +12.4 ms → #2 execute {"entrypoint":"m.m/x","params":{"x":1.0},"seed":7}
 *   +14.0 ms ← #2 result {"value":"MQ=="}
 *   +14.1 ms ← runner/phase {"phase":"serving"}
 *   +15.0 ms ← stdout that is not a frame: "Loading model weights...\n"
 */
import { stringifyWireJson } from '../pyjson/pyjson';
import type { TranscriptEntry } from '../process/warmProcess';
import type { TranscriptFile } from './handshake';

/** How much of a frame's payload a line shows: a glance, or (verbose) nearly all of it. */
const SHOWN_CHARS = { brief: 160, verbose: 10_000 };

export function describeEntry(entry: TranscriptEntry, verbose = false): string {
  const arrow = entry.dir === 'out' ? '→' : '←';
  const at = `+${entry.t.toFixed(1)} ms`;
  if ('noise' in entry) return `${at} ${arrow} stdout that is not a frame: ${JSON.stringify(entry.noise)}`;
  const message = entry.message as {
    id?: number | string | null;
    method?: string;
    params?: unknown;
    result?: unknown;
    error?: { code?: number; message?: string; data?: unknown };
  };
  const limit = verbose ? SHOWN_CHARS.verbose : SHOWN_CHARS.brief;
  const id = message.id !== undefined && message.id !== null ? `#${message.id} ` : '';
  if (message.method !== undefined) return `${at} ${arrow} ${id}${message.method}${payload(message.params, limit)}`;
  if (message.error)
    return `${at} ${arrow} ${id}error ${message.error.code ?? ''} ${message.error.message ?? ''}${verbose ? payload(message.error.data, limit) : ''}`;
  return `${at} ${arrow} ${id}result${payload(message.result, limit)}`;
}

export function renderTranscript(transcript: TranscriptFile, verbose = true): string {
  return [
    `runner:   ${transcript.runner}`,
    `python:   ${transcript.python}`,
    `bundle:   ${transcript.bundle}`,
    `recorded: ${transcript.recordedAt}`,
    '',
    ...transcript.entries.map((entry) => describeEntry(entry, verbose)),
    '',
  ].join('\n');
}

function payload(value: unknown, limit: number): string {
  if (value === undefined) return '';
  const text = stringifyWireJson(value);
  return ` ${text.length > limit ? `${text.slice(0, limit)}… (${text.length} chars)` : text}`;
}
