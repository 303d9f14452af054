/**
 * How many concurrent taps (mixed, 16 kHz, bidirectional: the server echoes every frame back
 * and it is played into the call) one gateway process holds with the pooled p99 deviation of
 * frame arrival under 5 ms; and, with --sipp, what SIP load costs while they run.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/taps.bench.js [--steps=50,100,200,300,400]
 *     [--seconds=10] [--threads=0] [--no-pin] [--sipp] [--sipp-cps=50] [--sipp-seconds=10]
 *     [--sipp-taps=N]
 *
 *   --threads      tap worker threads of the gateway (taps.threads; 0: one per core)
 *   --sipp         after the steps: SIPp places --sipp-cps calls/s through the gateway for
 *                  --sipp-seconds, once with no tap running and once with --sipp-taps taps
 *                  (default: the largest N that held), and prints INVITE->200 p50/p99 of each
 *   --no-pin       do not pin the gateway and the load to cores (taskset; pinned, the gateway starts
 *                  on core 0, so its default tap threads, one per core it may run on, are one)
 *   --all          run every step (default: stop at the first that misses the criterion)
 *   --tap-nice=N   taps.threadNice of the gateway: its tap threads at nice N (the SIP thread first)
 *   --shield       run the gateway, its mediasoup worker and the load at nice -10 (as root): other
 *                  work on a shared machine then takes less of their cores (say so with figures)
 *   --node-load    the phones and the echo server in Node even when `cc` can build the native ones
 *   BENCH_DEBUG=1  per step: tap states, each thread's clock, loop delays, the phones' own lateness
 *   BENCH_PROFILE=DIR  the gateway (each of its threads) writes --cpu-prof profiles to DIR
 *
 * Processes: this one drives and reads /proc; a child is the gateway (the real MediaService on
 * one mediasoup worker, a TapService), whose calls are set up through the media API as the
 * proxy does (offer from the caller, answer from the callee, select), so no SIP load muddles
 * it; the load is two more: the `ws` echo server (a child: every binary frame back, each
 * frame's arrival timed) and the plain RTP "phones" (one UDP socket per call leg, PCMU tones
 * every 20 ms from one clock, spread over the period as independent phones are; bench/lib/rtp-phones.c built with `cc` when it can be, which
 * never reads what comes back, else the same in Node). The load's CPU is reported apart and
 * is never the gateway's.
 * For each step: N calls, N taps, warm-up, then a window in which we measure the
 * inter-arrival of frames at the ws server (deviation from 20 ms, all taps pooled), the
 * frames each tap sent and the echoes it played, and the CPU (user + system) of each thread of
 * the gateway (its main thread, each tap worker thread, from /proc/<pid>/task), of its
 * mediasoup worker and of each load process. The answer is the largest N whose pooled p99
 * deviation stays under 5 ms with every frame sent and played, the call's RTP reaching every tap and none dropped. Figures depend
 * on the machine (2 cores here, shared by every process and by whatever else runs: the load
 * average is printed first).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { encodeUlaw } from '../server/audio/g711.js';
import { ToneGenerator } from '../server/audio/tone.js';
import { answerHelp } from './lib/help.js';

const arg = (name: string, def: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const CLK_TCK = 100;

// ------------------------------------------------------------------------------ gateway role

async function gatewayRole(): Promise<void> {
  // pinned (the driver's default): on core 0 before the gateway starts, so that its defaults
  // (tap threads: one per core it may run on, os.availableParallelism) see the one core it has
  if (process.argv.includes('--pin-self')) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
    } catch {
      // no taskset: the driver's pinning after start is all there is
    }
  }
  const { startTestGateway } = await import('../test/helpers/gateway.js');
  const threads = Number(arg('threads', '0'));
  const gw = await startTestGateway({ media: { workers: 1, timeout: 0 }, taps: { maxTaps: 100_000, threads, maxLoad: 1, threadNice: Number(arg('tap-nice', '0')) } });
  const media = gw.media!;
  const taps = gw.taps;
  if (process.env.BENCH_DEBUG) gw.calls.on('ended', (c) => c.endReason !== 'bench step over' && console.log(`    call ${c.id} ended: ${c.endReason}`));
  if (process.env.BENCH_DEBUG) taps.on('stopped', (t, reason) => reason !== 'step over' && console.log(`    tap ${t.id} ended: ${reason} ${JSON.stringify(t.lastError)} call ${gw.calls.get(t.call.id)?.state ?? "gone"} ${gw.calls.get(t.call.id)?.endReason ?? ""} media ${media.has(t.call.id)}`));
  const sdp = (port: number, id: number): string =>
    ['v=0', `o=- ${id} 1 IN IP4 127.0.0.1`, 's=load', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\r\n');
  const portOf = (s: string): number => Number(/m=audio (\d+)/.exec(s)![1]);
  let n = 0;
  let refused = { count: 0, why: '' };
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const loop = monitorEventLoopDelay({ resolution: 1 });
  if (process.env.BENCH_DEBUG) loop.enable();
  process.on('message', async (m: { cmd: string; legs?: [number, number][]; url?: string }) => {
    if (m.cmd === 'setup') {
      const out: [number, number][] = [];
      for (const [callerPort, calleePort] of m.legs!) {
        const id = ++n;
        const call = gw.calls.create(`load-${id}`, `t${id}`, { uri: `sip:caller${id}@127.0.0.1`, display: null, transport: 'udp', address: '127.0.0.1', port: callerPort }, `sip:callee${id}@127.0.0.1`, []);
        call.media = true;
        call.onEnd(() => media.delete(call.id));
        const flags = 'rtp';
        const toCallee = await media.offer(call.id, 'caller', 0, sdp(callerPort, id), flags);
        const toCaller = await media.answer(call.id, 'callee', 0, sdp(calleePort, id + 100000));
        await media.select(call.id, 0);
        call.state = 'answered';
        call.answeredAt = Date.now();
        gw.calls.updated(call);
        try {
          taps.start(call.id, { url: `${m.url!}/${id}`, mix: 'mixed', rate: 16000 });
        } catch (e) {
          // admission control (taps.maxLoad, the CPU guard) said no: the step cannot hold
          refused.count++;
          refused.why = e instanceof Error ? e.message : String(e);
        }
        out.push([portOf(toCaller), portOf(toCallee)]);
      }
      process.send!({ cmd: 'ready', ports: out, workerPids: media.pool.pids, tapThreads: taps.pool.osThreadIds, refused });
      refused = { count: 0, why: '' };
    } else if (m.cmd === 'stats') {
      const list = taps.list();
      const sum = (k: 'framesSent' | 'framesPlayed' | 'framesDropped' | 'framesReceived'): number => list.reduce((a, t) => a + t.counters[k], 0);
      const json = list.map((t) => t.toJSON() as { playing: boolean; queuedMs: number });
      process.send!({ cmd: 'stats', rtpCaller: list.reduce((a, t) => a + t.counters.rtpCaller, 0), rtpCallee: list.reduce((a, t) => a + t.counters.rtpCallee, 0), playing: json.filter((j) => j.playing).length, queuedMs: Math.max(0, ...json.map((j) => j.queuedMs)), taps: list.length, sent: sum('framesSent'), played: sum('framesPlayed'), dropped: sum('framesDropped'), received: sum('framesReceived'), states: list.reduce<Record<string, number>>((a, t) => ((a[t.state] = (a[t.state] ?? 0) + 1), a), {}), errors: [...new Set(list.map((t) => t.lastError?.error).filter(Boolean))].slice(0, 3), clocks: await taps.pool.clocks(), tapThreads: taps.pool.osThreadIds, mem: process.memoryUsage().rss, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 });
      loop.reset();
    } else if (m.cmd === 'teardown') {
      for (const t of taps.list()) t.stop('step over');
      gw.calls.endAll('bench step over');
      process.send!({ cmd: 'done' });
    } else if (m.cmd === 'exit') {
      await gw.close();
      process.exit(0);
    }
  });
  process.send!({ cmd: 'up', sipPort: gw.ports.udp });
}

// ------------------------------------------------------------------------------ echo role

/**
 * The tap server in Node (`ws`), when there is no C compiler for bench/lib/ws-echo.c: the
 * same output and the same commands on stdin (see that file): every binary frame back, its
 * arrival timed per connection. Costs more CPU than the native one, and its own GC and
 * event-loop delays show in what it measures (loopMax says how much).
 */
