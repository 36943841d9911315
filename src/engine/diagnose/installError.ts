/**
 * Why an install failed when the package index could not be reached. pip then ends with "No
 * matching distribution found for X", which reads like a typo in X; the cause is further up
 * (pip's "Retrying … Failed to establish a new connection", uv's "tcp connect error") or, with
 * `--retries 0`, nowhere in the output at all. So: the output first, then the indexes the
 * install was pointed at, each tried with one TCP connection.
 */
import * as net from 'node:net';

export interface IndexUnreachable {
  /** The index URL, when known. */
  url?: string;
  /** "connection refused", "name resolution failed", "timed out"… */
  why: string;
  /** pip's retry warning names only the path it asked for (`/simple/six/`). */
  path?: string;
  /** Where it was found: the installer's output, or a connection tried now. */
  how: 'output' | 'probe';
}

/** pip's and uv's words for a network failure, and what they mean. */
const NETWORK_SIGNS: [RegExp, string][] = [
  [/Connection refused|ConnectionRefusedError|\[Errno 111\]|\[Errno 61\]/, 'connection refused'],
  [
    /Temporary failure in name resolution|Name or service not known|nodename nor servname|getaddrinfo failed|dns error|failed to lookup address/i,
    'name resolution failed',
  ],
  [/Network is unreachable|No route to host|\[Errno 101\]|\[Errno 113\]/, 'network unreachable'],
  [/ConnectTimeoutError|ReadTimeoutError|connection timed out|operation timed out|Read timed out/i, 'timed out'],
  [/SSLError|CERTIFICATE_VERIFY_FAILED|invalid peer certificate/i, 'TLS failed'],
  [/ProxyError|Tunnel connection failed/, 'the proxy refused'],
  // last: the generic ones, when no specific cause is named
  [
    /Failed to establish a new connection|NewConnectionError|connection broken by|Could not fetch URL .*: connection error|error sending request for url|tcp connect error|client error \(Connect\)/,
    'could not connect',
  ],
];

/** A network failure the installer's output names, with the URL it names nearby. */
export function networkFailureIn(output: string): IndexUnreachable | undefined {
  for (const [sign, why] of NETWORK_SIGNS) {
    const match = sign.exec(output);
    if (!match) continue;
    const around = output.slice(Math.max(0, match.index - 600), match.index + 600);
    const url =
      /Could not fetch URL (\S+?):|Failed to fetch: `([^`]+)`|error sending request for url \(([^)\s]+)\)|'\)': (\/\S+)/.exec(
        around,
      );
    return { url: url?.[1] ?? url?.[2] ?? url?.[3], path: url?.[4], why, how: 'output' };
  }
  return undefined;
}

/** pip's and uv's "there was nothing to install from": an unreachable index's look when nothing else is said. */
export function foundNoVersions(output: string): boolean {
  return /\(from versions: none\)|No matching distribution found|was not found in the package registry|No solution found when resolving/.test(
    output,
  );
}

/**
 * The index URLs an install used, as far as they can be known here: the installer arguments,
 * then pip's environment; PyPI when neither names one (config files are not read: a probe
 * of fewer indexes only finds fewer causes, never a wrong one).
 */
export function indexUrls(args: readonly string[], env: Record<string, string | undefined>): string[] {
  const urls: string[] = [];
  let primary: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    const value = inline ?? args[i + 1];
    if (flag === '--index-url' || flag === '-i') primary = value;
    else if (flag === '--extra-index-url') urls.push(value);
    else continue;
    if (inline === undefined) i++;
  }
  if (args.includes('--no-index') || /^(1|true|yes|on)$/i.test(env.PIP_NO_INDEX ?? '')) return [];
  primary ??= env.PIP_INDEX_URL || env.UV_INDEX_URL || 'https://pypi.org/simple';
  urls.unshift(primary);
  urls.push(...(env.PIP_EXTRA_INDEX_URL ?? '').split(/\s+/).filter(Boolean));
  return [...new Set(urls)].filter((url) => /^https?:\/\//.test(url));
}

/** One TCP connection to the index's host and port: undefined when it answers, else why not. */
export function probeIndex(url: string, timeoutMs: number): Promise<string | undefined> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.resolve(undefined); // not a URL we can try: pip said what it said
  }
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`timed out after ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) =>
      done(SOCKET_ERRORS[error.code ?? ''] ?? error.code ?? error.message),
    );
  });
}

const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'name resolution failed',
  EAI_AGAIN: 'name resolution failed',
  ENETUNREACH: 'network unreachable',
  EHOSTUNREACH: 'host unreachable',
  ETIMEDOUT: 'timed out',
  ECONNRESET: 'connection reset',
};

const PROBE_TIMEOUT_MS = 3_000;

/**
 * Whether the install failed because an index could not be reached: said by the output, or,
 * when the installer found no versions and said nothing more, by trying the indexes now.
 */
export async function unreachableIndex(
  output: string,
  args: readonly string[],
  env: Record<string, string | undefined>,
): Promise<IndexUnreachable | undefined> {
  const said = networkFailureIn(output);
  if (said) {
    // pip names the path it asked for; the index is the one that path is under
    const indexes = indexUrls(args, env);
    said.url ??=
      indexes.find((url) => said.path?.startsWith(new URL(url).pathname.replace(/\/?$/, '/'))) ??
      (indexes.length === 1 ? indexes[0] : undefined);
    return said;
  }
  if (!foundNoVersions(output)) return undefined;
  for (const url of indexUrls(args, env)) {
    const why = await probeIndex(url, PROBE_TIMEOUT_MS);
    if (why) return { url, why, how: 'probe' };
  }
  return undefined;
}
