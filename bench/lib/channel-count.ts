/**
 * Preloaded into the gateway by the media bench (`node --import <this> dist/server/main.js`):
 * counts the requests the Node process sends to its mediasoup workers over their channels,
 * by method, and writes the counts to $CHANNEL_COUNT_FILE (within a second of a change). The gateway itself is
 * not changed (so a build of any commit can be measured alike); a wrapper around one method of
 * mediasoup's Channel class, costing an increment per request. Main thread only.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

const file = process.env.CHANNEL_COUNT_FILE;
// `--import` runs in every thread of the process (the tap worker threads too): only the main
// thread talks to the mediasoup workers, and one writer keeps the file whole
if (file && isMainThread) {
  const require = createRequire(import.meta.url);
  // mediasoup's package exports only its index: reach its Channel by file path, the same
  // module (one require cache) the gateway's `import 'mediasoup'` loads
  const lib = path.dirname(require.resolve('mediasoup'));
  const { Channel } = require(path.join(lib, 'Channel.js')) as { Channel: { prototype: { request: (method: number, ...rest: unknown[]) => Promise<unknown> } } };
  const { Method } = require(path.join(lib, 'fbs', 'request.js')) as { Method: Record<number, string> };
  const byMethod = new Map<number, number>();
  let total = 0;
  const original = Channel.prototype.request;
  Channel.prototype.request = function (this: unknown, method: number, ...rest: unknown[]) {
    total++;
    byMethod.set(method, (byMethod.get(method) ?? 0) + 1);
    return original.call(this, method, ...rest);
  };
  // written only when the count moved, at most once a second (the bench reads it more than a second after the last call): the file's write and rename cost
  // the gateway's Node process (whose CPU the bench measures) about 2 ms each on this machine
  let written = -1;
  const write = (): void => {
    if (written === total) return;
    written = total;
    const methods = Object.fromEntries([...byMethod].map(([m, n]) => [Method[m] ?? String(m), n]));
    fs.writeFileSync(`${file}.tmp`, JSON.stringify({ total, methods }));
    fs.renameSync(`${file}.tmp`, file);
  };
  setInterval(write, 1000).unref();
  write();
}
