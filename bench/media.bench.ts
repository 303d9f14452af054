/**
 * Media benchmark: N concurrent bridged calls, browser (WebRTC: ICE, DTLS-SRTP) -> desk phone
 * (plain RTP/AVP over UDP), 50 packets/s each way per call, held for a fixed window; and the
 * same load through the anchors' Kamailio + rtpengine (../shared/anchors) in the same
 * invocation; and a plain UDP<->UDP SIPp run (the anchors' own scenarios with rtp_stream)
 * against both.
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/media.bench.js [--sizes 20,50,100] [--hold 20] [--cps 10] [--compare]
 *        [--sipp] [--sipp-calls 2000] [--sipp-cps 100] [--sipp-hold 3000] [--sipp-warmup 300]
 *        [--workers 0]
 *        [--rounds 1] [--only gateway|anchor] [--no-webrtc] [--calls-per-gen 25]
 *        [--quiet-max 40] [--quiet-wait 120] [--capture-sip] [--gw-log warn] [--leftover-wait 5]
 *        [--out DIR] [--max-seconds 1800]
 *
 *   e.g. node dist/bench/media.bench.js --compare --sipp --rounds 2
 *
 * SIPp warm-up: a server runs for days, so a fresh one measured from its first call mostly
 * measures V8 compiling the gateway (JIT, inline caches). Each SIPp run therefore first sends
 * --sipp-warmup calls (default 300; 0: none) through the same fresh server, gateway and anchor
 * alike, at the same rate and hold, waits until they are over, and only then measures: every
 * SIPp figure printed (CPU, packets, channel requests, not relayed, INVITE->2xx of a capture)
 * is of the measured window after the warm-up. The warm-up's own signalling CPU per call is
 * printed beside it as the "cold" figure.
 *
 * Each run gets a fresh server; with --compare the gateway and the anchor alternate, size by
 * size, round by round, and each run first waits (up to --quiet-wait s) for the machine to be
 * at most --quiet-max % busy, so that other work on this shared 2-core machine falls on both
 * alike. --capture-sip keeps a capture (tcpdump, else dumpcap) of the server's SIP port during SIPp runs (for the
 * timeline of a failure). Logs, per-call evidence of failures and results.json go to --out.
 *
 * Printed for each run:
 * - packets relayed per second, counted at the receivers (the generators' probe packets in
 *   the window; for SIPp, kernel counters of the RTP arriving at SIPp's media ports);
 * - CPU seconds and % (of one core) over the window, of the gateway's Node process and of its
 *   mediasoup workers (its children), or of rtpengine and Kamailio; of the load generators
 *   (each its own process, never counted as the server's); of the whole machine, and what
 *   other processes of the machine took;
 * - one-way latency per packet, p50/p90/p99/max, per direction: each payload carries its send
 *   time (CLOCK_MONOTONIC, the same in every process), the receiver subtracts it;
 * - a SIP OPTIONS ping to the server every 50 ms (RTT p50/p99/max): how long its SIP
 *   processing queues while media flows (for the gateway, its Node event loop's lag);
 * - what the server still holds after the calls (gateway: calls in /api/calls and UDP sockets
 *   of its Node process and workers beyond their idle set; rtpengine: its session count);
 * - what most likely bounded the run (machine, a generator, the server), and failures with
 *   their evidence (status, states, SDPs, in --out);
 * - mediasoup channel requests per call (a wrapper preloaded into the gateway counts them,
 *   bench/lib/channel-count.ts), and for SIPp the signalling process's CPU per call (Node or
 *   Kamailio) and the share of packets offered to the relay but not relayed;
 * - then the ratios gateway/anchor: packets per media-CPU-second, and latency.
 *
 * SIPp does not count the RTP it receives: SIPp runs count it with kernel counters, a chain
 * of verdict-less iptables rules (root) hooked at the top of INPUT for the run and removed
 * after, by relay and SIPp port ranges (RTP and shorter RTCP apart). For rtpengine they agree
 * with `rtpengine-ctl list totals` to the packet.
 *
 * Load generators (bench/lib/media-gen-*.ts, child processes): the browser side opens one
 * WebSocket per call, registers its own user, and runs a werift RTCPeerConnection per call
 * (PCMU only, so no transcoding anywhere and the payload arrives as sent); the phone side is
 * one UDP SIP user agent (`uas`) that answers every call with an RTP socket of its own.
 *
 * Bounded: every run has a call count and time limits; the whole invocation stops itself
 * after --max-seconds; every process it starts is stopped by its PID.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { anchorsDir } from './lib/servers.js';
import { mergeLatency, type LatencySummary, type RpcResponse, type WindowReport } from './lib/media-common.js';
import {
  alive,
  childPids,
  loadAverage,
  PacketCounter,
  procCpu,
  SipPinger,
  rtpengineSessions,
  rtpengineTotals,
  startAnchors,
  startGateway,
  udpSocketCount,
  udpSocketDrops,
  udpSockets,
  type Anchors,
  type GatewayProcess,
} from './lib/media-servers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '20,50,100' },
    hold: { type: 'string', default: '20' },
    cps: { type: 'string', default: '10' },
    compare: { type: 'boolean', default: false },
    sipp: { type: 'boolean', default: false },
    'sipp-calls': { type: 'string', default: '2000' },
    'sipp-cps': { type: 'string', default: '100' },
    'sipp-hold': { type: 'string', default: '3000' },
    'sipp-limit': { type: 'string', default: '1000' },
    'sipp-warmup': { type: 'string', default: '300' },
    'no-webrtc': { type: 'boolean', default: false },
    workers: { type: 'string', default: '0' },
    only: { type: 'string' },
    'calls-per-gen': { type: 'string', default: '25' },
    out: { type: 'string' },
    'max-seconds': { type: 'string', default: '1800' },
    'gw-log': { type: 'string', default: 'warn' },
    'kam-auth': { type: 'string', default: '1' },
    'capture-sip': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    'leftover-wait': { type: 'string', default: '5' },
    'quiet-max': { type: 'string', default: '40' },
    'quiet-wait': { type: 'string', default: '120' },
    help: { type: 'boolean', default: false },
  },
});

if (opt.help) {
  // the usage is this file's header comment
  const src = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const header = /\/\*\*([\s\S]*?)\*\//.exec(src)?.[1] ?? '';
  console.log(header.split('\n').map((l) => l.replace(/^ \* ?/, '')).join('\n').trim());
  process.exit(0);
}

const PASSWORD = 'anchors';
const CALLEE = 'uas';
const GW_PORTS = { min: 20000, max: 29999 };
const RTPE_PORTS = { min: 30000, max: 39999 };
const SIPP_UAC_MP = 10000;
const SIPP_UAS_MP = 15000;
const outDir = opt.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'media-bench-'));
fs.mkdirSync(outDir, { recursive: true });

const hardStop = setTimeout(() => {
  console.error(`media bench: --max-seconds ${opt['max-seconds']} reached, stopping`);
  void cleanup().finally(() => process.exit(4));
}, Number(opt['max-seconds']) * 1000);
hardStop.unref();

// ---------------------------------------------------------------------------------------------
// processes we started (stopped by PID at the end, whatever happens)

const started = new Set<ChildProcess>();
let gateway: GatewayProcess | null = null;
let anchors: Anchors | null = null;
let counter: PacketCounter | null = null;

async function cleanup(): Promise<void> {
  for (const c of started) if (c.pid && alive(c.pid)) c.kill('SIGKILL');
  started.clear();
  await gateway?.stop().catch(() => undefined);
  gateway = null;
  await anchors?.stop().catch(() => undefined);
  anchors = null;
  counter?.remove();
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// generators: RPC over the fork IPC channel

class Gen {
  private seq = 0;
  private readonly waiting = new Map<number, { res: (v: any) => void; rej: (e: Error) => void }>();
  readonly child: ChildProcess;
  constructor(readonly name: string, file: string) {
    this.child = fork(path.join(here, 'lib', file), [], { execArgv: process.env.MEDIA_GEN_PROF ? ['--cpu-prof', '--cpu-prof-dir', outDir] : [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, MEDIA_GEN_MAX_SECONDS: opt['max-seconds'] } });
    started.add(this.child);
    this.child.on('message', (m: RpcResponse) => {
      const w = this.waiting.get(m.rpc);
      if (!w) return;
      this.waiting.delete(m.rpc);
      if (m.error) w.rej(new Error(`${this.name}: ${m.error}`));
      else w.res(m.result);
    });
    this.child.on('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.rej(new Error(`${this.name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }
  get pid(): number {
    return this.child.pid!;
  }
  call<T = any>(cmd: string, args?: unknown, timeoutMs = 30_000): Promise<T> {
    const rpc = ++this.seq;
    return new Promise<T>((res, rej) => {
      const t = setTimeout(() => {
        this.waiting.delete(rpc);
        rej(new Error(`${this.name}: ${cmd} took more than ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(rpc, {
        res: (v) => {
          clearTimeout(t);
          res(v);
        },
        rej: (e) => {
          clearTimeout(t);
          rej(e);
        },
      });
      this.child.send({ rpc, cmd, args });
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const done = new Promise<void>((r) => this.child.once('exit', () => r()));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(t);
    }
    started.delete(this.child);
  }
}

// ---------------------------------------------------------------------------------------------
// CPU: per process, and the whole machine (/proc/stat) to see what others took

/** /proc/stat's first line: busy (user, nice, system, irq, softirq, steal), of which softirq and steal, and the total. */
function machineJiffies(): { busy: number; total: number; softirq: number; steal: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total, softirq: line[6] ?? 0, steal: line[7] ?? 0 };
}