async function echoRole(): Promise<void> {
  const { WebSocketServer } = await import('ws');
  const http = await import('node:http');
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const server = http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  let measuring = false;
  let dev = new Float64Array(1 << 16);
  let nDev = 0;
  interface Conn { last: number; j: number; sum: number; n: number }
  const conns = new Set<Conn>();
  wss.on('connection', (ws) => {
    const c: Conn = { last: -1, j: 0, sum: 0, n: 0 };
    conns.add(c);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      const now = performance.now();
      if (c.last >= 0) {
        const d = Math.abs(now - c.last - 20);
        // RFC 3550 §6.4.1 interarrival jitter: J += (|D| - J) / 16, and its mean over the window
        c.j += (d - c.j) / 16;
        if (measuring) {
          if (nDev === dev.length) {
            const grown = new Float64Array(dev.length * 2);
            grown.set(dev);
            dev = grown;
          }
          dev[nDev++] = d;
          c.sum += c.j;
          c.n++;
        }
      }
      c.last = now;
      ws.send(data);
    });
    ws.on('close', () => conns.delete(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  process.stdout.write(`port ${(server.address() as import('node:net').AddressInfo).port}\n`);
  const readline = await import('node:readline');
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line === 'start') {
      nDev = 0;
      for (const c of conns) {
        c.sum = 0;
        c.n = 0;
      }
      loop.reset();
      loop.enable();
      measuring = true;
    } else if (line === 'stop') {
      measuring = false;
      loop.disable();
      const sorted = dev.slice(0, nDev).sort();
      const perTap = [...conns].filter((c) => c.n > 0).map((c) => c.sum / c.n);
      const f = (x: number): string => x.toFixed(3);
      process.stdout.write(`report frames=${nDev} p50=${f(percentile(sorted, 0.5))} p99=${f(percentile(sorted, 0.99))} max=${f(nDev ? sorted[nDev - 1]! : NaN)} jitter=${f(perTap.reduce((a, b) => a + b, 0) / (perTap.length || 1))} jitterMax=${f(perTap.length ? Math.max(...perTap) : NaN)} loopMax=${f(loop.max / 1e6)} clock=process\n`);
    }
  });
  rl.on('close', () => {
    wss.close();
    server.close();
    process.exit(0);
  });
}

