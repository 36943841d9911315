/**
 * The command line's start-up: dist/cli.js is a small loader (bin.ts) and the command line
 * itself is dist/cli-main.js, compiled here through `vm.Script` with V8's code cache, because
 * Node 20 has no `module.enableCompileCache` and otherwise parses and compiles the 0.9 MB bundle
 * from scratch on every start.
 *
 * The cache is written once per bundle, command and Node, at the exit of the first run (after
 * that run compiled the functions its command needs), under the user's cache directory. It is
 * never trusted beyond what can be checked:
 * - its name holds the SHA-256 of the bundle's bytes: V8 itself checks only the source's length,
 *   and runs the old code for another source of the same length (test/unit/codeCache.test.ts);
 * - its header holds that key again and the SHA-256 of the V8 data: a file cut short or changed
 *   on disk is ignored (V8 does not checksum the data in release builds);
 * - one V8 rejects (another V8 version or flags) is ignored too.
 * Whatever is ignored is replaced at exit. A cache that cannot be read or written only costs
 * the compile it would have saved, so those errors are not the command's: it never says a word
 * about its cache and its output is the same with or without it. MODELOPS_CODE_CACHE=off turns
 * it off; MODELOPS_CODE_CACHE_DIR puts it elsewhere.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import Module, { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';

/** What became of the cache in this run. */
export type CacheOutcome = 'off' | 'absent' | 'accepted' | 'rejected' | 'corrupt';

const MAGIC = Buffer.from('modelops-v8-cache-1\n');
const DIGEST_BYTES = 32;
const HEADER_BYTES = MAGIC.length + 2 * DIGEST_BYTES;
/** Caches kept (every build, command and Node has its own, ~0.5–1 MB each); the oldest go first. */
const KEEP_FILES = 16;
/** Node's own wrapper of a CommonJS module, so the bundle runs as it would under require(). */
const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname) { ';
const WRAPPER_TAIL = '\n});';

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** The process's arguments: the command (`run`, `venv`, …) has a cache of its own. */
  argv?: readonly string[];
  /** The module the bundle is loaded for (its parent). */
  parent?: Module;
}

export interface Loaded {
  /** The bundle's `module.exports`. */
  exports: unknown;
  outcome: CacheOutcome;
  /** Where the cache is read from and written to; undefined when it is off. */
  cacheFile?: string;
  /** Writes the cache now if this run has to (done by itself at exit); for tests. */
  writeCache(): void;
}

/** MODELOPS_CODE_CACHE_DIR, else `$XDG_CACHE_HOME/modelops-debugger/code-cache`, else `~/.cache/…`. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MODELOPS_CODE_CACHE_DIR) return path.resolve(env.MODELOPS_CODE_CACHE_DIR);
  const cache = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'modelops-debugger', 'code-cache');
}

/**
 * Runs `bundleFile` (a CommonJS bundle) as `require()` would, compiled with the code cache when
 * there is a sound one; arranges for the cache to be written at exit when there is not.
 */
