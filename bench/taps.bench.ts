/**
 * How many concurrent taps (mixed, 16 kHz, bidirectional: the server echoes every frame back
 * and it is played into the call) one gateway process holds with the pooled p99 deviation of
 * frame arrival under 5 ms; and, with --sipp, what SIP load costs while they run.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/taps.bench.js [--steps=50,100,200,300,400]
 *     [--seconds=10] [--threads=0] [--no-pin] [--sipp] [--sipp-cps=50] [--sipp-seconds=10]
 *     [--sipp-taps=N]
 *
 *   --threads   tap worker threads of the gateway (taps.threads; 0: one per core)
 *   --sipp      after the steps: SIPp places --sipp-cps calls/s through the gateway for
 *               --sipp-seconds, once with no tap running and once with --sipp-taps taps
 *               (default: the largest N that held), and prints INVITE->200 p50/p99 of each
 *   --no-pin    do not pin the gateway and the load to cores (taskset)
 *   --all       run every step (default: stop at the first that misses the criterion)
 *
 * Two processes: this one is the load and the measurement (plain RTP "phones": one UDP
 * socket per call leg, PCMU tones sent every 20 ms from one clock, and the `ws` echo server
 * timing each frame's arrival); a child is the gateway (the real MediaService on one
 * mediasoup worker, a TapService), whose calls are set up through the media API as the proxy
 * does (offer from the caller, answer from the callee, select), so no SIP load muddles it.
 * For each step: N calls, N taps, warm-up, then a window in which we measure the
 * inter-arrival of frames at the ws server (deviation from 20 ms, all taps pooled), the
 * frames each tap sent and the echoes it played, and the CPU of each thread of the gateway
 * (its main thread, each tap worker thread, from /proc/<pid>/task) and of its mediasoup worker.
 * The answer is the largest N whose pooled p99 deviation stays under 5 ms with every frame
 * sent and played and none dropped. Figures depend on the machine (2 cores here, shared by
 * all three processes and by whatever else runs).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { encodeUlaw } from '../server/audio/g711.js';
import { ToneGenerator } from '../server/audio/tone.js';
import { procCpu } from './lib/media-servers.js';

const arg = (name: string, def: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const CLK_TCK = 100;

/** CPU seconds of one thread of a process. */
function threadCpu(pid: number, tid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

// ------------------------------------------------------------------------------ gateway role

async function gatewayRole(): Promise<void> {
  const { startTestGateway } = await import('../test/helpers/gateway.js');
  const threads = Number(arg('threads', '0'));
  const gw = await startTestGateway({ media: { workers: 1, timeout: 0 }, taps: { maxTaps: 100_000, threads, maxLoad: 1 } });
  const media = gw.media!;
  const taps = gw.taps;
  if (process.env.BENCH_DEBUG) gw.calls.on('ended', (c) => c.endReason !== 'bench step over' && console.log(`    call ${c.id} ended: ${c.endReason}`));
  if (process.env.BENCH_DEBUG) taps.on('stopped', (t, reason) => console.log(`    tap ${t.id} ended: ${reason} ${JSON.stringify(t.lastError)} call ${gw.calls.get(t.call.id)?.state ?? "gone"} ${gw.calls.get(t.call.id)?.endReason ?? ""} media ${media.has(t.call.id)}`));
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
      process.send!({ cmd: 'ready', ports: out, workerPids: media.pool.pids, tapThreads: taps.pool.osThreadIds });
    } else if (m.cmd === 'stats') {
      const list = taps.list();
      const sum = (k: 'framesSent' | 'framesPlayed' | 'framesDropped' | 'framesReceived'): number => list.reduce((a, t) => a + t.counters[k], 0);
      process.send!({ cmd: 'stats', taps: list.length, sent: sum('framesSent'), played: sum('framesPlayed'), dropped: sum('framesDropped'), received: sum('framesReceived'), states: list.reduce<Record<string, number>>((a, t) => ((a[t.state] = (a[t.state] ?? 0) + 1), a), {}), errors: [...new Set(list.map((t) => t.lastError?.error).filter(Boolean))].slice(0, 3), clocks: await taps.pool.clocks(), tapThreads: taps.pool.osThreadIds, mem: process.memoryUsage().rss, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 });
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
  /** the gateway's main thread and each tap thread, % of a core */
  mainCpu: number;
  tapCpu: number[];
  workerCpu: number;
  driverCpu: number;
  lateTicks: number;
  rssMb: number;
}

async function driver(): Promise<void> {
  if (process.argv.includes('--help')) {
    console.log('usage: node dist/bench/taps.bench.js [--steps=50,100,200,300,400] [--seconds=10] [--threads=0] [--no-pin] [--sipp] [--sipp-cps=50] [--sipp-seconds=10] [--sipp-taps=N]');
    return;
  }
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
  const { sipPort } = (await next('up')) as { sipPort: number };
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
  const stopAll = (): void => {
    child.kill('SIGKILL');
  };
  process.once('uncaughtException', (e) => {
    console.error(e);
    stopAll();
    process.exit(1);
  });

  const results: StepResult[] = [];
  console.log(`taps bench: mixed 16 kHz, echo server, ${seconds} s per step, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'})${pin ? ', gateway pinned to core 0, its mediasoup worker and the load on core 1' : ', unpinned'}, tap threads: ${arg('threads', '0') === '0' ? 'one per core' : arg('threads', '0')}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('  taps | deviation from 20 ms p50 / p99 / max | RFC 3550 jitter mean / worst tap | frames/s/tap sent / played | dropped | CPU % of a core: gateway main / tap threads / mediasoup / load | skipped | RSS');
  const sendRtp = startPhones();
  for (const n of steps) {
    const phones = await sendRtp.open(n);
    const ready = next('ready');
    child.send({ cmd: 'setup', legs: phones.legs, url });
    const { ports, workerPids } = (await ready) as { ports: [number, number][]; workerPids: number[] };
    phones.start(ports);
    await new Promise((r) => setTimeout(r, 3000)); // warm-up: FIFOs, injection, JIT
    const pid = child.pid!;
    const workers = workerPids.length ? workerPids : childPids(pid);
    if (pin) for (const w of workers) taskset('1', w);
    const stats = async (): Promise<Stats> => {
      const p = next('stats');
      child.send({ cmd: 'stats' });
      return (await p) as unknown as Stats;
    };
    const s0 = await stats();
    const tids = s0.tapThreads.filter((t): t is number => t !== null);
    const c0 = { node: procCpu(pid), main: threadCpu(pid, pid), taps: tids.map((t) => threadCpu(pid, t)), worker: workers.reduce((a, w) => a + procCpu(w), 0), me: process.cpuUsage() };
    deviations.length = 0;
    for (const st of jit.values()) {
      st.sum = 0;
      st.n = 0;
    }
    measuring = true;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    measuring = false;
    const wall = (performance.now() - t0) / 1000;
    const s1 = await stats();
    const me = process.cpuUsage(c0.me);
    if (process.env.BENCH_DEBUG) console.log(`    taps: ${JSON.stringify((s1 as unknown as { states: object }).states)} ${JSON.stringify((s1 as unknown as { errors: string[] }).errors)}; tap thread clocks: ${JSON.stringify(s1.clocks)}; gateway main loop delay p99 ${(s1 as unknown as { loopP99: number }).loopP99.toFixed(1)} ms`);
    const c1 = { node: procCpu(pid), main: threadCpu(pid, pid), taps: tids.map((t) => threadCpu(pid, t)), worker: workers.reduce((a, w) => a + procCpu(w), 0) };
    phones.stop();
    const dev = Float64Array.from(deviations).sort();
    const perTap = [...jit.values()].filter((x) => x.n > 0).map((x) => x.sum / x.n);
    const sum = (st: Stats, k: 'caughtUp' | 'skipped'): number => st.clocks.reduce((a, c) => a + c[k], 0);
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
      mainCpu: (100 * (c1.main - c0.main)) / wall,
      tapCpu: c1.taps.map((v, i) => (100 * (v - c0.taps[i]!)) / wall),
      workerCpu: (100 * (c1.worker - c0.worker)) / wall,
      driverCpu: (100 * (me.user + me.system)) / 1e6 / wall,
      lateTicks: sum(s1, 'skipped') - sum(s0, 'skipped'),
      rssMb: s1.mem / 1024 / 1024,
    };
    results.push(r);
    console.log(
      `  ${String(n).padStart(4)} | ${r.p50.toFixed(2)} / ${r.p99.toFixed(2)} / ${r.max.toFixed(1)} ms | ${r.jitter.toFixed(2)} / ${r.jitterMax.toFixed(2)} ms | ${r.framesPerTapPerSec.toFixed(1)} / ${r.playedPerTapPerSec.toFixed(1)} | ${r.dropped} | ${r.mainCpu.toFixed(0)} / ${r.tapCpu.map((x) => x.toFixed(0)).join('+') || '-'} / ${r.workerCpu.toFixed(0)} / ${r.driverCpu.toFixed(0)} (gateway process ${r.nodeCpu.toFixed(0)}) | ${r.lateTicks} | ${r.rssMb.toFixed(0)} MB`,
    );
    const done = next('done');
    child.send({ cmd: 'teardown' });
    await done;
    phones.close();
    await new Promise((res) => setTimeout(res, 1000));
    if (!good(r) && !process.argv.includes('--all')) break;
  }
  const best = results.filter(good).at(-1);
  console.log(best
    ? `\nholds ${best.n} taps (mixed, 16 kHz, echoed back) with pooled p99 frame deviation ${best.p99.toFixed(2)} ms (< 5 ms; max ${best.max.toFixed(1)} ms; RFC 3550 jitter mean ${best.jitter.toFixed(2)} ms); CPU % of a core: gateway main thread ${best.mainCpu.toFixed(0)}, tap threads ${best.tapCpu.map((x) => x.toFixed(0)).join(' + ') || '-'}, mediasoup worker ${best.workerCpu.toFixed(0)}, load ${best.driverCpu.toFixed(0)}`
    : '\nno step met the criterion (pooled p99 deviation under 5 ms, 50 frames/s each way per tap, nothing dropped)');

  if (process.argv.includes('--sipp')) {
    const cps = Number(arg('sipp-cps', '50'));
    const secs = Number(arg('sipp-seconds', '10'));
    const withTaps = Number(arg('sipp-taps', String(best?.n ?? steps[0])));
    const target = `127.0.0.1:${sipPort}`;
    const quiet = await sippLoad(target, cps, secs);
    const phones = await sendRtp.open(withTaps);
    const ready = next('ready');
    child.send({ cmd: 'setup', legs: phones.legs, url });
    const { ports } = (await ready) as { ports: [number, number][] };
    phones.start(ports);
    await new Promise((r) => setTimeout(r, 3000));
    deviations.length = 0;
    measuring = true;
    const loaded = await sippLoad(target, cps, secs);
    measuring = false;
    const dev = Float64Array.from(deviations).sort();
    phones.stop();
    const done = next('done');
    child.send({ cmd: 'teardown' });
    await done;
    phones.close();
    const fmt = (x: SippFigures): string => `${x.calls} calls (${x.failed} failed), INVITE->200 p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms, max ${x.max.toFixed(1)} ms`;
    console.log(`\nSIPp ${cps} calls/s for ${secs} s through the gateway:`);
    console.log(`  no taps:        ${fmt(quiet)}`);
    console.log(`  ${String(withTaps).padStart(4)} taps:     ${fmt(loaded)}; the taps' pooled p99 frame deviation meanwhile ${percentile(dev, 0.99).toFixed(2)} ms`);
    console.log(`  ratio p99 with / without taps: ${(loaded.p99 / quiet.p99).toFixed(2)}`);
  }
  child.send({ cmd: 'exit' });
  wss.close();
  server.close();
}

interface Stats {
  sent: number;
  played: number;
  dropped: number;
  clocks: { caughtUp: number; skipped: number; maxLateMs: number }[];
  tapThreads: (number | null)[];
  mem: number;
}

const good = (x: StepResult): boolean => x.p99 < 5 && x.framesPerTapPerSec > 49.5 && x.playedPerTapPerSec > 49.5 && x.dropped === 0;

/**
 * A phone's socket on a port from 20000-39999, never an ephemeral one: those fall in the
 * gateway's RTP range (40000-49999), whose ports its legs take over by number, and the SIPp
 * calls of --sipp would then fail to bind theirs.
 */
let nextPhonePort = 20000;
async function bindPhone(): Promise<dgram.Socket> {
  for (;;) {
    const port = nextPhonePort;
    nextPhonePort = nextPhonePort >= 39999 ? 20000 : nextPhonePort + 1;
    const s = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.bind(port, '127.0.0.1', () => r(true));
    });
    if (ok) return s;
    s.close();
  }
}