// ------------------------------------------------------------------------------ phones role

/**
 * The RTP phones in Node, when there is no C compiler for bench/lib/rtp-phones.c: the same
 * command line and the same commands on stdin (see that file). Costs far more CPU than the
 * native one (a Node send per packet, and it reads what comes back).
 */
async function phonesRole(framesFile: string, legs: number, firstPort: number): Promise<void> {
  const all = fs.readFileSync(framesFile);
  const tones = [0, 1].map((t) => Array.from({ length: 50 }, (_, k) => all.subarray((t * 50 + k) * 160, (t * 50 + k + 1) * 160)));
  const sockets: dgram.Socket[] = [];
  let port = firstPort;
  for (let i = 0; i < legs; i++) {
    for (;;) {
      const s = dgram.createSocket('udp4');
      const ok = await new Promise<boolean>((r) => {
        s.once('error', () => r(false));
        s.bind(port++, '127.0.0.1', () => r(true));
      });
      if (ok) {
        sockets.push(s);
        break;
      }
      s.close();
    }
  }
  process.stdout.write(`ports ${sockets.map((s) => s.address().port).join(' ')}\n`);
  let running = false;
  let sent = 0;
  let late = 0;
  let maxLateUs = 0;
  const readline = await import('node:readline');
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.startsWith('go ') && !running) {
      const dst = line.slice(3).trim().split(/\s+/).map(Number);
      const state = sockets.map((_, i) => ({ seq: (i * 7919) & 0xffff, ts: i * 1000, ssrc: 0x10000 + i }));
      // leg i at phase i % PHASES of the 20 ms period, as independent phones are (the
      // native phones use 10 phases of 2 ms; timers here are whole milliseconds)
      const PHASES = 4;
      const STEP_MS = 20 / PHASES;
      let step = 0;
      const epoch = performance.now();
      running = true;
      const sendPhase = (): void => {
        const f = Math.floor(step / PHASES);
        for (let i = step % PHASES; i < sockets.length; i += PHASES) {
          const st = state[i]!;
          // a header per packet: the send happens a tick later (the address goes through a lookup)
          const header = Buffer.allocUnsafe(12);
          header[0] = 0x80;
          header[1] = f === 0 ? 0x80 : 0;
          header.writeUInt16BE(st.seq, 2);
          header.writeUInt32BE(st.ts >>> 0, 4);
          header.writeUInt32BE(st.ssrc, 8);
          st.seq = (st.seq + 1) & 0xffff;
          st.ts += 160;
          sockets[i]!.send([header, tones[i % 2]![f % 50]!], dst[i]!, '127.0.0.1');
          sent++;
        }
        step++;
      };
      const tick = (): void => {
        if (!running) return;
        const lateMs = performance.now() - (epoch + step * STEP_MS);
        if (lateMs > 2) late++;
        maxLateUs = Math.max(maxLateUs, lateMs * 1000);
        const due = Math.floor((performance.now() - epoch) / STEP_MS);
        while (step <= due) sendPhase();
        setTimeout(tick, Math.max(0, epoch + step * STEP_MS - performance.now()));
      };
      tick();
    } else if (line.startsWith('stop')) {
      running = false;
      process.stdout.write(`stats sent=${sent} late=${late} maxLateUs=${Math.round(maxLateUs)}\n`);
    }
  });
  rl.on('close', () => {
    running = false;
    for (const s of sockets) s.close();
    process.exit(0);
  });
}

