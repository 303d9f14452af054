/**
 * The gateway's mediasoup worker patch set (scripts/mediasoup/worker-patches.mjs) still applies
 * to the worker sources of the installed mediasoup: every text it replaces is found exactly
 * once. Checked on a copy of the patched files, so that a mediasoup upgrade fails here, with
 * the file and the text, before a 4-minute build does.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../../server/paths.js';

interface PatchModule {
  PATCH_SET_VERSION: number;
  WORKER_PATCHES: { name: string; file: string; edits: { find: string; replace: string }[] }[];
  applyWorkerPatches(stageDir: string, fsModule: typeof fs, pathModule: typeof path): string[];
}

const WORKER_SRC = path.join(projectRoot, 'node_modules', 'mediasoup', 'worker');

test('the worker patch set applies to the installed mediasoup worker sources, once each, and only once', async (t) => {
  if (!fs.existsSync(path.join(WORKER_SRC, 'src', 'RTC', 'Router.cpp'))) return t.skip('mediasoup worker sources not installed');
  const mod = (await import(pathToFileURL(path.join(projectRoot, 'scripts', 'mediasoup', 'worker-patches.mjs')).href)) as PatchModule;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'worker-patches-'));
  try {
    const files = [...new Set(mod.WORKER_PATCHES.map((p) => p.file))];
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.copyFileSync(path.join(WORKER_SRC, f), path.join(dir, f));
    }
    const applied = mod.applyWorkerPatches(dir, fs, path);
    assert.deepEqual(applied.sort(), ['catch-all-producer', 'early-rtp-replay', 'early-rtp-to-first-consumer', 'strip-extensions', 'udp-no-empty-read', 'unknown-source-warning']);
    for (const f of files) assert.notEqual(fs.readFileSync(path.join(dir, f), 'utf8'), fs.readFileSync(path.join(WORKER_SRC, f), 'utf8'), `${f} unchanged`);
    // applying twice fails loudly (the texts are gone), it does not patch twice
    assert.throws(() => mod.applyWorkerPatches(dir, fs, path), /expected exactly one occurrence/);
    assert.ok(Number.isInteger(mod.PATCH_SET_VERSION) && mod.PATCH_SET_VERSION >= 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