export function loadWithCodeCache(bundleFile: string, options: LoadOptions = {}): Loaded {
  const env = options.env ?? process.env;
  if (/^(0|off|false|no)$/i.test(env.MODELOPS_CODE_CACHE ?? '')) {
    // compiled the way require() compiles it
    return { exports: createRequire(bundleFile)(bundleFile), outcome: 'off', writeCache: () => undefined };
  }
  const bytes = fs.readFileSync(bundleFile);
  const key = cacheKey(bytes, env, options.argv ?? process.argv);
  const cacheFile = path.join(codeCacheDir(env), `cli-${key.toString('hex').slice(0, 32)}.v8`);
  const read = readCache(cacheFile, key);
  const script = new vm.Script(wrap(bytes), {
    filename: bundleFile,
    cachedData: read.data,
    // the bundle has no import(); should one come, it resolves as in a module, where this Node can
    importModuleDynamically: (vm.constants as Partial<typeof vm.constants> | undefined)
      ?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const outcome: CacheOutcome = read.data ? (script.cachedDataRejected ? 'rejected' : 'accepted') : read.outcome;
  const exports = run(script, bundleFile, options.parent);
  let pending = outcome !== 'accepted';
  const writeCache = () => {
    if (!pending) return;
    pending = false;
    process.off('exit', onExit);
    try {
      writeCacheFile(cacheFile, key, script.createCachedData());
    } catch {
      // see writeCacheFile: an exit handler that threw would change the command's exit code
    }
  };
  // At exit the functions this command ran are compiled, and go into the cache with the rest;
  // a sound cache is not written again, so it is written only by a run that did the command's
  // work (exit 0, or 1: some tasks failed), not by one refused at its arguments.
  const onExit = (code: number) => {
    if (code === 0 || code === 1) writeCache();
  };
  if (pending) process.once('exit', onExit);
  return { exports, outcome, cacheFile, writeCache };
}

/**
 * What the cache depends on besides V8's own checks: the bundle's bytes, the command and whether
 * it only prints help (each compiles other functions), Node and its flags (V8 rejects a cache
 * made under other flags; a key of their own keeps two sets of flags from replacing each other's
 * cache every run).
 */
function cacheKey(bundle: Buffer, env: NodeJS.ProcessEnv, argv: readonly string[]): Buffer {
  const command = argv.slice(2).find((arg) => !arg.startsWith('-')) ?? '';
  const help = argv.some((arg) => /^(-h|--help|-V|--version|help)$/.test(arg));
  return createHash('sha256')
    .update(bundle)
    .update(
      JSON.stringify([
        process.version,
        process.arch,
        process.execArgv,
        env.NODE_OPTIONS ?? '',
        command.slice(0, 40),
        help,
      ]),
    )
    .digest();
}

function readCache(
  file: string,
  key: Buffer,
): { data: Buffer; outcome?: undefined } | { data?: undefined; outcome: 'absent' | 'corrupt' } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return { outcome: 'absent' }; // not written yet, or unreadable: compiled as without a cache
  }
  const data = bytes.subarray(HEADER_BYTES);
  const sound =
    bytes.length > HEADER_BYTES &&
    bytes.subarray(0, MAGIC.length).equals(MAGIC) &&
    bytes.subarray(MAGIC.length, MAGIC.length + DIGEST_BYTES).equals(key) &&
    bytes.subarray(MAGIC.length + DIGEST_BYTES, HEADER_BYTES).equals(sha256(data));
  return sound ? { data } : { outcome: 'corrupt' };
}

/** Temp file and rename: a reader sees the old cache, the new one, or none; never half of one. */
function writeCacheFile(file: string, key: Buffer, data: Buffer): void {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(temp, Buffer.concat([MAGIC, key, sha256(data), data]), { mode: 0o600 });
    fs.renameSync(temp, file);
    prune(dir, file);
  } catch {
    // a read-only or full cache directory costs the next run its compile, nothing else
    fs.rmSync(temp, { force: true });
  }
}

/** Keeps the newest KEEP_FILES caches: older builds' and commands' go. */
function prune(dir: string, written: string): void {
  const files = fs
    .readdirSync(dir)
    .map((name) => path.join(dir, name))
    .filter((file) => file !== written)
    .map((file) => ({ file, mtimeMs: fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { file } of files.slice(KEEP_FILES - 1)) fs.rmSync(file, { force: true });
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function wrap(bytes: Buffer): string {
  return `${WRAPPER_HEAD}${bytes.toString('utf8')}${WRAPPER_TAIL}`;
}

function run(script: vm.Script, bundleFile: string, parent: Module | undefined): unknown {
  const bundle = new Module(bundleFile, parent);
  bundle.filename = bundleFile;
  const body = script.runInThisContext() as (...args: unknown[]) => void;
  body.call(bundle.exports, bundle.exports, createRequire(bundleFile), bundle, bundleFile, path.dirname(bundleFile));
  bundle.loaded = true;
  return bundle.exports;
}
