/**
 * What the media benchmark runs its load through, and how it reads their costs: our gateway
 * (its own process, a generated config, its log kept for evidence), the anchors' rtpengine +
 * Kamailio (../shared/anchors, their start scripts and pidfiles), per-process CPU from
 * /proc, rtpengine's counters, and kernel packet counters (iptables) for SIPp's RTP, which
 * SIPp itself does not count.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../../server/paths.js';
import { anchorsDir, freePort } from './servers.js';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system) of one process, its own threads included; 0 when gone. */
export function procCpu(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

export function childPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)]).toString().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** UDP sockets a set of processes hold (from `ss`), as "pid:local-address:port", to see media ports not freed. */
export function udpSockets(pids: number[]): string[] {
  let out = '';
  try {
    out = execFileSync('ss', ['-uanp'], { maxBuffer: 64 * 1024 * 1024 }).toString();
  } catch {
    return [];
  }
  const want = new Set(pids.map(String));
  const found: string[] = [];
  for (const line of out.split('\n')) {
    const local = line.trim().split(/\s+/)[3];
    for (const m of line.matchAll(/pid=(\d+)/g)) {
      if (want.has(m[1]!)) {
        found.push(`${m[1]}:${local}`);
        break;
      }
    }
  }
  return found;
}

export function udpSocketCount(pids: number[]): number {
  return udpSockets(pids).length;
}

export interface GatewayProcess {
  pid: number;
  udpPort: number;
  httpPort: number;
  sipTarget: string;
  wsUrl: string;
  logFile: string;
  /** the mediasoup workers (children of the gateway's Node process) */
  workerPids(): number[];
  /** GET /api/<path> as JSON */
  api(p: string): Promise<any>;
  /** requests its Node process sent to its mediasoup workers so far (bench/lib/channel-count.ts) */
  channelRequests(): { total: number; methods: Record<string, number> };
  stop(): Promise<void>;
}

/**
 * `node dist/server/main.js --config <generated>` on free ports, stdout (pino JSON lines) to a
 * log file kept after the run; resolves once /readyz says ready (60 s at most).
 */