type CpuGroups = Record<string, () => number[]>;

function snapshot(groups: CpuGroups): { at: number; cpu: Record<string, number>; machine: ReturnType<typeof machineJiffies> } {
  const cpu: Record<string, number> = {};
  for (const [k, pids] of Object.entries(groups)) cpu[k] = pids().reduce((s, p) => s + procCpu(p), 0);
  return { at: performance.now(), cpu, machine: machineJiffies() };
}

interface CpuDelta {
  wall: number;
  seconds: Record<string, number>;
  percent: Record<string, number>;
  /** the whole machine, % of one core (200 = both cores) */
  machinePercent: number;
  /** of which: softirq (the kernel delivering packets, charged to no process) and steal (the hypervisor) */
  softirqPercent: number;
  stealPercent: number;
}

function delta(a: ReturnType<typeof snapshot>, b: ReturnType<typeof snapshot>): CpuDelta {
  const wall = (b.at - a.at) / 1000;
  const seconds: Record<string, number> = {};
  const percent: Record<string, number> = {};
  for (const k of Object.keys(b.cpu)) {
    seconds[k] = b.cpu[k]! - (a.cpu[k] ?? 0);
    percent[k] = (100 * seconds[k]!) / wall;
  }
  const cores = os.cpus().length;
  const span = Math.max(1, b.machine.total - a.machine.total);
  const machinePercent = (100 * cores * (b.machine.busy - a.machine.busy)) / span;
  const softirqPercent = (100 * cores * (b.machine.softirq - a.machine.softirq)) / span;
  const stealPercent = (100 * cores * (b.machine.steal - a.machine.steal)) / span;
  return { wall, seconds, percent, machinePercent, softirqPercent, stealPercent };
}

// ---------------------------------------------------------------------------------------------
// one WebRTC -> UDP run

interface Target {
  kind: 'gateway' | 'anchor';
  name: string;
  sipTarget: string;
  sipPort: number;
  wsUrl: string;
  /** CPU groups: media first */
  cpu: CpuGroups;
  /** media CPU for the per-CPU-second figures */
  mediaKeys: string[];
  /** after the calls: what the server still holds */
  leftovers(): Promise<Record<string, unknown>>;
  /** mediasoup channel requests of the gateway so far (null: not a gateway) */
  channelRequests(): { total: number; methods: Record<string, number> } | null;
}

/** Channel requests between two readings, per call, and the methods that took most of them. */
function requestsPerCall(a: ReturnType<Target['channelRequests']>, b: ReturnType<Target['channelRequests']>, calls: number): ChannelUse | null {
  if (!a || !b || calls <= 0) return null;
  const methods = Object.entries(b.methods)
    .map(([m, n]): [string, number] => [m, (n - (a.methods[m] ?? 0)) / calls])
    .filter(([, n]) => n > 0)
    .sort((x, y) => y[1] - x[1]);
  return { perCall: (b.total - a.total) / calls, methods: Object.fromEntries(methods.map(([m, n]) => [m, Math.round(n * 100) / 100])) };
}

interface ChannelUse {
  perCall: number;
  methods: Record<string, number>;
}

interface WebrtcResult {
  server: string;
  calls: number;
  up: number;
  failed: number;
  window: number;
  /** probe packets received per second, both directions */
  pps: number;
  sent: number;
  received: number;
  toPhone: WindowReport;
  toBrowser: WindowReport;
  cpu: CpuDelta;
  mediaCpuSeconds: number;
  ppsPerMediaCpuSecond: number;
  setup: { answeredP50: number; connectedP50: number; connectedMax: number };
  failures: string[];
  leftovers: Record<string, unknown>;
  sipPing: ReturnType<SipPinger['stop']>;
  /** mediasoup channel requests per call, setup to hang-up (gateway) */
  channel: ChannelUse | null;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], f: number): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(f * s.length))]!;
};

