#!/usr/bin/env node
// The dependency check of the house's floors (ARCHITECTURE.md): reads every import of every
// server/ file (static, type-only, re-exports and dynamic import()) and fails on
//   - an upward import: a folder importing from a folder above it in FLOORS, and
//   - a file cycle, across folders or inside one (a cycle means two files are one module).
// Run by `npm test` and `npm run test:unit` before the tests; `--help` says this.
import fs from 'node:fs';
import path from 'node:path';

/**
 * The floors, lowest first: a folder may import from its own floor and the floors below it.
 * Files directly in server/ (main.ts, gateway.ts, logger.ts, paths.ts) are the top floor "root".
 *   net      address classes, CIDR sets, URL allow-lists (pure: the ground, imports nothing of ours)
 *   config   schema and loading
 *   sip      the protocol: message, transport, transaction, dialog
 *   security per-source flood and brute-force bans (pike + ipban), the start-up notice
 *   audio    codecs, resampling, mixing (pure)
 *   media    mediasoup workers, legs, sessions, SDP; typed media modes
 *   taps     audio taps: the pipeline in worker threads, one file per dialect; they follow a call through a small interface, the call controller starts them
 *   registrar registrar, digest, location stores
 *   routing  the script a user edits: API, flags, stages
 *   proxy    the RFC 3261 §16 proxy core, the script's context, the hooks it calls
 *   calls    the call controller at the proxy's hooks, calls, the local endpoint
 *   events   the event bus and its publishers
 *   http     express app, API routes, metrics
 *   root     main.ts and gateway.ts: the composition root
 */
export const FLOORS = ['net', 'config', 'sip', 'security', 'audio', 'media', 'taps', 'registrar', 'routing', 'proxy', 'calls', 'events', 'http', 'root'];

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(`usage: node scripts/check-deps.mjs [server-dir]

Checks the import graph of server/ (default: ./server): every import must go to the same
folder or a folder below it (floors, lowest first: ${FLOORS.join(' < ')}), and no files may
import each other in a cycle (across folders or inside one). Exits 1 and lists every offence otherwise.`);
  process.exit(0);
}

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'server'));

function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The folder (floor) a server file belongs to. */
function floorOf(file) {
  const rel = path.relative(root, file).split(path.sep);
  return rel.length === 1 ? 'root' : rel[0];
}

// import x from '...', import type {...} from '...', export {...} from '...', import '...', import('...')
const IMPORT = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

const files = walk(root);
const graph = new Map();
const problems = [];
for (const file of files) {
  const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const deps = new Set();
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith('.')) continue; // a package
    const target = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
    if (!target.startsWith(root + path.sep)) continue;
    if (!fs.existsSync(target)) {
      problems.push(`${path.relative(root, file)}: imports ${spec}, which is no file of server/`);
      continue;
    }
    deps.add(target);
  }
  graph.set(file, deps);
}

/**
 * Below is not always allowed: the proxy core forwards and leaves calls to the floor above
 * (ProxyHooks), so it imports no media service and no taps, only media's typed modes.
 */
const FORBIDDEN = { proxy: { floors: ['media', 'taps'], except: ['media/flags.ts'] } };

const rank = (f) => {
  const floor = floorOf(f);
  const i = FLOORS.indexOf(floor);
  if (i < 0) problems.push(`server/${floor}/ is on no floor: add it to FLOORS in scripts/check-deps.mjs (and to ARCHITECTURE.md)`);
  return i;
};

for (const [file, deps] of graph) {
  for (const dep of deps) {
    const a = floorOf(file);
    const b = floorOf(dep);
    if (a !== b && rank(dep) > rank(file)) {
      problems.push(`upward import: ${path.relative(root, file)} (${a}) imports ${path.relative(root, dep)} (${b})`);
    }
    const rule = FORBIDDEN[a];
    if (rule && rule.floors.includes(b) && !rule.except.includes(path.relative(root, dep))) {
      problems.push(`forbidden import: ${path.relative(root, file)} (${a}) imports ${path.relative(root, dep)}: the ${a} floor does not use ${b}`);
    }
  }
}

// Tarjan's strongly connected components: a component of more than one file is a cycle
let index = 0;
const stack = [];
const meta = new Map();
const cycles = [];
function connect(v) {
  meta.set(v, { index, low: index, on: true });
  index++;
  stack.push(v);
  for (const w of graph.get(v) ?? []) {
    if (!meta.has(w)) {
      connect(w);
      meta.get(v).low = Math.min(meta.get(v).low, meta.get(w).low);
    } else if (meta.get(w).on) {
      meta.get(v).low = Math.min(meta.get(v).low, meta.get(w).index);
    }
  }
  if (meta.get(v).low === meta.get(v).index) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      meta.get(w).on = false;
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1) cycles.push(comp);
  }
}
for (const f of graph.keys()) if (!meta.has(f)) connect(f);
for (const comp of cycles) {
  const floors = [...new Set(comp.map(floorOf))];
  const where = floors.length > 1 ? `across folders ${floors.join(', ')}` : `in ${floors[0]}/`;
  problems.push(`file cycle ${where}: ${comp.map((f) => path.relative(root, f)).sort().join(' <-> ')}`);
}

if (problems.length > 0) {
  console.error(`check-deps: ${problems.length} offence(s) against the floors (${FLOORS.join(' < ')}):`);
  for (const p of [...new Set(problems)]) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`check-deps: ${files.length} files, ${[...graph.values()].reduce((n, d) => n + d.size, 0)} imports, every one downward, no cycle`);
