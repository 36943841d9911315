/**
 * dist/cli.js, the `modelops-debugger` command: loads the command line (dist/cli-main.js)
 * through V8's code cache (codeCache.ts) and runs it. Imports nothing else: all it costs is
 * what it saves.
 */
import * as path from 'node:path';
import { loadWithCodeCache } from './codeCache';

const { exports } = loadWithCodeCache(path.join(__dirname, 'cli-main.js'), { parent: module });
(exports as typeof import('./main')).runAsMain();