async function runWebrtc(t: Target, n: number): Promise<WebrtcResult> {
  const hold = Number(opt.hold);
  const cps = Number(opt.cps);
  console.log(`   ${t.name}: ${n} WebRTC -> UDP calls at ${cps} cps, ${hold} s window`);
  // the browser side in K processes (one per --calls-per-gen calls): each event loop less
  // loaded, so less of its own queueing in the latency; the CPU is the same
  const k = Math.max(1, Math.ceil(n / Number(opt['calls-per-gen'])));
  const phone = new Gen('phone-gen', 'media-gen-phone.js');
  const browsers = Array.from({ length: k }, (_, i) => new Gen(`webrtc-gen${i + 1}`, 'media-gen-webrtc.js'));
  const failures: string[] = [];
  const ch0 = t.channelRequests();
  try {
    await phone.call('start', { target: t.sipTarget, user: CALLEE, password: PASSWORD });
    const users = Array.from({ length: n }, (_, i) => `wr${String(i + 1).padStart(4, '0')}`);
    const t0 = Date.now();
    const per = Math.ceil(n / k);
    const ups = await Promise.all(browsers.map((g, i) => g.call('start', {
      wsUrl: t.wsUrl, domain: '127.0.0.1', users: users.slice(i * per, (i + 1) * per), password: PASSWORD, callee: CALLEE, cps: cps / k, timeoutMs: 15_000, indexBase: i * per,
    }, (n / cps + 60) * 1000)));
    const up: Record<string, number> = {};
    for (const u of ups) for (const [key, v] of Object.entries(u as Record<string, number>)) up[key] = (up[key] ?? 0) + v;
    console.log(`   calls set up in ${((Date.now() - t0) / 1000).toFixed(1)} s by ${k} browser-side process(es): ${JSON.stringify(up)}`);
    // let media settle: every connected call receiving on both sides, 10 s at most
    for (let i = 0; i < 50; i++) {
      const bs = await Promise.all(browsers.map((g) => g.call('status')));
      const p = await phone.call('status');
      if (bs.every((b) => b.flowing === (b.connected ?? 0)) && p.flowing === p.up) break;
      await sleep(200);
    }
    await sleep(1000);
    const groups: CpuGroups = { ...t.cpu, 'gen webrtc': () => browsers.map((g) => g.pid), 'gen phone': () => [phone.pid] };
    for (const g of browsers) groups[`proc ${g.name}`] = () => [g.pid];
    const pinger = new SipPinger('127.0.0.1', t.sipPort);
    await pinger.start();
    const a = snapshot(groups);
    await Promise.all([...browsers.map((g) => g.call('windowStart')), phone.call('windowStart')]);
    await sleep(hold * 1000);
    const sipPing = pinger.stop();
    const [toPhone, ...bReports] = await Promise.all([phone.call<WindowReport>('windowStop'), ...browsers.map((g) => g.call<WindowReport>('windowStop'))]);
    const b = snapshot(groups);
    const cpu = delta(a, b);
    const toBrowser = mergeReports(bReports);
    toPhone.latency = mergeLatency([{ summary: toPhone.latency, hist: toPhone.latencyHist }]);
    toPhone.sendLag = mergeLatency([{ summary: toPhone.sendLag, hist: toPhone.sendLagHist }]);
    toPhone.latencyHist = [];
    toPhone.sendLagHist = [];
    const perCall = (await Promise.all(browsers.map((g) => g.call<any[]>('hangup', undefined, 60_000)))).flat();
    await sleep(1500);
    const phoneCalls = await phone.call<any[]>('calls');
    const leftovers = await t.leftovers();
    await sleep(300);
    const channel = requestsPerCall(ch0, t.channelRequests(), n);
    // evidence of failures
    for (const c of perCall) {
      if (c.phase === 'failed' || c.error) {
        failures.push(`call ${c.index} (${c.user}): ${c.phase}${c.status ? ` status ${c.status}` : ''}: ${c.error ?? c.endedBy ?? ''}; states: ${c.stateLog.join(', ')}`);
        fs.writeFileSync(path.join(outDir, `${t.kind}-n${n}-call${c.index}.txt`), `${JSON.stringify(c, null, 1)}\n\nOFFER\n${c.offer}\n\nANSWER\n${c.answer}\n`);
      } else if (c.endedBy) {
        failures.push(`call ${c.index} (${c.user}) ended early: ${c.endedBy}; states: ${c.stateLog.join(', ')}`);
      }
    }
    if (toPhone.silentCalls.length) failures.push(`${toPhone.silentCalls.length} calls up at the phone side received nothing in the window (phone-side call indexes ${toPhone.silentCalls.slice(0, 10).join(',')})`);
    if (toBrowser.silentCalls.length) failures.push(`${toBrowser.silentCalls.length} connected browser calls received nothing in the window (calls ${toBrowser.silentCalls.slice(0, 10).join(',')})`);
    const notByBye = phoneCalls.filter((c) => !c.ended || !/^BYE/.test(c.ended));
    if (notByBye.length) failures.push(`${notByBye.length} phone-side calls not ended by a BYE after the hang-up (${notByBye.slice(0, 3).map((c) => `${c.callId}: ${c.ended ?? 'still up'}`).join('; ')})`);
    const phoneLog = await phone.call<string[]>('log');
    if (phoneLog.length) fs.writeFileSync(path.join(outDir, `${t.kind}-n${n}-phone.log`), phoneLog.join('\n'));
    const reset = await phone.call('reset');
    if (reset.leftover.length) failures.push(`phone side: ${reset.leftover.length} calls still up after the caller's BYE`);
    const mediaCpuSeconds = t.mediaKeys.reduce((s, k) => s + (cpu.seconds[k] ?? 0), 0);
    const received = toPhone.received + toBrowser.received;
    const sent = toPhone.sent + toBrowser.sent;
    const connected = perCall.filter((c) => c.connectedMs > 0);
    return {
      server: t.name,
      calls: n,
      up: toBrowser.callsUp,
      failed: perCall.filter((c) => c.phase === 'failed').length,
      window: cpu.wall,
      pps: received / cpu.wall,
      sent,
      received,
      toPhone,
      toBrowser,
      cpu,
      mediaCpuSeconds,
      ppsPerMediaCpuSecond: mediaCpuSeconds > 0 ? received / mediaCpuSeconds : NaN,
      setup: {
        answeredP50: pct(connected.map((c) => c.answeredMs - c.registeredMs), 0.5),
        connectedP50: pct(connected.map((c) => c.connectedMs - c.answeredMs), 0.5),
        connectedMax: pct(connected.map((c) => c.connectedMs - c.answeredMs), 1),
      },
      failures,
      leftovers,
      sipPing,
      channel,
    };
  } finally {
    await Promise.all(browsers.map((g) => g.stop()));
    await phone.stop();
  }
}

function mergeReports(rs: WindowReport[]): WindowReport {
  return {
    sent: rs.reduce((s, r) => s + r.sent, 0),
    received: rs.reduce((s, r) => s + r.received, 0),
    silentCalls: rs.flatMap((r) => r.silentCalls),
    callsUp: rs.reduce((s, r) => s + r.callsUp, 0),
    latency: mergeLatency(rs.map((r) => ({ summary: r.latency, hist: r.latencyHist }))),
    latencyHist: [],
    sendLag: mergeLatency(rs.map((r) => ({ summary: r.sendLag, hist: r.sendLagHist }))),
    sendLagHist: [],
    other: rs.reduce((s, r) => s + r.other, 0),
  };
}

// ---------------------------------------------------------------------------------------------
// one SIPp UDP <-> UDP run (the anchors' scenarios, rtp_stream both ways)

interface SippResult {
  server: string;
  calls: number;
  cps: number;
  holdMs: number;
  successful: number;
  failed: number;
  wall: number;
  relayed: number;
  offered: number;
  expected: number;
  pps: number;
  cpu: CpuDelta;
  mediaCpuSeconds: number;
  packetsPerMediaCpuSecond: number;
  rtpengine?: Record<string, number>;
  leftovers: Record<string, unknown>;
  notes: string[];
  sipPing: ReturnType<SipPinger['stop']>;
  /** mediasoup channel requests per call attempted, first INVITE to the last call's end (gateway) */
  channel: ChannelUse | null;
  /** CPU per call attempted of the signalling process (gateway Node / Kamailio), in ms */
  signallingCpuMsPerCall: number;
  /** the same over the --sipp-warmup calls of the fresh server (NaN: no warm-up) */
  coldSignallingCpuMsPerCall: number;
  /** relayed packets per CPU-second of the whole server (signalling + relay) over the warm-up */
  coldPacketsPerServerCpuSecond: number;
  warmup: number;
}

