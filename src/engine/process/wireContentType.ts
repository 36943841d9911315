/**
 * How vscode-jsonrpc encodes and decodes message bodies on our pipes: JSON as Python reads and
 * writes it (NaN, big integers, floats that stay floats), for runners and the Dask driver alike.
 */
import type { Message } from 'vscode-jsonrpc';
import { parseWireJson, stringifyWireJson } from '../pyjson/pyjson';

export const WIRE_JSON_CONTENT_TYPE = {
  name: 'application/json; charset=utf-8',
  encode: (message: Message) => Promise.resolve(Buffer.from(stringifyWireJson(message), 'utf8')),
  decode: (buffer: Uint8Array) => Promise.resolve(parseWireJson(Buffer.from(buffer).toString('utf8')) as Message),
};
