/**
 * How many concurrent taps (mixed, 16 kHz, bidirectional: the server echoes every frame back
 * and it is played into the call) one gateway process holds with frame jitter under 5 ms.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/taps.bench.js [--steps=50,100,150,200] [--seconds=10]
 *
 * Two processes: this one is the load and the measurement (plain RTP "phones": one UDP
 * socket per call leg, PCMU tones sent every 20 ms from one clock, and the `ws` echo server
 * timing each frame's arrival); a child is the gateway (the real MediaService on one
 * mediasoup worker, a TapService), whose calls are set up through the media API as the proxy
 * does (offer from the caller, answer from the callee, select), so no SIP load muddles it.
 * For each step: N calls, N taps, warm-up, then a window in which we measure the
 * inter-arrival of frames at the ws server (deviation from 20 ms, all taps pooled), the
 * frames each tap sent and the echoes it played, and the CPU of the gateway's Node process
 * and of its mediasoup worker (from /proc). The answer is the largest N whose p99 deviation
 * stays under 5 ms. Figures depend on the machine (2 cores here, shared by all three
 * processes).
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { encodeUlaw } from '../server/audio/g711.js';
import { ToneGenerator } from '../server/audio/tone.js';
import { procCpu } from './lib/media-servers.js';

const arg = (name: string, def: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;

// ------------------------------------------------------------------------------ gateway role

async function gatewayRole(): Promise<void> {
  const pino = (await import('pino')).default;
  const { startTestGateway } = await import('../test/helpers/gateway.js');
  const { TapService } = await import('../server/taps/tap-service.js');
  const gw = await startTestGateway({ media: { workers: 1, timeout: 0 } });
  const media = gw.media!;
  const taps = new TapService({ calls: gw.calls, media, log: pino({ level: 'silent' }), maxTaps: 100_000 });
  const sdp = (port: number, id: number): string =>
    ['v=0', `o=- ${id} 1 IN IP4 127.0.0.1`, 's=load', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\r\n');
  const portOf = (s: string): number => Number(/m=audio (\d+)/.exec(s)![1]);
  let n = 0;
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
        const flags = 'RTP/AVP replace-session-connection replace-origin ICE=remove';
        const toCallee = await media.offer(call.id, 'caller', 0, sdp(callerPort, id), flags);
        const toCaller = await media.answer(call.id, 'callee', 0, sdp(calleePort, id + 100000));
        await media.select(call.id, 0);
        call.state = 'answered';
        call.answeredAt = Date.now();
        gw.calls.updated(call);
        taps.start(call.id, { url: `${m.url!}/${id}`, mix: 'mixed', rate: 16000 });
        out.push([portOf(toCaller), portOf(toCallee)]);
      }
      process.send!({ cmd: 'ready', ports: out, workerPids: media.pool.pids });
    } else if (m.cmd === 'stats') {
      const list = taps.list();
      const sum = (k: 'framesSent' | 'framesPlayed' | 'framesDropped' | 'framesReceived'): number => list.reduce((a, t) => a + t.counters[k], 0);
      process.send!({ cmd: 'stats', taps: list.length, sent: sum('framesSent'), played: sum('framesPlayed'), dropped: sum('framesDropped'), received: sum('framesReceived'), clock: taps.clock.snapshot(), mem: process.memoryUsage().rss, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 });
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
  process.send!({ cmd: 'up' });
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

interface StepResult {
  n: number;
  /** RFC 3550 jitter, ms: mean over the taps of each tap's mean over the window */
  jitter: number;
  /** the worst tap's */
  jitterMax: number;
  p50: number;
  p99: number;
  max: number;
  framesPerTapPerSec: number;
  playedPerTapPerSec: number;
  dropped: number;
  nodeCpu: number;
  workerCpu: number;
  driverCpu: number;
  lateTicks: number;
  rssMb: number;
}