function toneFile(dir: string): void {
  // 5 s of 440 Hz mu-law (what run-sipp.sh makes with sox), looped by rtp_stream
  const buf = Buffer.alloc(40000);
  const frame: number[] = [];
  for (let i = 0; i < 40000; i++) frame.push(Math.round(16000 * Math.sin((2 * Math.PI * 440 * i) / 8000)));
  for (let i = 0; i < 40000; i++) {
    const sample = frame[i]!;
    const sign = sample < 0 ? 0x80 : 0;
    let s = Math.min(Math.abs(sample), 32635) + 0x84;
    let e = 7;
    for (let m = 0x4000; (s & m) === 0 && e > 0; e--, m >>= 1);
    buf[i] = ~(sign | (e << 4) | ((s >> (e + 3)) & 0x0f)) & 0xff;
  }
  fs.writeFileSync(path.join(dir, 'anchors_tone.ul'), buf);
}

function runProcess(cmd: string, args: string[], cwd: string, timeoutMs: number, logName: string): { child: ChildProcess; done: Promise<number | null> } {
  const log = fs.openSync(path.join(cwd, logName), 'w');
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  started.add(child);
  // a tool that cannot start ends as an exit code, not as an unhandled error of the bench
  child.on('error', (e) => console.error(`   ${cmd}: ${e.message}`));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<number | null>((r) => child.on('close', (code) => {
    clearTimeout(killer);
    started.delete(child);
    r(code);
  }));
  return { child, done };
}

/** INVITE->2xx avg/p50/p99 as the UAC saw them, read from a capture by the anchors' own script. */
function inviteLatency(pcap: string, uacPort: number): string {
  try {
    const out = execFileSync('python3', [path.join(anchorsDir, 'lib', 'sip_latency.py'), pcap, String(uacPort), 'INVITE'], { timeout: 300_000 }).toString();
    const r = JSON.parse(out) as Record<string, { n: number; avg_ms: number; p50_ms: number; p99_ms: number; max_ms: number } | number>;
    const ok = r['2xx'];
    if (typeof ok !== 'object') return `no 2xx in the capture (${out.trim()})`;
    return `${ok.n} answered, avg ${ok.avg_ms} ms, p50 ${ok.p50_ms} ms, p99 ${ok.p99_ms} ms, max ${ok.max_ms} ms`;
  } catch (e) {
    return `not measured (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`;
  }
}

function sippStat(file: string): Record<string, string> {
  const rows = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(';'));
  const head = rows[0]!;
  const last = rows[rows.length - 1]!;
  return Object.fromEntries(head.map((h, i) => [h, last[i] ?? '']));
}