export async function startGateway(config: Record<string, unknown>, logDir: string): Promise<GatewayProcess> {
  const udpPort = await freePort('udp4');
  const httpPort = await freePort('tcp');
  const file = path.join(logDir, `gateway-${udpPort}.config.json`);
  const logFile = path.join(logDir, `gateway-${udpPort}.log`);
  const cfg = {
    ...config,
    sip: { ...(config.sip as object), udp: { address: '127.0.0.1', port: udpPort } },
    http: { ...(config.http as object), address: '127.0.0.1', port: httpPort },
  };
  fs.writeFileSync(file, JSON.stringify(cfg, null, 1));
  const out = fs.openSync(logFile, 'a');
  // e.g. BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the gateway under load
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // mediasoup channel requests are counted by a preloaded wrapper, written to this file
  const countFile = path.join(logDir, `gateway-${udpPort}.channel.json`);
  const counting = ['--import', pathToFileURL(path.join(projectRoot, 'dist', 'bench', 'lib', 'channel-count.js')).href];
  const child: ChildProcess = spawn(process.execPath, [...counting, ...nodeArgs, path.join(projectRoot, 'dist', 'server', 'main.js'), '--config', file], {
    stdio: ['ignore', out, out],
    env: { ...process.env, CHANNEL_COUNT_FILE: countFile },
  });
  fs.closeSync(out);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const end = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`the gateway exited at start-up; see ${logFile}`);
    if (Date.now() > end) {
      child.kill('SIGKILL');
      throw new Error('the gateway did not get ready in 60 s');
    }
    try {
      if ((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = child.pid!;
  return {
    pid,
    udpPort,
    httpPort,
    sipTarget: `127.0.0.1:${udpPort}`,
    wsUrl: `ws://127.0.0.1:${httpPort}${(config.http as { wsPath?: string } | undefined)?.wsPath ?? '/sip'}`,
    logFile,
    workerPids: () => childPids(pid),
    api: async (p) => (await fetch(`http://127.0.0.1:${httpPort}/api/${p}`)).json(),
    channelRequests: () => {
      try {
        return JSON.parse(fs.readFileSync(countFile, 'utf8')) as { total: number; methods: Record<string, number> };
      } catch {
        return { total: NaN, methods: {} };
      }
    },
    stop: async () => {
      if (exited) return;
      const workers = childPids(pid);
      const done = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(t);
      // its mediasoup workers exit with it; make sure (by their PIDs, nothing else)
      for (const w of workers) if (alive(w)) process.kill(w, 'SIGKILL');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// the anchors: rtpengine + Kamailio

export interface Anchors {
  kamailioPid: number;
  rtpenginePid: number;
  sipTarget: string;
  wsUrl: string;
  stop(): Promise<void>;
}

const KAM_PIDFILE = '/tmp/anchors/kamailio/kamailio.pid';
const RTPE_PIDFILE = '/tmp/anchors/rtpengine/rtpengine.pid';

function pidFromFile(f: string): number | null {
  try {
    const pid = Number(fs.readFileSync(f, 'utf8').trim());
    return pid > 0 && alive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Starts rtpengine, then Kamailio with `env` (KAM_AUTH, KAM_RTCPMUX...). Refuses when either
 * already runs (someone else's run on this shared machine): ports 5060/8080/22222 are theirs.
 */
export async function startAnchors(env: Record<string, string>): Promise<Anchors> {
  const rtpe = path.join(anchorsDir, 'rtpengine', 'start-rtpengine.sh');
  const kam = path.join(anchorsDir, 'kamailio', 'start-kamailio.sh');
  if (!fs.existsSync(rtpe) || !fs.existsSync(kam)) throw new Error(`no anchors at ${anchorsDir}`);
  const running = [pidFromFile(KAM_PIDFILE) && 'kamailio', pidFromFile(RTPE_PIDFILE) && 'rtpengine'].filter(Boolean);
  if (running.length) throw new Error(`${running.join(' and ')} already running (another run?): not touching them`);
  const e = { ...process.env, ...env };
  execFileSync('bash', [rtpe], { stdio: ['ignore', 'ignore', 'inherit'], env: e, timeout: 30_000 });
  try {
    execFileSync('bash', [kam], { stdio: ['ignore', 'ignore', 'inherit'], env: e, timeout: 30_000 });
  } catch (err) {
    execFileSync('bash', [rtpe, 'stop'], { stdio: 'ignore', timeout: 30_000 });
    throw err;
  }
  const kamailioPid = pidFromFile(KAM_PIDFILE);
  const rtpenginePid = pidFromFile(RTPE_PIDFILE);
  if (!kamailioPid || !rtpenginePid) throw new Error('anchors started but their pidfiles name no live process');
  return {
    kamailioPid,
    rtpenginePid,
    sipTarget: '127.0.0.1:5060',
    wsUrl: 'ws://127.0.0.1:8080',
    stop: async () => {
      // the scripts stop exactly the PIDs in their pidfiles, which are ours
      execFileSync('bash', [kam, 'stop'], { stdio: 'ignore', timeout: 30_000 });
      execFileSync('bash', [rtpe, 'stop'], { stdio: 'ignore', timeout: 30_000 });
    },
  };
}

/** `rtpengine-ctl list totals` as name -> number (the numeric ones). */
export function rtpengineTotals(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    const text = execFileSync('rtpengine-ctl', ['-ip', '127.0.0.1', '-port', '9900', 'list', 'totals'], { timeout: 10_000 }).toString();
    for (const line of text.split('\n')) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const v = Number(line.slice(i + 1).trim().split(/\s+/)[0]);
      if (Number.isFinite(v)) out[line.slice(0, i).trim()] = v;
    }
  } catch {
    // not running
  }
  return out;
}

export function rtpengineSessions(): number {
  try {
    const text = execFileSync('rtpengine-ctl', ['-ip', '127.0.0.1', '-port', '9900', 'list', 'numsessions'], { timeout: 10_000 }).toString();
    const m = /(\d+)/.exec(text.split('\n').find((l) => /sessions total/i.test(l)) ?? text);
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

// ---------------------------------------------------------------------------------------------
// kernel packet counters for SIPp's RTP (SIPp does not count what it receives)

/**
 * A chain of counting rules (no verdicts: every packet goes on as before) hooked at the top of
 * INPUT, counting UDP packets by source and destination port ranges. Removed by `remove()`
 * (and on process exit). Packets on loopback pass INPUT once, at the receiver.
 */
export class PacketCounter {
  private readonly chain = `mbench${process.pid}`;
  private installed = false;
  constructor(private readonly rules: { name: string; sport: string; dport: string; ipLength?: string }[]) {}

  install(): boolean {
    try {
      execFileSync('iptables', ['-w', '5', '-N', this.chain], { stdio: 'ignore' });
      for (const r of this.rules) {
        execFileSync('iptables', ['-w', '5', '-A', this.chain, '-p', 'udp', '-s', '127.0.0.1', '--sport', r.sport, '--dport', r.dport,
          ...(r.ipLength ? ['-m', 'length', '--length', r.ipLength] : []), '-m', 'comment', '--comment', r.name]);
      }
      execFileSync('iptables', ['-w', '5', '-I', 'INPUT', '1', '-j', this.chain]);
      this.installed = true;
      const cleanup = (): void => this.remove();
      process.once('exit', cleanup);
      return true;
    } catch (e) {
      this.remove();
      console.error(`iptables counters not available: ${(e as Error).message}`);
      return false;
    }
  }

  /** packets per rule name so far */
  read(): Record<string, number> {
    const out: Record<string, number> = {};
    if (!this.installed) return out;
    const text = execFileSync('iptables', ['-w', '5', '-L', this.chain, '-n', '-v', '-x']).toString();
    for (const line of text.split('\n')) {
      const m = /^\s*(\d+)\s+\d+\s.*\/\*\s*(\S+)\s*\*\//.exec(line);
      if (m) out[m[2]!] = Number(m[1]);
    }
    return out;
  }

  remove(): void {
    try {
      execFileSync('iptables', ['-w', '5', '-D', 'INPUT', '-j', this.chain], { stdio: 'ignore' });
    } catch {
      // not hooked
    }
    try {
      execFileSync('iptables', ['-w', '5', '-F', this.chain], { stdio: 'ignore' });
      execFileSync('iptables', ['-w', '5', '-X', this.chain], { stdio: 'ignore' });
    } catch {
      // not there
    }
    this.installed = false;
  }
}

export function loadAverage(): string {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ');
}

/** Datagrams the kernel dropped on a UDP socket (its receive buffer full), from `ss -m` (skmem d<N>); -1 when unknown. */
export function udpSocketDrops(port: number): number {
  try {
    const out = execFileSync('ss', ['-uanm', `sport = :${port}`]).toString();
    let n = -1;
    for (const m of out.matchAll(/skmem:\([^)]*\bd(\d+)/g)) n = Math.max(0, n) + Number(m[1]);
    return n;
  } catch {
    return -1;
  }
}

/**
 * OPTIONS to the server itself (sip:host:port, no user) every `everyMs`: the round-trip time
 * of a request no routing or media work stands behind shows how long the server's SIP
 * processing queues (the gateway's event-loop lag). Unanswered pings count as lost (after 5 s).
 */
export class SipPinger {
  private sock: dgram.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly sentAt = new Map<string, number>();
  private seq = 0;
  readonly rtts: number[] = [];
  lost = 0;
  constructor(private readonly host: string, private readonly port: number, private readonly everyMs = 50) {}

  async start(): Promise<void> {
    const sock = dgram.createSocket('udp4');
    this.sock = sock;
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const me = sock.address().port;
    sock.on('message', (m) => {
      const text = m.toString();
      const id = /Call-ID:\s*(\S+)/i.exec(text)?.[1];
      const t = id ? this.sentAt.get(id) : undefined;
      if (id && t !== undefined) {
        this.sentAt.delete(id);
        this.rtts.push(performance.now() - t);
      }
    });
    this.timer = setInterval(() => {
      const now = performance.now();
      for (const [id, t] of this.sentAt) {
        if (now - t > 5000) {
          this.sentAt.delete(id);
          this.lost++;
        }
      }
      const id = `ping-${process.pid}-${++this.seq}`;
      const msg = [`OPTIONS sip:${this.host}:${this.port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bK${id};rport`, 'Max-Forwards: 70',
        `From: <sip:ping@127.0.0.1>;tag=${id}`, `To: <sip:${this.host}:${this.port}>`, `Call-ID: ${id}`, `CSeq: 1 OPTIONS`, 'Content-Length: 0', '', ''].join('\r\n');
      this.sentAt.set(id, performance.now());
      sock.send(msg, this.port, this.host);
    }, this.everyMs);
  }

  stop(): { count: number; p50: number; p99: number; max: number; lost: number } {
    if (this.timer) clearInterval(this.timer);
    this.sock?.close();
    this.sock = null;
    const lost = this.lost + this.sentAt.size;
    const s = [...this.rtts].sort((a, b) => a - b);
    const q = (f: number): number => (s.length ? s[Math.min(s.length - 1, Math.floor(f * s.length))]! : NaN);
    return { count: s.length, p50: q(0.5), p99: q(0.99), max: s.length ? s[s.length - 1]! : NaN, lost };
  }
}