// ------------------------------------------------------------------------------ driver role

function childPids(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** 100 frames of 160 PCMU bytes: a 440 Hz second for even legs, 880 Hz for odd ones (the phones' file). */
function writeToneFrames(file: string): void {
  const out = Buffer.alloc(100 * 160);
  [440, 880].forEach((freq, t) => {
    const g = new ToneGenerator(freq, 8000);
    for (let k = 0; k < 50; k++) out.set(encodeUlaw(g.next()), (t * 50 + k) * 160);
  });
  fs.writeFileSync(file, out);
}

/**
 * A load program: the native one (bench/lib/NAME.c) compiled once per run when `cc` works,
 * else this file's Node role of the same name and protocol.
 */
function loadProgram(dir: string, name: 'rtp-phones' | 'ws-echo', role: string): { cmd: string; args: string[]; native: boolean } {
  const src = fileURLToPath(new URL(`../../bench/lib/${name}.c`, import.meta.url));
  const bin = `${dir}/${name}`;
  if (!process.argv.includes('--node-load') && fs.existsSync(src)) {
    try {
      execFileSync('cc', ['-O2', '-o', bin, src, '-lpthread'], { stdio: 'pipe' });
      return { cmd: bin, args: [], native: true };
    } catch {
      // no compiler: the Node role
    }
  }
  return { cmd: process.execPath, args: [fileURLToPath(import.meta.url), `--role=${role}`], native: false };
}

/** A child speaking lines: commands on its stdin, answers on its stdout. */
interface LineChild {
  pid: number;
  send(line: string): void;
  line(): Promise<string>;
  close(): Promise<void>;
  kill(): void;
}

function lineChild(prog: { cmd: string; args: string[] }, args: string[]): LineChild {
  const c = spawn(prog.cmd, [...prog.args, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  c.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  return {
    pid: c.pid!,
    send: (l) => void c.stdin!.write(`${l}\n`),
    line: () => (lines.length ? Promise.resolve(lines.shift()!) : new Promise((r) => waiters.push(r))),
    async close() {
      if (c.exitCode !== null) return;
      const done = new Promise((r) => c.once('exit', r));
      c.stdin!.end();
      await done;
    },
    kill: () => void c.kill('SIGKILL'),
  };
}

interface PhoneSet {
  pid: number;
  legs: [number, number][];
  go(ports: [number, number][]): void;
  stop(): Promise<string>;
  close(): Promise<void>;
  kill(): void;
}

/** N calls' phones (2N legs) in their own process. */
async function openPhones(prog: { cmd: string; args: string[] }, frames: string, n: number): Promise<PhoneSet> {
  const c = lineChild(prog, [frames, String(2 * n), '20000']);
  const ports = (await c.line()).split(' ').slice(1).map(Number);
  const legs: [number, number][] = [];
  for (let i = 0; i < n; i++) legs.push([ports[2 * i]!, ports[2 * i + 1]!]);
  return {
    pid: c.pid,
    legs,
    go: (remote) => c.send(`go ${remote.flat().join(' ')}`),
    async stop() {
      c.send('stop');
      return c.line();
    },
    close: () => c.close(),
    kill: () => c.kill(),
  };
}

/** CPU seconds of one thread, user and system apart. */
function threadCpu(pid: number, tid: number): { user: number; sys: number } {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK };
  } catch {
    return { user: 0, sys: 0 };
  }
}

/** CPU seconds of a process (all its threads), user and system apart. */
function processCpu(pid: number): { user: number; sys: number } {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK };
  } catch {
    return { user: 0, sys: 0 };
  }
}

interface Cpu {
  user: number;
  sys: number;
}
const pct = (a: Cpu, b: Cpu, wall: number): Cpu => ({ user: (100 * (b.user - a.user)) / wall, sys: (100 * (b.sys - a.sys)) / wall });
const fmtCpu = (c: Cpu): string => `${(c.user + c.sys).toFixed(0)} (${c.sys.toFixed(0)} sys)`;

/** What the echo server measured over a window (ms). */
interface EchoReport {
  frames: number;
  p50: number;
  p99: number;
  max: number;
  jitter: number;
  jitterMax: number;
  /** the echo server's own longest stall (native: one batch of events; Node: event-loop delay) */
  loopMax: number;
  /** what timed each arrival: `kernel` (SO_TIMESTAMPNS receive timestamps) or `process` */
  clock: string;
}

function parseReport(line: string): EchoReport {
  const v = (k: string): number => Number(new RegExp(`${k}=([^ ]+)`).exec(line)?.[1] ?? NaN);
  return { frames: v('frames'), p50: v('p50'), p99: v('p99'), max: v('max'), jitter: v('jitter'), jitterMax: v('jitterMax'), loopMax: v('loopMax'), clock: /clock=(\w+)/.exec(line)?.[1] ?? 'process' };
}