async function runSipp(t: Target): Promise<SippResult> {
  const calls = Number(opt['sipp-calls']);
  const cps = Number(opt['sipp-cps']);
  const holdMs = Number(opt['sipp-hold']);
  const maxS = Math.ceil(calls / cps + holdMs / 1000 + 60);
  const warmup = Math.max(0, Math.floor(Number(opt['sipp-warmup'])));
  const warmS = warmup > 0 ? Math.ceil(warmup / cps + holdMs / 1000 + 60) : 0;
  console.log(`   ${t.name}: SIPp UDP <-> UDP, ${warmup ? `warm-up ${warmup} calls (not counted), then ` : ''}${calls} measured calls at ${cps} cps, ${holdMs} ms hold`);
  const dir = fs.mkdtempSync(path.join(outDir, `sipp-${t.kind}-`));
  toneFile(dir);
  const scn = path.join(anchorsDir, 'sipp', 'scenarios');
  fs.writeFileSync(path.join(dir, 'uas.csv'), `SEQUENTIAL\n${CALLEE};3600;[authentication username=${CALLEE} password=${PASSWORD}]\n`);
  const uasPort = 5070 + Math.floor(Math.random() * 400) * 2;
  const uacPort = uasPort + 1;
  const notes: string[] = [];
  // the UAS registers from its own port first (as run-sipp.sh does), then answers there
  const reg = runProcess('sipp', ['-sf', path.join(scn, 'reg.xml'), t.sipTarget, '-i', '127.0.0.1', '-p', String(uasPort), '-inf', 'uas.csv', '-m', '1', '-nostdin', '-timeout', '10s', '-timeout_error'], dir, 20_000, 'sipp_uas_reg.out');
  if ((await reg.done) !== 0) throw new Error(`SIPp callee registration failed (see ${dir}/sipp_uas_reg.out)`);
  const uas = runProcess('sipp', ['-sf', path.join(scn, 'uas_call.xml'), '-i', '127.0.0.1', '-mi', '127.0.0.1', '-p', String(uasPort), '-mp', String(SIPP_UAS_MP),
    '-nostdin', '-timeout', `${warmS + maxS + 20}s`, '-trace_err', '-trace_stat', '-fd', '1', '-stf', 'uas_stat.csv'], dir, (warmS + maxS + 40) * 1000, 'sipp_uas.out');
  await sleep(500);
  const uacArgs = (m: number, timeoutS: number, stat: string): string[] => ['-sf', path.join(scn, 'uac_call.xml'), t.sipTarget, '-i', '127.0.0.1', '-nostdin', '-timeout', `${timeoutS}s`, '-timeout_error', '-max_recv_loops', '1000',
    '-trace_err', '-trace_stat', '-fd', '1', '-s', CALLEE, '-mi', '127.0.0.1', '-p', String(uacPort), '-mp', String(SIPP_UAC_MP),
    '-m', String(m), '-r', String(cps), '-l', opt['sipp-limit']!, '-d', String(holdMs), '-pause_msg_ign', '-stf', stat];
  // the warm-up: the same calls through the same fresh server, before anything is counted; its
  // signalling CPU per call is the "cold" figure (a fresh process: JIT compiling, caches filling)
  let coldSignallingCpuMsPerCall = NaN;
  let coldPacketsPerServerCpuSecond = NaN;
  if (warmup > 0) {
    const signalling = t.kind === 'gateway' ? 'gw node' : 'kamailio';
    // the server's own processes only (never the generators)
    const server: CpuGroups = Object.fromEntries(Object.entries(t.cpu).filter(([k]) => !k.startsWith('proc ')));
    const rk = t.kind === 'gateway' ? 'gw' : 'rtpe';
    const wc0 = counter?.read() ?? {};
    const w0 = snapshot(server);
    const wu = runProcess('sipp', uacArgs(warmup, warmS, 'warmup_stat.csv'), dir, (warmS + 30) * 1000, 'sipp_uac_warmup.out');
    const wcode = await wu.done;
    const w1 = snapshot(server);
    const wc1 = counter?.read() ?? {};
    const wd = delta(w0, w1);
    coldSignallingCpuMsPerCall = (1000 * (wd.seconds[signalling] ?? NaN)) / warmup;
    const wRelayed = (wc1[`${rk}_to_sipp`] ?? 0) - (wc0[`${rk}_to_sipp`] ?? 0);
    const wServerCpu = Object.values(wd.seconds).reduce((a, b) => a + b, 0);
    coldPacketsPerServerCpuSecond = counter && wServerCpu > 0 ? wRelayed / wServerCpu : NaN;
    const ws = sippStat(path.join(dir, 'warmup_stat.csv'));
    notes.push(`warm-up (not counted): ${ws['SuccessfulCall(C)']} ok, ${ws['FailedCall(C)']} failed${wcode !== 0 ? ` (exit code ${wcode}, see ${dir})` : ''}; cold figures: ${t.kind === 'gateway' ? 'Node' : 'Kamailio'} CPU per call ${f2(coldSignallingCpuMsPerCall)} ms, relayed packets per whole-server CPU-second ${f0(coldPacketsPerServerCpuSecond)}`);
    // the last calls' teardown, and the channel counter's file (written within a second)
    await sleep(2500);
  }
  let capture: ReturnType<typeof runProcess> | null = null;
  if (opt['capture-sip']) {
    // SIP only (the server's port), bounded by time; for the timeline of a failure
    const file = path.join(dir, 'sip.pcap');
    capture = captureTool === 'tcpdump'
      ? runProcess('tcpdump', ['-i', 'lo', '-n', '-U', '-s', '0', '-B', '8192', '-w', file, `udp port ${t.sipPort}`], dir, (maxS + 40) * 1000, 'tcpdump.out')
      // Wireshark's capturer where tcpdump is not installed: classic pcap (-P), 8 MB buffer
      : runProcess('dumpcap', ['-q', '-i', 'lo', '-P', '-B', '8', '-w', file, '-f', `udp port ${t.sipPort}`], dir, (maxS + 40) * 1000, 'dumpcap.out');
    await sleep(1000);
  }
  const drops0 = udpSocketDrops(t.sipPort);
  const pinger = new SipPinger('127.0.0.1', t.sipPort);
  await pinger.start();
  const uacPids: number[] = [];
  const groups: CpuGroups = { ...t.cpu, 'sipp uac': () => uacPids, 'sipp uas': () => [uas.child.pid!] };
  const c0 = counter?.read() ?? {};
  const ch0 = t.channelRequests();
  const r0 = t.kind === 'anchor' ? rtpengineTotals() : {};
  const a = snapshot(groups);
  const uac = runProcess('sipp', uacArgs(calls, maxS, 'uac_stat.csv'), dir, (maxS + 30) * 1000, 'sipp_uac.out');
  uacPids.push(uac.child.pid!);
  // the UAC's CPU is gone with its /proc entry when it exits: keep the last reading (every 250 ms)
  let uacCpu = 0;
  const poll = setInterval(() => {
    const v = procCpu(uac.child.pid!);
    if (v > 0) uacCpu = v;
  }, 250);
  const code = await uac.done;
  clearInterval(poll);
  const ping = pinger.stop();
  const b = snapshot({ ...groups, 'sipp uac': () => [] });
  b.cpu['sipp uac'] = uacCpu;
  const c1 = counter?.read() ?? {};
  const r1 = t.kind === 'anchor' ? rtpengineTotals() : {};
  const cpu = delta(a, b);
  // stop the UAS (soft exit first), by its PID
  uas.child.kill('SIGUSR1');
  const soft = setTimeout(() => uas.child.kill('SIGKILL'), 6000);
  await uas.done;
  clearTimeout(soft);
  await sleep(1000);
  const drops = udpSocketDrops(t.sipPort) - drops0;
  if (capture) {
    capture.child.kill('SIGINT');
    await capture.done;
    notes.push(`INVITE->2xx from the capture (µs-precise, the anchors' lib/sip_latency.py): ${inviteLatency(path.join(dir, 'sip.pcap'), uacPort)}`);
  }
  const leftovers = await t.leftovers();
  await sleep(300);
  const stat = sippStat(path.join(dir, 'uac_stat.csv'));
  notes.push(`SIP OPTIONS ping to the server every 50 ms during the run: RTT p50 ${ping.p50.toFixed(2)} ms, p99 ${ping.p99.toFixed(1)} ms, max ${ping.max.toFixed(0)} ms, ${ping.lost} unanswered (its SIP processing queue)`);
  if (drops > 0) notes.push(`the kernel dropped ${drops} datagrams on the server's SIP socket (receive buffer full)`);
  const successful = Number(stat['SuccessfulCall(C)']);
  const failed = Number(stat['FailedCall(C)']);
  if (code !== 0) notes.push(`SIPp UAC exit code ${code}: ${failed} failed (see ${dir})`);
  const rk = t.kind === 'gateway' ? 'gw' : 'rtpe';
  const relayed = (c1[`${rk}_to_sipp`] ?? 0) - (c0[`${rk}_to_sipp`] ?? 0);
  const offered = (c1[`sipp_to_${rk}`] ?? 0) - (c0[`sipp_to_${rk}`] ?? 0);
  const stray = (c1[`${rk}_to_other`] ?? 0) - (c0[`${rk}_to_other`] ?? 0);
  if (stray > 0) notes.push(`${stray} packets from the relay's port range went to ports outside SIPp's media ranges`);
  const nonRtp = (c1[`${rk}_to_sipp_other`] ?? 0) - (c0[`${rk}_to_sipp_other`] ?? 0);
  const plain = (c1[`${rk}_to_sipp_200`] ?? 0) - (c0[`${rk}_to_sipp_200`] ?? 0);
  notes.push(`the relay also sent SIPp ${nonRtp} shorter packets (RTCP), not counted as relayed RTP; ${relayed - plain} of the relayed RTP packets were longer than the 200 bytes (IP) SIPp sent`);
  const mediaCpuSeconds = t.mediaKeys.reduce((s, k) => s + (cpu.seconds[k] ?? 0), 0);
  // per call attempted: failed calls cost requests and CPU too
  const channel = requestsPerCall(ch0, t.channelRequests(), calls);
  if (channel) notes.push(`mediasoup channel requests per call: ${f2(channel.perCall)} ${JSON.stringify(channel.methods)}`);
  const signallingCpuMsPerCall = (1000 * (t.kind === 'gateway' ? (cpu.seconds['gw node'] ?? NaN) : (cpu.seconds.kamailio ?? NaN))) / Math.max(1, calls);
  notes.push(`${t.kind === 'gateway' ? 'Node' : 'Kamailio'} CPU per call: ${f2(signallingCpuMsPerCall)} ms${warmup ? ` measured after the warm-up (cold, in the warm-up: ${f2(coldSignallingCpuMsPerCall)} ms)` : ' (no warm-up: a cold server)'}`);
  const rtpengine = t.kind === 'anchor' ? Object.fromEntries(['Total managed sessions', 'Total relayed packets', 'Total relayed packet errors', 'Total number of 1-way streams', 'Total number of streams with no relayed packets'].map((k) => [k, (r1[k] ?? 0) - (r0[k] ?? 0)])) : undefined;
  return {
    server: t.name,
    calls,
    cps,
    holdMs,
    successful,
    failed,
    wall: cpu.wall,
    relayed,
    offered,
    expected: successful * 2 * Math.floor(holdMs / 20),
    pps: relayed / cpu.wall,
    cpu,
    mediaCpuSeconds,
    packetsPerMediaCpuSecond: mediaCpuSeconds > 0 ? relayed / mediaCpuSeconds : NaN,
    ...(rtpengine ? { rtpengine } : {}),
    leftovers,
    notes,
    sipPing: ping,
    channel,
    signallingCpuMsPerCall,
    coldSignallingCpuMsPerCall,
    coldPacketsPerServerCpuSecond,
    warmup,
  };
}

// ---------------------------------------------------------------------------------------------
// the servers

function gatewayConfig(users: string[]): Record<string, unknown> {
  return {
    // the load comes from loopback: trusted, so the flood guard passes it
    sip: { advertise: '127.0.0.1', trustedPeers: ['127.0.0.0/8'] },
    http: {},
    registrar: { store: { type: 'memory' }, authenticate: true },
    users: users.map((username) => ({ username, password: PASSWORD })),
    media: { listenAddress: '127.0.0.1', workers: Number(opt.workers), minPort: GW_PORTS.min, maxPort: GW_PORTS.max },
    log: { level: opt['gw-log'], pretty: false },
  };
}

