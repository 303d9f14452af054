#!/usr/bin/env node
// Builds the web softphone: web/src/*.ts (+ styles.css, JsSIP from node_modules) -> dist/web/.
//
//   1. type-checks web/ against the DOM: tsc -p web/tsconfig.json --noEmit
//   2. bundles web/src/app.ts with esbuild into dist/web/app-<hash>.js and app-<hash>.css
//      (JsSIP ships no browser bundle: its CommonJS sources and their dependencies are bundled;
//      nothing is fetched from a CDN, the page works offline)
//   3. writes dist/web/index.html from web/index.html, pointing at the hashed files (the
//      <!--build:js--> and <!--build:css--> markers), so a browser never runs a stale app.js.
//
// The gateway serves dist/web when dist/web/index.html exists (server/paths.ts).
//
// Options:
//   --no-check   skip the type check (esbuild alone does not type-check)
//   --dev        no minification, inline source maps
//
// Exit code 0 on success, 1 on a type or bundling error.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { answerHelp } from './lib/usage.mjs';

answerHelp(import.meta.url);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const webDir = path.join(root, 'web');
const outDir = path.join(root, 'dist', 'web');
const args = new Set(process.argv.slice(2));
const dev = args.has('--dev');
const require = createRequire(import.meta.url);

function fail(message) {
  console.error(`build-web: ${message}`);
  process.exit(1);
}

const started = Date.now();

// 1. type check
if (!args.has('--no-check')) {
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(webDir, 'tsconfig.json'), '--noEmit'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail('type errors in web/ (tsc -p web/tsconfig.json --noEmit)');
}

// 2. bundle
let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  fail('esbuild is not installed (it is a devDependency: npm install)');
}
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
let result;
try {
  result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: { app: path.join(webDir, 'src', 'app.ts') },
    outdir: outDir,
    entryNames: dev ? '[name]' : '[name]-[hash]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome100', 'edge100', 'firefox100', 'safari15'],
    minify: !dev,
    sourcemap: dev ? 'inline' : 'linked',
    legalComments: 'linked',
    metafile: true,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
  });
} catch {
  fail('esbuild failed (see above)');
}

const outputs = Object.entries(result.metafile.outputs);
const rel = (file) => path.relative(outDir, path.resolve(root, file)).split(path.sep).join('/');
const js = outputs.find(([file, o]) => o.entryPoint && file.endsWith('.js'));
const css = outputs.find(([file]) => file.endsWith('.css'));
if (!js) fail('esbuild produced no JavaScript entry');

// 3. index.html
let html = fs.readFileSync(path.join(webDir, 'index.html'), 'utf8');
const replaceBlock = (name, tag) => {
  const re = new RegExp(`<!--build:${name}-->[\\s\\S]*?<!--/build:${name}-->`);
  if (!re.test(html)) fail(`web/index.html lacks the <!--build:${name}--> ... <!--/build:${name}--> markers`);
  html = html.replace(re, tag);
};
replaceBlock('js', `<script type="module" src="${rel(js[0])}"></script>`);
replaceBlock('css', css ? `<link rel="stylesheet" href="${rel(css[0])}">` : '');
fs.writeFileSync(path.join(outDir, 'index.html'), html);

const kb = (n) => `${(n / 1024).toFixed(1)} kB`;
const list = outputs
  .filter(([file]) => !file.endsWith('.map'))
  .map(([file, o]) => `${rel(file)} ${kb(o.bytes)}`)
  .join(', ');
console.log(`build-web: dist/web/ in ${Date.now() - started} ms: index.html, ${list}`);
