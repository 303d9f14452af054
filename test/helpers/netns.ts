/**
 * A "public" source for a test: a network namespace joined to this one by a veth pair, with
 * addresses in 198.18.0.0/15 (RFC 2544's benchmarking range: not loopback, RFC 1918, RFC 4193
 * nor link-local, so the gateway sees an outsider). Commands and Node children run inside it
 * with `ip netns exec`. Everything made is named uniquely per run and removed by `close()`
 * (idempotent), or at process exit if a test forgot; nothing else is touched.
 *
 *   const reason = netnsUnavailable();          // skip with this when not root / no `ip`
 *   const ns = await createNetns();             // ns.hostAddress 198.18.x.1, ns.address 198.18.x.2
 *   const r = await ns.node(['dist/test/helpers/outsider.js', 'http', url]);
 *   await ns.close();
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { projectRoot } from '../../server/paths.js';

const IP_TIMEOUT_MS = 10_000;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Netns {
  /** the namespace's name (ip netns) */
  readonly name: string;
  /** our side of the veth pair: where the namespace reaches us */
  readonly hostAddress: string;
  /** the namespace's address: the source the gateway sees */
  readonly address: string;
  /** Runs a command inside the namespace to its end (killed after timeoutMs). */
  run(cmd: string, args: string[], timeoutMs?: number): Promise<RunResult>;
  /** Starts a command inside the namespace (the caller waits for it; close() kills it). */
  spawn(cmd: string, args: string[]): ChildProcess;
  /** Runs `node ARGS` inside the namespace (paths relative to the project root). */
  node(args: string[], timeoutMs?: number): Promise<RunResult>;
  close(): Promise<void>;
}

function hasIp(): boolean {
  return spawnSync('ip', ['-V'], { stdio: 'ignore' }).status === 0;
}

/** Why namespaces cannot be made here (to skip with), or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces need root (CI runs as root)';
  if (!hasIp()) return 'the `ip` command (iproute2) is not installed';
  return null;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: IP_TIMEOUT_MS });
}

function quietly(f: () => void): void {
  try {
    f();
  } catch {
    // already gone
  }
}

/** A /30 in 198.18.0.0/15 that no interface here uses yet. */
function freeSubnet(): { host: string; ns: string } {
  const used = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8', timeout: IP_TIMEOUT_MS });
  for (let tries = 0; tries < 50; tries++) {
    const i = 1 + crypto.randomInt(32767); // 32768 /30s in the /15
    const base = (198 << 24) + (18 << 16) + i * 4;
    const dotted = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
    const host = dotted(base + 1);
    if (!used.includes(` ${host}/`) && !used.includes(` ${dotted(base + 2)}/`)) return { host, ns: dotted(base + 2) };
  }
  throw new Error('no free /30 in 198.18.0.0/15');
}

const live = new Set<() => void>();
let exitHook = false;

export async function createNetns(): Promise<Netns> {
  const reason = netnsUnavailable();
  if (reason) throw new Error(reason);
  const tag = crypto.randomBytes(3).toString('hex');
  const name = `gwtest-${process.pid}-${tag}`;
  const hostVeth = `gw${tag}h`;
  const nsVeth = `gw${tag}n`;
  const { host, ns } = freeSubnet();
  const children = new Set<ChildProcess>();
  let closed = false;
  const teardown = (): void => {
    if (closed) return;
    closed = true;
    live.delete(teardown);
    for (const c of children) quietly(() => c.kill('SIGKILL'));
    // deleting one end of a veth pair deletes both; then the namespace
    quietly(() => ip(['link', 'del', hostVeth]));
    quietly(() => ip(['netns', 'del', name]));
  };
  live.add(teardown);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const t of [...live]) t();
    });
  }
  try {
    ip(['netns', 'add', name]);
    ip(['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth]);
    ip(['link', 'set', nsVeth, 'netns', name]);
    ip(['addr', 'add', `${host}/30`, 'dev', hostVeth]);
    ip(['link', 'set', hostVeth, 'up']);
    ip(['netns', 'exec', name, 'ip', 'addr', 'add', `${ns}/30`, 'dev', nsVeth]);
    ip(['netns', 'exec', name, 'ip', 'link', 'set', nsVeth, 'up']);
    ip(['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  } catch (e) {
    teardown();
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`could not set up network namespace ${name}: ${stderr || (e as Error).message}`);
  }

  const spawnIn = (cmd: string, args: string[]): ChildProcess => {
    if (closed) throw new Error(`network namespace ${name} is closed`);
    const child = spawn('ip', ['netns', 'exec', name, cmd, ...args], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  const run = (cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> => new Promise((resolve) => {
    const child = spawnIn(cmd, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
  return {
    name,
    hostAddress: host,
    address: ns,
    run,
    spawn: spawnIn,
    node: (args, timeoutMs) => run(process.execPath, args.map((a, i) => (i === 0 && !path.isAbsolute(a) ? path.join(projectRoot, a) : a)), timeoutMs),
    close: async () => teardown(),
  };
}