function gatewayTarget(gw: GatewayProcess, baseline: string[]): Target {
  const baselineSockets = baseline.length;
  return {
    kind: 'gateway',
    name: 'gateway',
    sipTarget: gw.sipTarget,
    sipPort: gw.udpPort,
    wsUrl: gw.wsUrl,
    cpu: { 'gw node': () => [gw.pid], 'gw workers': () => gw.workerPids(), ...Object.fromEntries(gw.workerPids().map((w) => [`proc worker ${w}`, () => [w]])) },
    mediaKeys: ['gw node', 'gw workers'],
    channelRequests: () => gw.channelRequests(),
    leftovers: async () => {
      // calls the gateway still lists, and UDP sockets it (Node + workers) holds beyond its idle count
      const deadline = Date.now() + Number(opt['leftover-wait']) * 1000;
      let calls: any[] = [];
      let sockets = 0;
      for (;;) {
        calls = ((await gw.api('calls').catch(() => ({ calls: [] }))) as { calls: any[] }).calls;
        sockets = udpSocketCount([gw.pid, ...gw.workerPids()]) - baselineSockets;
        if ((calls.length === 0 && sockets <= 0) || Date.now() > deadline) break;
        await sleep(250);
      }
      const out: Record<string, unknown> = { calls: calls.length, extraUdpSockets: sockets };
      if (calls.length) out.sample = calls.slice(0, 2);
      if (sockets > 0) {
        // which process holds them (the Node process: SSRC sniffers; a worker: transports), and on which ports
        const base = new Set(baseline);
        const names = new Map<string, string>([[String(gw.pid), 'node'], ...gw.workerPids().map((w): [string, string] => [String(w), `worker ${w}`])]);
        out.extra = udpSockets([gw.pid, ...gw.workerPids()]).filter((x) => !base.has(x)).map((x) => `${names.get(x.split(':')[0]!) ?? '?'} ${x.slice(x.indexOf(':') + 1)}`);
      }
      return out;
    },
  };
}