interface StepResult extends EchoReport {
  n: number;
  /** taps admission control refused (taps.maxLoad): such a step does not hold */
  refused: number;
  framesPerTapPerSec: number;
  playedPerTapPerSec: number;
  /** RTP packets of the call (both parties) that reached each tap, per s: 100 when every packet does */
  rtpPerTapPerSec: number;
  dropped: number;
  /** % of a core, user and system: the gateway's main thread, each tap thread, its mediasoup workers */
  main: Cpu;
  taps: Cpu[];
  mediasoup: Cpu;
  /** the load, never the gateway's: the echo server, the phones, this driver */
  echo: Cpu;
  phones: Cpu;
  driver: Cpu;
  phoneStats: string;
  lateTicks: number;
  tapLoopP99: number[];
  rssMb: number;
  /** CPU per tap per 20 ms frame, us: all tap threads, and mediasoup (robust to a starved run, unlike the deviation) */
  usPerTapFrame: { taps: number; mediasoup: number };
}

interface Stats {
  rtpCaller: number;
  rtpCallee: number;
  playing: number;
  queuedMs: number;
  sent: number;
  received: number;
  played: number;
  dropped: number;
  clocks: { caughtUp: number; skipped: number; maxLateMs: number; loop: { p99Ms: number }; media: Record<string, number> }[];
  tapThreads: (number | null)[];
  mem: number;
  states: Record<string, number>;
  errors: string[];
  loopP99: number;
}