async function driver(): Promise<void> {
  const steps = arg('steps', '25,50,100,150,200,250,300').split(',').map(Number);
  const seconds = Number(arg('seconds', '10'));
  const { WebSocketServer } = await import('ws');
  const http = await import('node:http');

  // the echo server: every binary frame back, its arrival timed per connection
  const server = http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  let measuring = false;
  const last = new Map<object, number>();
  const deviations: number[] = [];
  /** RFC 3550 §6.4.1 interarrival jitter per connection: J += (|D| - J) / 16, and its mean over the window */
  const jit = new Map<object, { j: number; sum: number; n: number }>();
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      const now = performance.now();
      const prev = last.get(ws);
      if (prev !== undefined) {
        const d = Math.abs(now - prev - 20);
        let st = jit.get(ws);
        if (!st) jit.set(ws, (st = { j: 0, sum: 0, n: 0 }));
        st.j += (d - st.j) / 16;
        if (measuring) {
          deviations.push(d);
          st.sum += st.j;
          st.n++;
        }
      }
      last.set(ws, now);
      ws.send(data);
    });
    ws.on('close', () => {
      last.delete(ws);
      jit.delete(ws);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `ws://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}/tap`;

  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--role=gateway'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [] });
  const next = (cmd: string): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      const on = (m: Record<string, unknown>): void => {
        if (m.cmd === cmd) {
          child.off('message', on);
          resolve(m);
        }
      };
      child.on('message', on);
    });
  await next('up');
  // one core for the gateway's Node process alone; its mediasoup worker and this load share
  // the other (taskset, when there are two cores or more and --no-pin is not given)
  const pin = !process.argv.includes('--no-pin') && os.cpus().length >= 2;
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
  }

  // the phones: per call, two sockets; one clock sends every leg's packet each 20 ms
  const toneFrames = (freq: number): Buffer[] => {
    const g = new ToneGenerator(freq, 8000);
    return Array.from({ length: 50 }, () => Buffer.from(encodeUlaw(g.next())));
  };
  const tones = [toneFrames(440), toneFrames(880)];

  const results: StepResult[] = [];
  console.log(`taps bench: mixed 16 kHz, echo server, ${seconds} s per step, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'})${pin ? ', gateway Node pinned to core 0, its worker and the load on core 1' : ''}`);
  console.log('  taps | jitter (RFC 3550) mean / worst tap | deviation from 20 ms p50 / p99 / max | frames/s/tap sent / played | dropped | CPU: gateway Node / its worker / load | late ticks | RSS');
  for (const n of steps) {
    const sockets: dgram.Socket[] = [];
    const legs: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      const pair: number[] = [];
      for (let k = 0; k < 2; k++) {
        const s = dgram.createSocket('udp4');
        await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
        s.on('message', () => {});
        sockets.push(s);
        pair.push(s.address().port);
      }
      legs.push([pair[0]!, pair[1]!]);
    }
    const ready = next('ready');
    child.send({ cmd: 'setup', legs, url });
    const { ports, workerPids } = (await ready) as { ports: [number, number][]; workerPids: number[] };
    // RTP: seq/ts/ssrc per leg
    const state = sockets.map((_, i) => ({ seq: (i * 7919) & 0xffff, ts: i * 1000, ssrc: 0x10000 + i }));
    const header = Buffer.alloc(12);
    let frame = 0;
    const epoch = performance.now();
    let running = true;
    const sendAll = (): void => {
      const f = frame++;
      for (let i = 0; i < sockets.length; i++) {
        const st = state[i]!;
        header[0] = 0x80;
        header[1] = f === 0 ? 0x80 : 0;
        header.writeUInt16BE(st.seq, 2);
        header.writeUInt32BE(st.ts >>> 0, 4);
        header.writeUInt32BE(st.ssrc, 8);
        st.seq = (st.seq + 1) & 0xffff;
        st.ts += 160;
        const payload = tones[i % 2]![f % 50]!;
        const port = ports[i >> 1]![i % 2]!;
        sockets[i]!.send([header, payload], port, '127.0.0.1');
      }
    };
    const tick = (): void => {
      if (!running) return;
      const due = Math.floor((performance.now() - epoch) / 20);
      while (frame <= due) sendAll();
      setTimeout(tick, Math.max(0, epoch + (frame) * 20 - performance.now()));
    };
    tick();
    await new Promise((r) => setTimeout(r, 3000)); // warm-up: FIFOs, injection, JIT
    const pid = child.pid!;
    const workers = workerPids.length ? workerPids : childPids(pid);
    if (pin) for (const w of workers) taskset('1', w);
    const s0 = (await (async () => {
      const p = next('stats');
      child.send({ cmd: 'stats' });
      return p;
    })()) as { sent: number; played: number; dropped: number; clock: { caughtUp: number; skipped: number } };
    const c0 = { node: procCpu(pid), worker: workers.reduce((a, w) => a + procCpu(w), 0), me: process.cpuUsage() };
    deviations.length = 0;
    for (const st of jit.values()) {
      st.sum = 0;
      st.n = 0;
    }
    const { monitorEventLoopDelay } = await import('node:perf_hooks');
    const loopDelay = monitorEventLoopDelay({ resolution: 2 });
    if (process.env.BENCH_DEBUG) loopDelay.enable();
    measuring = true;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    measuring = false;
    loopDelay.disable();
    if (process.env.BENCH_DEBUG) console.log(`    driver loop delay p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms max ${(loopDelay.max / 1e6).toFixed(1)} ms`);
    const wall = (performance.now() - t0) / 1000;
    const p1 = next('stats');
    child.send({ cmd: 'stats' });
    const s1 = (await p1) as { sent: number; played: number; dropped: number; clock: { caughtUp: number; skipped: number; maxLateMs: number; lastTickMs: number }; mem: number };
    if (process.env.BENCH_DEBUG) console.log(`    gateway clock: max late ${s1.clock.maxLateMs.toFixed(1)} ms, last tick ${s1.clock.lastTickMs.toFixed(2)} ms; gateway loop delay p99 ${(s1 as unknown as { loopP99: number }).loopP99.toFixed(1)} max ${(s1 as unknown as { loopMax: number }).loopMax.toFixed(1)} ms`);
    const me = process.cpuUsage(c0.me);
    const c1 = { node: procCpu(pid), worker: workers.reduce((a, w) => a + procCpu(w), 0) };
    running = false;
    const dev = Float64Array.from(deviations).sort();
    const perTap = [...jit.values()].filter((x) => x.n > 0).map((x) => x.sum / x.n);
    const r: StepResult = {
      n,
      jitter: perTap.reduce((a, b) => a + b, 0) / (perTap.length || 1),
      jitterMax: Math.max(...perTap),
      p50: percentile(dev, 0.5),
      p99: percentile(dev, 0.99),
      max: dev.length ? dev[dev.length - 1]! : NaN,
      framesPerTapPerSec: (s1.sent - s0.sent) / n / wall,
      playedPerTapPerSec: (s1.played - s0.played) / n / wall,
      dropped: s1.dropped - s0.dropped,
      nodeCpu: (100 * (c1.node - c0.node)) / wall,
      workerCpu: (100 * (c1.worker - c0.worker)) / wall,
      driverCpu: (100 * (me.user + me.system)) / 1e6 / wall,
      lateTicks: s1.clock.caughtUp - s0.clock.caughtUp + s1.clock.skipped - s0.clock.skipped,
      rssMb: s1.mem / 1024 / 1024,
    };
    results.push(r);
    console.log(
      `  ${String(n).padStart(4)} | ${r.jitter.toFixed(2).padStart(6)} / ${r.jitterMax.toFixed(2).padStart(6)} ms${' '.repeat(19)} | ${r.p50.toFixed(2)} / ${r.p99.toFixed(2)} / ${r.max.toFixed(1)} ms${' '.repeat(14)} | ${r.framesPerTapPerSec.toFixed(1)} / ${r.playedPerTapPerSec.toFixed(1)}${' '.repeat(14)} | ${String(r.dropped).padStart(7)} | ${r.nodeCpu.toFixed(0)}% / ${r.workerCpu.toFixed(0)}% / ${r.driverCpu.toFixed(0)}%${' '.repeat(12)} | ${String(r.lateTicks).padStart(10)} | ${r.rssMb.toFixed(0)} MB`,
    );
    const done = next('done');
    child.send({ cmd: 'teardown' });
    await done;
    for (const s of sockets) s.close();
    await new Promise((res) => setTimeout(res, 1000));
    const good = (x: StepResult): boolean => x.jitterMax < 5 && x.framesPerTapPerSec > 49.5 && x.playedPerTapPerSec > 49.5 && x.dropped === 0;
    if (!good(r) || r.nodeCpu > 98) break;
  }
  const ok = results.filter((x) => x.jitterMax < 5 && x.framesPerTapPerSec > 49.5 && x.playedPerTapPerSec > 49.5 && x.dropped === 0);
  const best = ok.at(-1);
  console.log(best
    ? `\nholds ${best.n} taps (mixed, 16 kHz, echoed back) with frame jitter under 5 ms (RFC 3550: mean ${best.jitter.toFixed(2)} ms, worst tap ${best.jitterMax.toFixed(2)} ms; p99 deviation ${best.p99.toFixed(1)} ms); gateway Node process ${best.nodeCpu.toFixed(0)}% of one core, its mediasoup worker ${best.workerCpu.toFixed(0)}%`
    : '\nno step met the criterion (every tap under 5 ms of RFC 3550 jitter, 50 frames/s each way, nothing dropped)');
  child.send({ cmd: 'exit' });
  wss.close();
  server.close();
}

if (process.argv.includes('--role=gateway')) void gatewayRole();
else void driver();