/** Plain RTP phones: two UDP sockets per call, PCMU tones, every leg's packet each 20 ms from one clock. */
function startPhones(): {
  open(n: number): Promise<{ legs: [number, number][]; start(ports: [number, number][]): void; stop(): void; close(): void }>;
} {
  const toneFrames = (freq: number): Buffer[] => {
    const g = new ToneGenerator(freq, 8000);
    return Array.from({ length: 50 }, () => Buffer.from(encodeUlaw(g.next())));
  };
  const tones = [toneFrames(440), toneFrames(880)];
  return {
    async open(n) {
      const sockets: dgram.Socket[] = [];
      const legs: [number, number][] = [];
      for (let i = 0; i < n; i++) {
        const pair: number[] = [];
        for (let k = 0; k < 2; k++) {
          const s = await bindPhone();
          s.on('message', () => {});
          sockets.push(s);
          pair.push(s.address().port);
        }
        legs.push([pair[0]!, pair[1]!]);
      }
      let running = false;
      return {
        legs,
        start(ports) {
          const state = sockets.map((_, i) => ({ seq: (i * 7919) & 0xffff, ts: i * 1000, ssrc: 0x10000 + i }));
          const header = Buffer.alloc(12);
          let frame = 0;
          const epoch = performance.now();
          running = true;
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
              sockets[i]!.send([header, tones[i % 2]![f % 50]!], ports[i >> 1]![i % 2]!, '127.0.0.1');
            }
          };
          const tick = (): void => {
            if (!running) return;
            const due = Math.floor((performance.now() - epoch) / 20);
            while (frame <= due) sendAll();
            setTimeout(tick, Math.max(0, epoch + frame * 20 - performance.now()));
          };
          tick();
        },
        stop() {
          running = false;
        },
        close() {
          running = false;
          for (const s of sockets) s.close();
        },
      };
    },
  };
}

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
async function sippLoad(target: string, cps: number, secs: number): Promise<SippFigures> {
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

if (process.argv.includes('--role=gateway')) void gatewayRole();
else void driver();