async function driver(): Promise<void> {
  answerHelp(import.meta.url);
  if (process.argv.includes('--sipp')) {
    try {
      execFileSync('sipp', ['-v'], { stdio: 'ignore' });
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') {
        console.error('--sipp needs SIPp (`sipp`) on the PATH');
        process.exit(2);
      }
    }
  }
  const steps = arg('steps', '50,100,200,300,400').split(',').map(Number);
  const seconds = Number(arg('seconds', '10'));
  const dir = fs.mkdtempSync(`${os.tmpdir()}/taps-bench-`);
  const frames = `${dir}/frames.bin`;
  writeToneFrames(frames);
  const phoneProg = loadProgram(dir, 'rtp-phones', 'phones');
  const echoProg = loadProgram(dir, 'ws-echo', 'echo');

  const self = fileURLToPath(import.meta.url);
  const waitFor = (c: ChildProcess, cmd: string): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      const on = (m: Record<string, unknown>): void => {
        if (m.cmd === cmd) {
          c.off('message', on);
          resolve(m);
        }
      };
      c.on('message', on);
    });
  const echo = lineChild(echoProg, []);
  const url = `ws://127.0.0.1:${(await echo.line()).split(' ')[1]}/tap`;
  const pin = !process.argv.includes('--no-pin') && os.cpus().length >= 2;
  const child: ChildProcess = fork(self, ['--role=gateway', `--threads=${arg('threads', '0')}`, `--tap-nice=${arg('tap-nice', '0')}`, ...(pin ? ['--pin-self'] : [])], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [] });
  const next = (cmd: string): Promise<Record<string, unknown>> => waitFor(child, cmd);
  const { sipPort } = (await next('up')) as { sipPort: number };
  // the gateway's Node process (main and tap threads) alone on core 0; its mediasoup worker
  // and the load (echo server, phones, this driver) on core 1 (taskset; --no-pin: unpinned)
  const taskset = (cpu: string, pid: number): void => {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpu, String(pid)], { stdio: 'ignore' });
    } catch {
      // no taskset: unpinned
    }
  };
  if (pin) {
    taskset('0', child.pid!);
    taskset('1', process.pid);
    taskset('1', echo.pid);
  }
  // --shield: every thread of the gateway, its mediasoup workers and the load at nice -10, so
  // that other work on the machine (not part of what is measured) takes less from them
  const shield = process.argv.includes('--shield');
  const tapNice = Number(arg('tap-nice', '0'));
  let tapTids = new Set<string>();
  const renice = (pid: number): void => {
    if (!shield) return;
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      return; // gone already
    }
    for (const tid of tids) {
      try {
        // the tap threads keep their distance to the rest (--tap-nice)
        execFileSync('renice', ['-n', String(-10 + (tapTids.has(tid) ? tapNice : 0)), '-p', tid], { stdio: 'ignore' });
      } catch {
        // not permitted: as it is
      }
    }
  };
  renice(child.pid!);
  renice(echo.pid);
  let phones: PhoneSet | null = null;
  const stopAll = (): void => {
    child.kill('SIGKILL');
    echo.kill();
    phones?.kill();
  };
  process.once('uncaughtException', (e) => {
    console.error(e);
    stopAll();
    process.exit(1);
  });
  process.once('SIGINT', () => {
    stopAll();
    process.exit(130);
  });

  const results: StepResult[] = [];
  console.log(`taps bench: mixed 16 kHz, echo server, ${seconds} s per step, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'})${pin ? ', gateway pinned to core 0, its mediasoup worker and the load on core 1' : ', unpinned'}${shield ? ', all of it at nice -10 (--shield)' : ''}, tap threads: ${arg('threads', '0') === '0' ? `one per core it may run on${pin ? ' (1)' : ''}` : arg('threads', '0')}${tapNice ? ` at nice +${tapNice}` : ''}, load: ${phoneProg.native ? 'native phones (rtp-phones.c)' : 'Node phones'}, ${echoProg.native ? 'native echo server (ws-echo.c)' : 'Node echo server (ws)'}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('  taps | deviation from 20 ms p50 / p99 / max | jitter mean / worst | per tap per s: frames sent / played / RTP in | dropped | CPU % of a core (sys): gateway main | tap threads | mediasoup || load: echo | phones | driver | echo stall max | CPU per tap per frame: tap threads / mediasoup');
  const setup = async (n: number): Promise<{ workers: number[]; refused: { count: number; why: string } }> => {
    phones = await openPhones(phoneProg, frames, n);
    if (pin) taskset('1', phones.pid);
    renice(phones.pid);
    const ready = next('ready');
    child.send({ cmd: 'setup', legs: phones.legs, url });
    const { ports, workerPids, tapThreads, refused } = (await ready) as { ports: [number, number][]; workerPids: number[]; tapThreads: (number | null)[]; refused: { count: number; why: string } };
    if (refused.count) console.log(`  ${String(n).padStart(4)} | ${refused.count} taps refused by admission control: ${refused.why}`);
    tapTids = new Set(tapThreads.filter((t) => t !== null).map(String));
    phones.go(ports);
    await new Promise((r) => setTimeout(r, 3000)); // warm-up: FIFOs, injection, JIT
    const workers = workerPids.length ? workerPids : childPids(child.pid!);
    if (pin) for (const w of workers) taskset('1', w);
    for (const w of workers) renice(w);
    renice(child.pid!); // threads started since (libuv's pool)
    return { workers, refused };
  };
  const teardown = async (): Promise<string> => {
    const ps = await phones!.stop();
    const done = next('done');
    child.send({ cmd: 'teardown' });
    await done;
    await phones!.close();
    phones = null;
    await new Promise((res) => setTimeout(res, 1000));
    return ps;
  };
  const measure = async (): Promise<EchoReport> => {
    echo.send('stop');
    return parseReport(await echo.line());
  };
  for (const n of steps) {
    const { workers, refused } = await setup(n);
    const pid = child.pid!;
    const stats = async (): Promise<Stats> => {
      const p = next('stats');
      child.send({ cmd: 'stats' });
      return (await p) as unknown as Stats;
    };
    const s0 = await stats();
    const tids = s0.tapThreads.filter((t): t is number => t !== null);
    const sample = (): Record<string, Cpu | Cpu[]> => ({
      main: threadCpu(pid, pid),
      taps: tids.map((t) => threadCpu(pid, t)),
      mediasoup: workers.map(processCpu).reduce((a, b) => ({ user: a.user + b.user, sys: a.sys + b.sys }), { user: 0, sys: 0 }),
      echo: processCpu(echo.pid),
      phones: processCpu(phones!.pid),
      driver: processCpu(process.pid),
    });
    const c0 = sample();
    echo.send('start');
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const rep = await measure();
    const c1 = sample();
    const wall = (performance.now() - t0) / 1000;
    const s1 = await stats();
    if (process.env.BENCH_DEBUG) console.log(`    RTP per tap per s from the caller ${((s1.rtpCaller - s0.rtpCaller) / n / wall).toFixed(1)}, the callee ${((s1.rtpCallee - s0.rtpCallee) / n / wall).toFixed(1)}; frames received from the server per tap per s ${((s1.received - s0.received) / n / wall).toFixed(1)}, ${s1.playing} taps playing, longest queue ${s1.queuedMs} ms; taps: ${JSON.stringify(s1.states)} ${JSON.stringify(s1.errors)}; tap thread clocks: ${JSON.stringify(s1.clocks)}; gateway main loop delay p99 ${s1.loopP99.toFixed(1)} ms`);
    const sum = (st: Stats, k: 'caughtUp' | 'skipped'): number => st.clocks.reduce((a, c) => a + c[k], 0);
    if (process.env.BENCH_DEBUG) console.log(`    tap threads' media packets per tap per s: ${Object.keys(s1.clocks[0]?.media ?? {}).map((k) => `${k} ${(s1.clocks.reduce((a, c, i) => a + c.media[k]! - (s0.clocks[i]?.media[k] ?? 0), 0) / n / wall).toFixed(1)}`).join(', ')}`);
    const one = (k: string): Cpu => pct(c0[k] as Cpu, c1[k] as Cpu, wall);
    const r: StepResult = {
      n,
      ...rep,
      framesPerTapPerSec: (s1.sent - s0.sent) / n / wall,
      playedPerTapPerSec: (s1.played - s0.played) / n / wall,
      rtpPerTapPerSec: (s1.rtpCaller - s0.rtpCaller + s1.rtpCallee - s0.rtpCallee) / n / wall,
      dropped: s1.dropped - s0.dropped,
      main: one('main'),
      taps: (c1.taps as Cpu[]).map((v, i) => pct((c0.taps as Cpu[])[i]!, v, wall)),
      mediasoup: one('mediasoup'),
      echo: one('echo'),
      phones: one('phones'),
      driver: one('driver'),
      phoneStats: '',
      lateTicks: sum(s1, 'skipped') - sum(s0, 'skipped'),
      tapLoopP99: s1.clocks.map((c) => c.loop.p99Ms),
      rssMb: s1.mem / 1024 / 1024,
      usPerTapFrame: { taps: 0, mediasoup: 0 },
      refused: refused.count,
    };
    const perFrame = (c: Cpu): number => ((c.user + c.sys) / 100) * 1e6 / (n * Math.max(1, r.framesPerTapPerSec));
    r.usPerTapFrame = { taps: r.taps.reduce((a, c) => a + perFrame(c), 0), mediasoup: perFrame(r.mediasoup) };
    r.phoneStats = await teardown();
    results.push(r);
    console.log(
      `  ${String(n).padStart(4)} | ${r.p50.toFixed(2)} / ${r.p99.toFixed(2)} / ${r.max.toFixed(1)} ms | ${r.jitter.toFixed(2)} / ${r.jitterMax.toFixed(2)} ms | ${r.framesPerTapPerSec.toFixed(1)} / ${r.playedPerTapPerSec.toFixed(1)} / ${r.rtpPerTapPerSec.toFixed(0)} | ${r.dropped} | ${fmtCpu(r.main)} | ${r.taps.map(fmtCpu).join(' + ') || '-'} | ${fmtCpu(r.mediasoup)} || ${fmtCpu(r.echo)} | ${fmtCpu(r.phones)} | ${fmtCpu(r.driver)} | ${r.loopMax.toFixed(1)} ms | ${r.usPerTapFrame.taps.toFixed(0)} / ${r.usPerTapFrame.mediasoup.toFixed(0)} us`,
    );
    if (process.env.BENCH_DEBUG) console.log(`    skipped ${r.lateTicks}, tap thread loop p99 ${r.tapLoopP99.map((x) => x.toFixed(1)).join(' / ')} ms, RSS ${r.rssMb.toFixed(0)} MB, phones ${r.phoneStats}`);
    if (!good(r) && !process.argv.includes('--all')) break;
  }
  const best = results.filter(good).at(-1);
  const clock = results[0]?.clock === 'kernel' ? 'the kernel\'s receive timestamp at the server\'s socket (SO_TIMESTAMPNS)' : 'the echo server\'s clock when it read the frame';
  console.log(`\nframe arrival timed by ${clock}`);
  console.log(best
    ? `\nholds ${best.n} taps (mixed, 16 kHz, echoed back) with pooled p99 frame deviation ${best.p99.toFixed(2)} ms (< 5 ms; max ${best.max.toFixed(1)} ms; RFC 3550 jitter mean ${best.jitter.toFixed(2)} ms); CPU % of a core: gateway main thread ${fmtCpu(best.main)}, tap threads ${best.taps.map(fmtCpu).join(' + ') || '-'}, mediasoup ${fmtCpu(best.mediasoup)}; the load: echo server ${fmtCpu(best.echo)}, phones ${fmtCpu(best.phones)}`
    : '\nno step met the criterion (pooled p99 deviation under 5 ms, 50 frames/s each way per tap, the call\'s RTP reaching it, nothing dropped)');

  if (process.argv.includes('--sipp')) {
    const cps = Number(arg('sipp-cps', '50'));
    const secs = Number(arg('sipp-seconds', '10'));
    const withTaps = Number(arg('sipp-taps', String(best?.n ?? steps[0])));
    const target = `127.0.0.1:${sipPort}`;
    // SIPp is load like the phones: on their core when pinned (inherited from this driver) and
    // at their priority under --shield (else, at nice 0 beside nice -10 work, its own waits
    // for a core would be measured as the gateway's INVITE->200)
    const quiet = await sippLoad(target, cps, secs, renice);
    await setup(withTaps);
    echo.send('start');
    const loaded = await sippLoad(target, cps, secs, renice);
    const rep = await measure();
    await teardown();
    const fmt = (x: SippFigures): string => `${x.calls} calls (${x.failed} failed), INVITE->200 p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms, max ${x.max.toFixed(1)} ms`;
    console.log(`\nSIPp ${cps} calls/s for ${secs} s through the gateway:`);
    console.log(`  no taps:        ${fmt(quiet)}`);
    console.log(`  ${String(withTaps).padStart(4)} taps:     ${fmt(loaded)}; the taps' pooled p99 frame deviation meanwhile ${rep.p99.toFixed(2)} ms`);
    console.log(`  ratio p99 with / without taps: ${(loaded.p99 / quiet.p99).toFixed(2)}`);
  }
  child.send({ cmd: 'exit' });
  await echo.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

