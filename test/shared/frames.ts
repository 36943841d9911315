/**
 * The large-frames bundle shared by test/unit/frames.test.ts and test/dask/frames.test.ts.
 */
import * as path from 'node:path';
import { scratchDir, writeBundle } from '../unit/helpers';

const scratch = scratchDir('mo-frames-bundles-');
export const MB = 1024 * 1024;

/**
 * Random bytes with, at offsets that are multiples of 3 (where base64 starts a new group), the
 * bytes whose base64 is "Infinity", "NaNN" and "1234567890123456": every output holds all three
 * in its base64, besides the "NaN"s that random base64 holds by chance.
 */
export const RANDOM_WIRE = `import base64, hashlib, random

MARKERS = [base64.b64decode(t) for t in ("Infinity", "NaNN", "1234567890123456")]


def payload(mb, seed):
    n = int(mb * 1024 * 1024) // 3 * 3
    data = bytearray(random.Random(seed).randbytes(n))
    step = max(n // 7 // 3 * 3, 24)
    for i, at in enumerate(range(0, n - 24, step)):
        marker = MARKERS[i % 3]
        data[at:at + len(marker)] = marker
    return bytes(data)


def wire(entrypoint, params, seed):
    data = payload(params["mb"], seed)
    if params.get("raise"):
        raise ValueError(base64.b64encode(data).decode())  # MARK:raise
    if params.get("two"):
        small = b"ok"
        return {"small": small, "data": data}  # MARK:return-two
    return {"data": data, "sha256": hashlib.sha256(data).hexdigest()}  # MARK:return
`;

export function randomBundle(name: string): string {
  return writeBundle(path.join(scratch, name), { 'wire.py': RANDOM_WIRE });
}
