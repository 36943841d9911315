/** Reading tracebacks and faulthandler dumps as Python 3.9–3.13 print them. */
import * as assert from 'node:assert/strict';
import { locate, parseFaultDump, parseTraceback, primaryThread } from '../../src/engine/diagnose/pythonTrace';

const TRACEBACK = `some earlier output
Traceback (most recent call last):
  File "/b/wire.py", line 12, in wire
    return run_model(params)
           ^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
  File "/b/model/util.py", line 4, in compute_rate
    raise ValueError("beta must be positive, got -1.0")
ValueError: beta must be positive, got -1.0
`;

const SEGV = `about to crash
Fatal Python error: Segmentation fault

Current thread 0x00007f0a1b2c3740 (most recent call first):
  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at
  File "/b/wire.py", line 9 in wire
  File "/r/modelops_debugger_runner.py", line 500 in execute

Extension modules: _cffi_backend (total: 1)
`;

const USR1 = `Thread 0x00007f7da1ac86c0 (most recent call first):
  File "/r/modelops_debugger_runner.py", line 286 in _run

Current thread 0x00007f7da2a10b80 (most recent call first):
  File "/b/wire.py", line 7 in <module>
  File "/r/modelops_debugger_runner.py", line 642 in main
`;

describe('Python traces', () => {
  it('parses the frames, code lines and exception of a traceback', () => {
    const parsed = parseTraceback(TRACEBACK)!;
    assert.equal(parsed.excType, 'ValueError');
    assert.equal(parsed.message, 'beta must be positive, got -1.0');
    assert.deepEqual(
      parsed.frames.map((f) => `${f.file}:${f.line}:${f.function}`),
      ['/b/wire.py:12:wire', '/usr/lib/python3.11/json/__init__.py:346:loads', '/b/model/util.py:4:compute_rate'],
    );
    assert.equal(parsed.frames[0].code, 'return run_model(params)');
  });

  it('locates the innermost frame inside the bundle, never one outside it', () => {
    assert.deepEqual(locate(parseTraceback(TRACEBACK)!.frames, '/b'), {
      file: '/b/model/util.py',
      line: 4,
      function: 'compute_rate',
    });
    assert.equal(locate(parseTraceback(TRACEBACK)!.frames, '/elsewhere'), undefined);
    assert.equal(
      locate([{ file: '/bundle-other/x.py', line: 1, function: 'f' }], '/bundle'),
      undefined,
      'a sibling directory with the same prefix is outside',
    );
  });

  it('parses a fatal-signal dump: the crashing thread, innermost last', () => {
    const dump = parseFaultDump(SEGV)!;
    assert.equal(dump.fatalError, 'Segmentation fault');
    const thread = primaryThread(dump)!;
    assert.equal(thread.current, true);
    assert.deepEqual(
      thread.frames.map((f) => `${f.file}:${f.line}`),
      ['/r/modelops_debugger_runner.py:500', '/b/wire.py:9', '/usr/lib/python3.11/ctypes/__init__.py:519'],
    );
    assert.deepEqual(locate(thread.frames, '/b'), { file: '/b/wire.py', line: 9, function: 'wire' });
  });

  it('parses an on-request dump of several threads', () => {
    const dump = parseFaultDump(USR1)!;
    assert.equal(dump.threads.length, 2);
    assert.equal(primaryThread(dump)!.frames.at(-1)!.file, '/b/wire.py');
  });

  it('a dump with a thread in C code only ("<no Python frame>") is one dump, from its first line', () => {
    const text = `computing k=7\nFatal Python error: Segmentation fault\n\nThread 0x00007f5fd7079b80 (most recent call first):\n  <no Python frame>\n\n${SEGV.slice(SEGV.indexOf('Current thread'))}`;
    const dump = parseFaultDump(text)!;
    assert.equal(dump.fatalError, 'Segmentation fault');
    assert.equal(dump.threads.length, 2);
    assert.ok(dump.text.startsWith('Fatal Python error: Segmentation fault'), dump.text);
    assert.equal(primaryThread(dump)!.frames.at(-2)!.file, '/b/wire.py');
  });

  it('no traceback, no dump: undefined, not a guess', () => {
    assert.equal(parseTraceback('just some stderr\n'), undefined);
    assert.equal(parseFaultDump('just some stderr\n'), undefined);
  });
});