function anchorTarget(an: Anchors): Target {
  return {
    kind: 'anchor',
    name: 'kamailio+rtpengine',
    sipTarget: an.sipTarget,
    sipPort: 5060,
    wsUrl: an.wsUrl,
    cpu: { rtpengine: () => [an.rtpenginePid], kamailio: () => [an.kamailioPid, ...childPids(an.kamailioPid)] },
    mediaKeys: ['rtpengine'],
    channelRequests: () => null,
    leftovers: async () => {
      const deadline = Date.now() + 5000;
      let s = rtpengineSessions();
      while (s > 0 && Date.now() < deadline) {
        await sleep(250);
        s = rtpengineSessions();
      }
      return { rtpengineSessions: s };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// printing

const f0 = (x: number): string => (Number.isFinite(x) ? Math.round(x).toString() : '-');
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
const ms = (us: number): string => (Number.isFinite(us) ? (us / 1000).toFixed(2) : '-');

function lat(l: LatencySummary): string {
  return `${ms(l.p50)}/${ms(l.p90)}/${ms(l.p99)}/${ms(l.max)}`;
}

/** What most likely bounded a run, from the CPU figures (CPU % of one core; 2 cores here). */
function limits(cpu: CpuDelta, sendLagP99Us: number[]): string {
  const out: string[] = [];
  const cores = os.cpus().length;
  if (cpu.machinePercent >= 100 * cores * 0.9) out.push(`the machine: both cores ${f0(cpu.machinePercent)} % busy`);
  for (const [k, v] of Object.entries(cpu.percent)) {
    if (!k.startsWith('proc ') && k !== 'gen phone' && k !== 'gw node' && k !== 'kamailio' && k !== 'sipp uac' && k !== 'sipp uas') continue;
    if (v >= 85) out.push(`${k.replace(/^proc /, '')} at ${f0(v)} % of a core`);
  }
  if ((cpu.percent.rtpengine ?? 0) >= 85 * Math.min(2, cores)) out.push(`rtpengine at ${f0(cpu.percent.rtpengine!)} %`);
  const lag = Math.max(...sendLagP99Us.filter(Number.isFinite));
  if (lag > 10_000) out.push(`generators' pacing late (send lag p99 ${ms(lag)} ms): their event loops queue, and so do the latencies they measure`);
  const others = cpu.machinePercent - cpu.softirqPercent - cpu.stealPercent - Object.entries(cpu.percent).filter(([k]) => !k.startsWith('proc ')).reduce((a, [, v]) => a + v, 0);
  if (cpu.softirqPercent + cpu.stealPercent > 15) out.push(`kernel softirq ${f0(cpu.softirqPercent)} % + hypervisor steal ${f0(cpu.stealPercent)} %`);
  if (others > 25) out.push(`other processes of the machine took about ${f0(others)} % (not ours)`);
  return out.length ? out.join('; ') : 'nothing evident: headroom left';
}

const label = (r: { server: string; round?: number }): string => `${r.server}${r.round ? ` #${r.round}` : ''}`.padEnd(22);

function printWebrtc(rs: (WebrtcResult & { round?: number })[]): void {
  console.log('\nWebRTC (DTLS-SRTP, werift) -> UDP phone, PCMU 50 pps each way per call; window figures; CPU % of one core');
  console.log('server                 calls up/fail  pps rx   loss%  media CPU s (%)          other server %   gens % (webrtc/phone)  machine %  pkts per media-CPU-s  latency ms p50/p90/p99/max  to phone | to browser   send lag p99 ms (webrtc/phone)');
  for (const r of rs) {
    const mediaPct = (100 * r.mediaCpuSeconds) / r.window;
    const detail = r.server === 'gateway'
      ? `node ${f1(r.cpu.percent['gw node']!)} + workers ${f1(r.cpu.percent['gw workers']!)}`
      : `rtpengine ${f1(r.cpu.percent.rtpengine!)}`;
    const otherServer = r.server === 'gateway' ? '-' : `kam ${f1(r.cpu.percent.kamailio!)}`;
    const loss = r.sent > 0 ? (100 * (r.sent - r.received)) / r.sent : NaN;
    console.log(
      `${label(r)} ${String(r.calls).padStart(5)} ${`${r.up}/${r.failed}`.padStart(7)} ${f0(r.pps).padStart(7)} ${f2(loss).padStart(7)}  ${`${f2(r.mediaCpuSeconds)} (${f1(mediaPct)}: ${detail})`.padEnd(42)} ${otherServer.padEnd(8)} ` +
      `${`${f1(r.cpu.percent['gen webrtc']!)}/${f1(r.cpu.percent['gen phone']!)}`.padStart(14)} ${f1(r.cpu.machinePercent).padStart(10)} ${f0(r.ppsPerMediaCpuSecond).padStart(12)}       ${lat(r.toPhone.latency)} | ${lat(r.toBrowser.latency)}   ${ms(r.toBrowser.sendLag.p99)}/${ms(r.toPhone.sendLag.p99)}`,
    );
  }
}

function printSipp(rs: (SippResult & { round?: number })[]): void {
  const w = rs[0]?.warmup ?? 0;
  console.log(`\nSIPp UDP <-> UDP (anchors scenarios, rtp_stream PCMU both ways); over the measured UAC run${w ? `, after a warm-up of ${w} calls on the same server (not counted)` : ' of a cold server (no warm-up)'}; CPU % of one core`);
  console.log('server                 calls ok/failed   wall s   relayed pkts (expected)   relayed pps   media CPU s (%)                      kamailio %  sipp % (uac/uas)  machine %  pkts per media-CPU-s');
  for (const r of rs) {
    const detail = r.server === 'gateway' ? `node ${f1(r.cpu.percent['gw node']!)} + workers ${f1(r.cpu.percent['gw workers']!)}` : `rtpengine ${f1(r.cpu.percent.rtpengine!)}`;
    console.log(
      `${label(r)} ${`${r.successful}/${r.failed}`.padStart(15)} ${f1(r.wall).padStart(8)}   ${`${r.relayed} (${r.expected})`.padEnd(24)} ${f0(r.pps).padStart(11)}   ${`${f2(r.mediaCpuSeconds)} (${f1((100 * r.mediaCpuSeconds) / r.wall)}: ${detail})`.padEnd(36)} ` +
      `${(r.cpu.percent.kamailio !== undefined ? f1(r.cpu.percent.kamailio) : '-').padStart(10)} ${`${f1(r.cpu.percent['sipp uac'] ?? NaN)}/${f1(r.cpu.percent['sipp uas']!)}`.padStart(17)} ${f1(r.cpu.machinePercent).padStart(10)} ${f0(r.packetsPerMediaCpuSecond).padStart(14)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------

/** Waits (at most --quiet-wait s) until the machine's busy CPU over 3 s is at most --quiet-max % (of one core); returns what it saw. */
async function waitQuiet(): Promise<string> {
  const max = Number(opt['quiet-max']);
  const end = Date.now() + Number(opt['quiet-wait']) * 1000;
  for (;;) {
    const a = machineJiffies();
    await sleep(3000);
    const b = machineJiffies();
    const busy = (100 * os.cpus().length * (b.busy - a.busy)) / Math.max(1, b.total - a.total);
    if (busy <= max) return `machine ${f0(busy)} % busy before the run`;
    if (Date.now() > end) return `machine still ${f0(busy)} % busy before the run (waited ${opt['quiet-wait']} s for <= ${max} %)`;
  }
}

async function withServer<T>(kind: 'gateway' | 'anchor', maxN: number, fn: (t: Target) => Promise<T>): Promise<T> {
  let t: Target;
  if (kind === 'gateway') {
    const users = [CALLEE, ...Array.from({ length: maxN }, (_, i) => `wr${String(i + 1).padStart(4, '0')}`)];
    gateway = await startGateway(gatewayConfig(users), outDir);
    await sleep(500);
    const base = udpSockets([gateway.pid, ...gateway.workerPids()]);
    console.log(`   gateway pid ${gateway.pid} (mediasoup workers ${gateway.workerPids().join(',')}) sip ${gateway.sipTarget} ws ${gateway.wsUrl}, log ${gateway.logFile}`);
    t = gatewayTarget(gateway, base);
  } else {
    anchors = await startAnchors({ KAM_AUTH: opt['kam-auth']!, KAM_RTCPMUX: '1', RTPE_PORTS: `${RTPE_PORTS.min}-${RTPE_PORTS.max}` });
    console.log(`   kamailio pid ${anchors.kamailioPid}, rtpengine pid ${anchors.rtpenginePid}`);
    t = anchorTarget(anchors);
  }
  try {
    return await fn(t);
  } finally {
    if (kind === 'gateway') {
      await gateway?.stop();
      gateway = null;
    } else {
      await anchors?.stop();
      anchors = null;
    }
  }
}

const median = (xs: number[]): number => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2) : NaN;
};

function hasCommand(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What --capture-sip records with: tcpdump, else Wireshark's dumpcap (null: neither installed). */
function findCaptureTool(): 'tcpdump' | 'dumpcap' | null {
  return (['tcpdump', 'dumpcap'] as const).find(hasCommand) ?? null;
}
let captureTool: 'tcpdump' | 'dumpcap' | null = null;

async function main(): Promise<void> {
  if (opt['capture-sip']) {
    captureTool = findCaptureTool();
    if (!captureTool) throw new Error('--capture-sip needs tcpdump or dumpcap (Wireshark), and tshark to read the capture');
  }
  const sizes = opt.sizes!.split(',').map(Number).filter((x) => x > 0);
  const maxN = Math.max(0, ...sizes);
  const rounds = Math.max(1, Number(opt.rounds));
  if (maxN > 500) throw new Error('at most 500 WebRTC calls');
  if (Number(opt['sipp-calls']) > 20000) throw new Error('at most 20000 SIPp calls');
  if (rounds > 5) throw new Error('at most 5 rounds');
  console.log(`media bench: ${os.cpus().length} cores, load ${loadAverage()}, logs in ${outDir}`);
  const targets: ('gateway' | 'anchor')[] = opt.only ? [opt.only as 'gateway' | 'anchor'] : opt.compare ? ['gateway', 'anchor'] : ['gateway'];
  // what the chosen runs need, checked before anything starts (a missing relay used to show up
  // only as a failed run and a line in its log, minutes in)
  const needed = [
    ...(targets.includes('anchor') ? ['kamailio', 'rtpengine'] : []),
    ...(opt.sipp ? ['sipp', 'iptables'] : []),
  ];
  const missingTools = needed.filter((tool) => !hasCommand(tool));
  if (missingTools.length) {
    throw new Error(`missing ${missingTools.join(', ')}: scripts/install-system-deps.sh --bench installs them (Debian 12, as root)`);
  }
  if (opt.sipp && process.getuid?.() !== 0) throw new Error('--sipp counts packets with iptables rules: run as root');
  if (opt.sipp) {
    // RTP of the anchors' scenarios is PCMU, 20 ms: 160 bytes of payload, an IP packet of 200
    // bytes (216 from our gateway, which adds a 16-byte header extension); RTCP (the relays send
    // some, SIPp none) is shorter and counted apart
    const sippPorts = `${SIPP_UAC_MP}:${SIPP_UAS_MP + 4999}`;
    const rules = [];
    for (const [rk, range] of [['gw', GW_PORTS], ['rtpe', RTPE_PORTS]] as const) {
      const relay = `${range.min}:${range.max}`;
      rules.push(
        { name: `${rk}_to_sipp`, sport: relay, dport: sippPorts, ipLength: '190:65535' },
        { name: `${rk}_to_sipp_other`, sport: relay, dport: sippPorts, ipLength: '0:189' },
        { name: `${rk}_to_sipp_200`, sport: relay, dport: sippPorts, ipLength: '200' },
        { name: `sipp_to_${rk}`, sport: sippPorts, dport: relay, ipLength: '190:65535' },
        { name: `${rk}_to_other`, sport: relay, dport: `1:${SIPP_UAC_MP - 1}` },
      );
    }
    counter = new PacketCounter(rules);
    if (!counter.install()) counter = null;
  }
  const webrtc: (WebrtcResult & { round: number })[] = [];
  const sipp: (SippResult & { round: number })[] = [];
  // interleaved: each size on the gateway then on the anchor, each on a fresh server, so that
  // whatever else this shared machine runs falls on both alike
  for (let round = 1; round <= rounds; round++) {
    if (!opt['no-webrtc']) {
      for (const n of sizes) {
        for (const kind of targets) {
          const quiet = await waitQuiet();
          console.log(`\n== round ${round}: ${kind}, ${n} WebRTC -> UDP calls (${quiet}, load ${loadAverage()})`);
          try {
            const r = await withServer(kind, maxN, (t) => runWebrtc(t, n));
            webrtc.push({ ...r, round });
            printWebrtc([r]);
            console.log(`   limit: ${limits(r.cpu, [r.toBrowser.sendLag.p99, r.toPhone.sendLag.p99])}`);
            for (const f of r.failures.slice(0, 12)) console.log(`   ! ${f}`);
            if (r.failures.length > 12) console.log(`   ! ... ${r.failures.length - 12} more (see ${outDir})`);
            console.log(`   SIP OPTIONS ping RTT in the window: p50 ${r.sipPing.p50.toFixed(2)} ms, p99 ${r.sipPing.p99.toFixed(1)} ms, max ${r.sipPing.max.toFixed(0)} ms, ${r.sipPing.lost} unanswered`);
            if (r.channel) console.log(`   mediasoup channel requests per call (setup to hang-up): ${f2(r.channel.perCall)} ${JSON.stringify(r.channel.methods)}`);
            console.log(`   setup: INVITE->200 p50 ${f0(r.setup.answeredP50)} ms, 200->DTLS connected p50 ${f0(r.setup.connectedP50)} ms (max ${f0(r.setup.connectedMax)}); after hang-up the server holds ${JSON.stringify(r.leftovers)}`);
          } catch (e) {
            console.error(`   run failed: ${(e as Error).stack}`);
          }
        }
      }
    }
    if (opt.sipp) {
      for (const kind of targets) {
        const quiet = await waitQuiet();
        console.log(`\n== round ${round}: ${kind}, SIPp UDP <-> UDP (${quiet}, load ${loadAverage()})`);
        try {
          const r = await withServer(kind, maxN, (t) => runSipp(t));
          sipp.push({ ...r, round });
          printSipp([r]);
          console.log(`   limit: ${limits(r.cpu, [])}`);
          for (const nte of r.notes) console.log(`   ! ${nte}`);
          if (r.rtpengine) console.log(`   rtpengine totals delta: ${JSON.stringify(r.rtpengine)}`);
          console.log(`   offered to the relay ${r.offered} packets, relayed ${r.relayed} (${f2((100 * (r.offered - r.relayed)) / Math.max(1, r.offered))} % not relayed); after the run the server holds ${JSON.stringify(r.leftovers)}`);
        } catch (e) {
          console.error(`   SIPp run failed: ${(e as Error).stack}`);
        }
      }
    }
  }

  // ---- summary
  console.log(`\n================ summary (load now ${loadAverage()}) ================`);
  if (webrtc.length) printWebrtc(webrtc);
  if (sipp.length) printSipp(sipp);
  const ratios: string[] = [];
  for (const n of sizes) {
    const per: { pps: number; cpu: number; workers: number; p50: [number, number]; p99: [number, number] }[] = [];
    for (let round = 1; round <= rounds; round++) {
      const g = webrtc.find((r) => r.server === 'gateway' && r.calls === n && r.round === round);
      const k = webrtc.find((r) => r.server !== 'gateway' && r.calls === n && r.round === round);
      if (!g || !k) continue;
      const x = {
        pps: g.pps / k.pps,
        cpu: g.ppsPerMediaCpuSecond / k.ppsPerMediaCpuSecond,
        workers: g.received / (g.cpu.seconds['gw workers'] ?? NaN) / k.ppsPerMediaCpuSecond,
        p50: [g.toPhone.latency.p50 / k.toPhone.latency.p50, g.toBrowser.latency.p50 / k.toBrowser.latency.p50] as [number, number],
        p99: [g.toPhone.latency.p99 / k.toPhone.latency.p99, g.toBrowser.latency.p99 / k.toBrowser.latency.p99] as [number, number],
      };
      per.push(x);
      ratios.push(`N=${n} round ${round}: pps ${f2(x.pps)}; pkts per media-CPU-s ${f2(x.cpu)} (Node + workers vs rtpengine), ${f2(x.workers)} (workers alone vs rtpengine); latency p50 ${f2(x.p50[0])}/${f2(x.p50[1])}, p99 ${f2(x.p99[0])}/${f2(x.p99[1])} (to phone/to browser); mediasoup channel requests per call ${g.channel ? f2(g.channel.perCall) : '-'}`);
    }
    if (per.length > 1) {
      ratios.push(`N=${n} median of ${per.length} rounds: pkts per media-CPU-s ${f2(median(per.map((x) => x.cpu)))} (Node + workers), ${f2(median(per.map((x) => x.workers)))} (workers alone); latency p50 ${f2(median(per.map((x) => x.p50[0])))}/${f2(median(per.map((x) => x.p50[1])))}, p99 ${f2(median(per.map((x) => x.p99[0])))}/${f2(median(per.map((x) => x.p99[1])))}`);
    }
  }
  for (let round = 1; round <= rounds; round++) {
    const gs = sipp.find((r) => r.server === 'gateway' && r.round === round);
    const ks = sipp.find((r) => r.server !== 'gateway' && r.round === round);
    if (!gs || !ks) continue;
    const gWorkers = gs.relayed / (gs.cpu.seconds['gw workers'] ?? NaN);
    const gAll = gs.relayed / ((gs.cpu.seconds['gw workers'] ?? 0) + (gs.cpu.seconds['gw node'] ?? 0));
    const kRtpe = ks.relayed / (ks.cpu.seconds.rtpengine ?? NaN);
    const kAll = ks.relayed / ((ks.cpu.seconds.rtpengine ?? 0) + (ks.cpu.seconds.kamailio ?? 0));
    const gNotRelayed = (gs.offered - gs.relayed) / Math.max(1, gs.offered);
    const kNotRelayed = (ks.offered - ks.relayed) / Math.max(1, ks.offered);
    ratios.push(`SIPp round ${round}: packets offered but not relayed ${f2(100 * gNotRelayed)} % / ${f2(100 * kNotRelayed)} %; signalling CPU per call (Node / Kamailio) ${f2(gs.signallingCpuMsPerCall)} / ${f2(ks.signallingCpuMsPerCall)} ms = ${f2(gs.signallingCpuMsPerCall / ks.signallingCpuMsPerCall)}${gs.warmup ? ` warm (cold, in the warm-up: ${f2(gs.coldSignallingCpuMsPerCall)} / ${f2(ks.coldSignallingCpuMsPerCall)} ms)` : ' cold'}; mediasoup channel requests per call ${gs.channel ? f2(gs.channel.perCall) : '-'}`);
    ratios.push(`SIPp round ${round}: calls ok ${gs.successful}/${ks.successful}; relayed pps ${f2(gs.pps / ks.pps)}; relayed packets per CPU-second: relay alone (mediasoup workers / rtpengine) ${f0(gWorkers)} / ${f0(kRtpe)} = ${f2(gWorkers / kRtpe)}; ` +
      `whole server (Node + workers / Kamailio + rtpengine, signalling included) ${f0(gAll)} / ${f0(kAll)} = ${f2(gAll / kAll)}${gs.warmup ? ` warm (cold, in the warm-up: ${f0(gs.coldPacketsPerServerCpuSecond)} / ${f0(ks.coldPacketsPerServerCpuSecond)} = ${f2(gs.coldPacketsPerServerCpuSecond / ks.coldPacketsPerServerCpuSecond)})` : ' cold'}; the bar: about 125000 per core for rtpengine`);
  }
  if (ratios.length) {
    console.log('\nratios gateway / anchor:');
    for (const r of ratios) console.log(`  ${r}`);
  }
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ webrtc, sipp }, null, 1));
  console.log(`\nresults: ${path.join(outDir, 'results.json')}`);
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanup();
    clearTimeout(hardStop);
    process.exit();
  });
