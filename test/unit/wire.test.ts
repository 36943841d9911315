/** The byte-level pieces of the wire: JSON as Python writes it, and the stdout tap. */
import * as assert from 'node:assert/strict';
import { parse } from 'lossless-json';
import { StdoutTap, type TapEvent } from '../../src/engine/process/stdoutTap';
import { parsePythonJson, parseWireJson, PyFloat, stringifyWireJson } from '../../src/engine/pyjson/pyjson';

function frame(body: string): Buffer {
  return Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function tapAll(chunks: Buffer[], cap = 1024): TapEvent[] {
  const events: TapEvent[] = [];
  const tap = new StdoutTap(cap, (event) => events.push(event));
  for (const chunk of chunks) tap.push(chunk);
  tap.end();
  return events;
}

function describeEvents(events: TapEvent[]): string[] {
  return events.map((e) =>
    e.type === 'violation'
      ? `violation:${e.reason}`
      : e.type === 'oversized'
        ? `oversized:${e.length}`
        : e.type === 'frame'
          ? `frame:${e.header}${e.text}`
          : `noise:${e.bytes.toString('latin1')}`,
  );
}

describe('wire JSON', () => {
  it("reads Python's NaN, Infinity and -Infinity, but not inside strings", () => {
    const value = parseWireJson('{"loss":NaN,"hi":Infinity,"lo":-Infinity,"s":"NaN and -Infinity"}') as Record<
      string,
      unknown
    >;
    assert.ok(Number.isNaN(value.loss));
    assert.equal(value.hi, Infinity);
    assert.equal(value.lo, -Infinity);
    assert.equal(value.s, 'NaN and -Infinity');
  });

  it('keeps integers above 2^53 exact', () => {
    assert.deepEqual(parseWireJson('{"seed":18446744073709551615,"small":3}'), {
      seed: 18446744073709551615n,
      small: 3,
    });
  });

  it('every number literal keeps its kind, at every length: short integers (passed over without a token), the 2^53 boundary, floats, exponents, negatives', () => {
    const literals = [
      ...Array.from({ length: 20 }, (_, n) => '9'.repeat(n + 1)),
      ...Array.from({ length: 20 }, (_, n) => `-${'9'.repeat(n + 1)}`),
      ...['0', '-0', '7', '9007199254740991', '9007199254740992', '9007199254740993', '-9007199254740993'],
      ...['0.5', '-0.5', '1.0', '1e5', '1E+2', '-2e-3', '123456789012345.5', '12345678901234567890.0'],
    ];
    const text = `[${literals.join(', ')}]`;
    const python = parsePythonJson(text) as unknown[];
    const wire = parseWireJson(text) as unknown[];
    literals.forEach((literal, i) => {
      const float = /[.eE]/.test(literal);
      const exact = BigInt(float ? 0 : literal);
      const safe = !float && exact >= BigInt(Number.MIN_SAFE_INTEGER) && exact <= BigInt(Number.MAX_SAFE_INTEGER);
      if (float) {
        assert.ok(python[i] instanceof PyFloat, `${literal}: a float for Python`);
        assert.equal((python[i] as PyFloat).value, Number(literal), literal);
        assert.equal(wire[i], Number(literal), literal);
      } else if (safe) {
        assert.ok(Object.is(python[i], Number(literal)), `${literal}: a number`);
        assert.ok(Object.is(wire[i], Number(literal)), `${literal}: a number on the wire`);
      } else {
        assert.equal(python[i], exact, `${literal}: a bigint`);
        assert.equal(wire[i], exact, `${literal}: a bigint on the wire`);
      }
    });
  });

  it('writes bigints digit for digit and user-typed 1.0 as a float', () => {
    assert.equal(
      stringifyWireJson({ seed: 2n ** 64n - 1n, params: parse('{"beta":1.0,"n":2}') }),
      '{"seed":18446744073709551615,"params":{"beta":1.0,"n":2}}',
    );
    assert.equal(stringifyWireJson({ a: 'é', b: [1, 2.5] }), '{"a":"é","b":[1,2.5]}');
  });
});

describe('StdoutTap', () => {
  it('passes whole frames through, however the bytes are split', () => {
    const bytes = Buffer.concat([frame('{"id":1}'), frame('{"id":2}')]);
    for (let size = 1; size <= bytes.length; size += 3) {
      const chunks = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
      assert.deepEqual(
        describeEvents(tapAll(chunks)),
        ['frame:Content-Length: 8\r\n\r\n{"id":1}', 'frame:Content-Length: 8\r\n\r\n{"id":2}'],
        `chunk size ${size}`,
      );
    }
  });

  it('separates a stray print before a frame, verbatim', () => {
    const events = tapAll([Buffer.from('Loading model weights...\n'), frame('{}')]);
    assert.deepEqual(describeEvents(events), ['noise:Loading model weights...\n', 'frame:Content-Length: 2\r\n\r\n{}']);
  });

  it('keeps binary junk as bytes', () => {
    const junk = Buffer.from([0xff, 0xfe, 0x80, 0x0a]);
    const [event] = tapAll([junk]);
    assert.equal(event.type, 'noise');
    assert.deepEqual(event.type === 'noise' && event.bytes, junk);
  });

  it('a stray write that happens to contain a colon is still noise', () => {
    assert.deepEqual(describeEvents(tapAll([Buffer.from('Status: ok\n'), frame('{}')])), [
      'noise:Status: ok\n',
      'frame:Content-Length: 2\r\n\r\n{}',
    ]);
  });

  it('refuses a frame over the cap before buffering its body', () => {
    assert.deepEqual(describeEvents(tapAll([Buffer.from('Content-Length: 9999999999\r\n\r\n{')])), [
      'violation:Content-Length 9999999999 exceeds the 1024-byte frame cap',
    ]);
  });

  it('a header without Content-Length, or with a bad one, is a violation', () => {
    assert.deepEqual(describeEvents(tapAll([Buffer.from('Content-Type: x\r\n\r\n{}')])), [
      'violation:frame header has no Content-Length',
    ]);
    assert.deepEqual(describeEvents(tapAll([Buffer.from('Content-Length: -5\r\n\r\n{}')])), [
      'violation:Content-Length is not a number: "-5"',
    ]);
  });

  it('accepts other headers before Content-Length, as vscode-jsonrpc does', () => {
    assert.deepEqual(
      describeEvents(tapAll([Buffer.from('Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')])),
      ['frame:Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'],
    );
  });
});
