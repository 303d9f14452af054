#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner. Node 20's
// `--test DIR` would also run every .js under a directory named "test" (our helpers), and
// globs in --test arrive only in Node 21. Extra arguments pick layers: unit, integration, e2e.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { answerHelp } from './lib/usage.mjs';

answerHelp(import.meta.url);

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'dist', 'test');
const layers = process.argv.slice(2);
const files = [];
const walk = (dir) => {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.js')) files.push(p);
  }
};
walk(root);
const picked = files.sort().filter((f) => layers.length === 0 || layers.some((l) => f.includes(`${path.sep}${l}${path.sep}`)));
if (picked.length === 0) {
  console.error(`no test files under ${root}${layers.length ? ` for ${layers.join(', ')}` : ''}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...picked], { stdio: 'inherit' });
process.exit(r.status ?? 1);