// every frame sent and played, the call's audio reaching the tap (2 x 50 RTP packets/s), nothing dropped
const good = (x: StepResult): boolean => x.refused === 0 && x.p99 < 5 && x.framesPerTapPerSec > 49.5 && x.playedPerTapPerSec > 49.5 && x.rtpPerTapPerSec > 99 && x.dropped === 0;

interface SippFigures {
  calls: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * SIPp's UAS registered as `uas` and its UAC calling it through the gateway at `cps` for
 * `secs` (test/sipp/uac.xml and uas.xml, 1 s calls); INVITE->200 from SIPp's response-time
 * trace (the scenario's rtd 1).
 */
async function sippLoad(target: string, cps: number, secs: number, started: (pid: number) => void): Promise<SippFigures> {
  const { mkdtempSync, readdirSync, readFileSync, rmSync } = fs;
  const path = await import('node:path');
  const { scenarioPath } = await import('../test/helpers/sipp.js');
  const { freeUdpPort, waitUntilBound } = await import('../test/helpers/gateway.js');
  const { registerWithSipp } = await import('../test/helpers/sipp.js');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'taps-bench-sipp-'));
  const total = cps * secs;
  const uasPort = await freeUdpPort();
  const run = (args: string[]): Promise<number | null> =>
    new Promise((resolve) => {
      const c = spawn('sipp', args, { cwd: dir, stdio: 'ignore' });
      if (c.pid) started(c.pid);
      const killer = setTimeout(() => c.kill('SIGKILL'), (secs + 60) * 1000);
      c.on('close', (code) => {
        clearTimeout(killer);
        resolve(code);
      });
    });
  const uas = run(['-sf', scenarioPath('uas.xml'), '-i', '127.0.0.1', '-p', String(uasPort), '-m', String(total), '-nostdin', '-timeout', `${secs + 40}s`]);
  await waitUntilBound(uasPort);
  const reg = await registerWithSipp(target, 'uas', 'pw-uas', uasPort);
  if (reg.code !== 0) throw new Error(`SIPp could not register: ${reg.output}`);
  const uacPort = await freeUdpPort();
  const uacCode = await run(['-sf', scenarioPath('uac.xml'), '-i', '127.0.0.1', '-p', String(uacPort), '-s', 'uas', '-m', String(total), '-r', String(cps), '-d', '1000', '-l', String(cps * 4),
    '-nostdin', '-timeout', `${secs + 30}s`, '-trace_rtt', '-rtt_freq', '1', '-trace_stat', target]);
  await uas;
  const file = readdirSync(dir).find((f) => f.endsWith('_rtt.csv'));
  const times: number[] = [];
  if (file) {
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n').slice(1)) {
      const f = line.split(';');
      if (f.length >= 3 && f[2]!.trim() !== '') times.push(Number(f[1]));
    }
  }
  const stat = readdirSync(dir).find((f) => f.endsWith('.csv') && !f.endsWith('_rtt.csv'));
  let failed = 0;
  if (stat) {
    const lines = readFileSync(path.join(dir, stat), 'utf8').trim().split('\n');
    const headerCols = lines[0]!.split(';');
    const last = lines.at(-1)!.split(';');
    failed = Number(last[headerCols.indexOf('FailedCall(C)')] ?? 0);
  }
  rmSync(dir, { recursive: true, force: true });
  const sorted = Float64Array.from(times).sort();
  if (uacCode !== 0 && times.length === 0) throw new Error(`SIPp UAC exited with ${uacCode} and measured nothing`);
  return { calls: times.length, failed, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

const role = arg('role', 'driver');
if (role === 'gateway') void gatewayRole();
else if (role === 'echo') void echoRole();
else if (role === 'phones') {
  const [framesFile, legs, first] = process.argv.slice(-3);
  void phonesRole(framesFile!, Number(legs), Number(first));
} else void driver();
