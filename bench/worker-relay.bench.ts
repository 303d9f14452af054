/**
 * The mediasoup worker's CPU per relayed RTP packet, worker binaries side by side (issue 12:
 * the worker patch set). No SIP, no Node gateway: one worker, one router, CALLS calls of two
 * phone legs each set up as the gateway sets up a desk phone's leg (a PlainTransport connected
 * to the phone, an SSRC-less catch-all producer when the worker has it, a consumer with no
 * header extension), PCMU both ways at 50 packets/s per leg from native phones
 * (bench/lib/rtp-phones.c, built with `cc`; what comes back is dropped by their kernel).
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/worker-relay.bench.js [--bins A,B] [--calls 300] [--seconds 10] [--rounds 2]
 *
 * --bins: worker binaries to compare (default: node_modules' worker); each round runs each
 * binary once, alternating (a fresh worker per run, MEDIASOUP_WORKER_BIN in a child process),
 * so load from other work on the machine falls on all alike. Printed per run: packets relayed
 * in the window (the consumers' packetCount), the worker's CPU (utime + stime from /proc) and
 * relayed packets per worker CPU-second; then the ratio of each binary to the first, median
 * over rounds. --perf SECS: `perf record -g` of each worker for SECS seconds of the window
 * (data in the output directory, see --out). --syscalls: the worker's system calls per relayed
 * packet over the window (`perf stat` of syscalls tracepoints; perf needed).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Consumer, PlainTransport, Producer } from 'mediasoup/types';
import { answerHelp } from './lib/help.js';

answerHelp(import.meta.url);

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1]!;
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : def;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunResult {
  bin: string;
  packets: number;
  cpuS: number;
  wallS: number;
  workerPid: number;
  features: string;
  /** with --syscalls: the worker's system calls per relayed packet (perf stat), by name */
  syscallsPerPacket: Record<string, number>;
}

const SYSCALL_EVENTS = ['recvmmsg', 'recvmsg', 'sendmsg', 'sendto', 'epoll_wait', 'io_uring_enter'];

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = 100;
  return (Number(fields[11]) + Number(fields[12])) / hz;
}

/** The child: one worker (MEDIASOUP_WORKER_BIN of its environment), measured once. */
async function child(): Promise<void> {
  const { createWorker } = await import('mediasoup');
  const calls = Number(arg('calls', '300'));
  const seconds = Number(arg('seconds', '10'));
  const perfS = Number(arg('perf', '0'));
  const out = arg('out', os.tmpdir());
  const phonesBin = arg('phones', '');
  const frames = arg('frames', '');
  const worker = await createWorker({ logLevel: 'warn', logTags: ['rtp'], rtcMinPort: 40000, rtcMaxPort: 49999 });
  const PCMU = { kind: 'audio' as const, mimeType: 'audio/PCMU', clockRate: 8000, preferredPayloadType: 0, parameters: {}, rtcpFeedback: [] };
  const PCMU_PARAMS = { mimeType: 'audio/PCMU', payloadType: 0, clockRate: 8000, parameters: {}, rtcpFeedback: [] };
  const router = await worker.createRouter({ mediaCodecs: [PCMU] });
  const phones = spawn(phonesBin, [frames, String(calls * 2), '30000'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stopAll = (): void => {
    phones.kill();
    worker.close();
  };
  try {
    const ports = await firstLine(phones);
    const phonePorts = ports.split(' ').slice(1).map(Number);
    const listenInfo = { protocol: 'udp' as const, ip: '127.0.0.1' };
    const transports: PlainTransport[] = [];
    for (let i = 0; i < calls * 2; i++) {
      const t = await router.createPlainTransport({ listenInfo, rtcpMux: true, comedia: false });
      await t.connect({ ip: '127.0.0.1', port: phonePorts[i]! });
      transports.push(t);
    }
    let catchAll = true;
    const producers: Producer[] = [];
    for (let i = 0; i < calls * 2; i++) {
      const rtcp = { cname: `leg-${i}`, reducedSize: false };
      try {
        if (!catchAll) throw new Error('no catch-all');
        producers.push(await transports[i]!.produce({ kind: 'audio', rtpParameters: { codecs: [PCMU_PARAMS], encodings: [{}], rtcp } }));
      } catch {
        // a worker without the catch-all patch: the SSRC rtp-phones.c sends with
        catchAll = false;
        producers.push(await transports[i]!.produce({ kind: 'audio', rtpParameters: { codecs: [PCMU_PARAMS], encodings: [{ ssrc: 0x10000 + i }], rtcp } }));
      }
    }
    const consumers: Consumer[] = [];
    for (let i = 0; i < calls * 2; i++) {
      // leg i's producer goes to its call's other leg
      const other = i ^ 1;
      consumers.push(await transports[other]!.consume({ producerId: producers[i]!.id, rtpCapabilities: { codecs: [PCMU], headerExtensions: [] } }));
    }
    phones.stdin!.write(`go ${transports.map((t) => t.tuple.localPort).join(' ')}\n`);
    await sleep(2000);
    const count = async (): Promise<number> => {
      let n = 0;
      for (const c of consumers) for (const s of await c.getStats()) if (s.type === 'outbound-rtp') n += s.packetCount;
      return n;
    };
    const p0 = await count();
    const c0 = cpuSeconds(worker.pid);
    const t0 = performance.now();
    let perf: ChildProcess | null = null;
    let syscallText = '';
    const syscalls = process.argv.includes('--syscalls')
      ? spawn('perf', ['stat', '-x', ',', '-e', SYSCALL_EVENTS.map((e) => `syscalls:sys_enter_${e}`).join(','), '-p', String(worker.pid), '--', 'sleep', String(seconds)], { stdio: ['ignore', 'ignore', 'pipe'] })
      : null;
    syscalls?.stderr!.on('data', (d: Buffer) => (syscallText += d.toString()));
    if (perfS > 0) {
      perf = spawn('perf', ['record', '-F', '1999', '-g', '-p', String(worker.pid), '-o', path.join(out, `perf-${worker.pid}.data`), '--', 'sleep', String(perfS)], { stdio: 'ignore' });
    }
    await sleep(seconds * 1000);
    const c1 = cpuSeconds(worker.pid);
    const t1 = performance.now();
    const p1 = await count();
    if (perf && perf.exitCode === null) await new Promise((r) => perf!.once('exit', r));
    if (syscalls && syscalls.exitCode === null) await new Promise((r) => syscalls.once('exit', r));
    const perPacket: Record<string, number> = {};
    for (const line of syscallText.split('\n')) {
      const [count, , event] = line.split(',');
      const name = event?.replace('syscalls:sys_enter_', '');
      if (name && Number.isFinite(Number(count))) perPacket[name] = Math.round((1000 * Number(count)) / (p1 - p0)) / 1000;
    }
    const result: RunResult = {
      bin: process.env.MEDIASOUP_WORKER_BIN ?? 'node_modules',
      packets: p1 - p0,
      cpuS: c1 - c0,
      wallS: (t1 - t0) / 1000,
      workerPid: worker.pid,
      features: catchAll ? 'catch-all' : 'ssrc',
      syscallsPerPacket: perPacket,
    };
    console.log(`RESULT ${JSON.stringify(result)}`);
  } finally {
    stopAll();
  }
}

function firstLine(c: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    c.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) resolve(buf.slice(0, i));
    });
    c.once('exit', (code) => reject(new Error(`rtp-phones exited (${code}) before it printed its ports`)));
  });
}

async function main(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const defaultBin = fileURLToPath(new URL('../../node_modules/mediasoup/worker/out/Release/mediasoup-worker', import.meta.url));
  const bins = arg('bins', defaultBin).split(',').filter(Boolean);
  const rounds = Number(arg('rounds', '2'));
  const out = arg('out', fs.mkdtempSync(path.join(os.tmpdir(), 'worker-relay-')));
  for (const b of bins) if (!fs.existsSync(b)) throw new Error(`worker binary not found: ${b}`);
  fs.mkdirSync(out, { recursive: true });
  // the native phones (the taps bench's load program, used as it is)
  const src = fileURLToPath(new URL('../../bench/lib/rtp-phones.c', import.meta.url));
  const phones = path.join(out, 'rtp-phones');
  try {
    execFileSync('cc', ['-O2', '-o', phones, src, '-lpthread'], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`this bench needs a C compiler (cc) for bench/lib/rtp-phones.c: ${(e as Error).message}`);
  }
  const frames = path.join(out, 'frames.bin');
  fs.writeFileSync(frames, Buffer.alloc(16000, 0xff));
  const passOn = [...['calls', 'seconds', 'perf'].flatMap((n) => (arg(n, '') ? [`--${n}`, arg(n, '')] : [])), ...(process.argv.includes('--syscalls') ? ['--syscalls'] : [])];
  console.log(`worker relay bench: ${arg('calls', '300')} calls (${Number(arg('calls', '300')) * 100} packets/s offered), ${arg('seconds', '10')} s windows, ${rounds} rounds, ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}, out ${out}`);
  const results: RunResult[][] = bins.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let b = 0; b < bins.length; b++) {
      const c = spawn(process.execPath, [self, '--child', '--phones', phones, '--frames', frames, '--out', out, ...passOn], {
        env: { ...process.env, MEDIASOUP_WORKER_BIN: bins[b] },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      c.stdout!.on('data', (d: Buffer) => (text += d.toString()));
      const code = await new Promise((r) => c.once('exit', r));
      const line = text.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) throw new Error(`run of ${bins[b]} failed (exit ${code}): ${text}`);
      const r = JSON.parse(line.slice(7)) as RunResult;
      results[b]!.push(r);
      console.log(`round ${round + 1} ${path.basename(bins[b]!)} (${r.features}, worker pid ${r.workerPid}): ${r.packets} packets in ${r.wallS.toFixed(1)} s, worker CPU ${r.cpuS.toFixed(2)} s (${((100 * r.cpuS) / r.wallS).toFixed(1)} %), ${Math.round(r.packets / r.cpuS)} packets per worker CPU-second, ${((1e6 * r.cpuS) / r.packets).toFixed(2)} us per packet${Object.keys(r.syscallsPerPacket).length ? `; system calls per packet ${JSON.stringify(r.syscallsPerPacket)}` : ''}`);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const rate = (rs: RunResult[]): number => median(rs.map((r) => r.packets / r.cpuS));
  const base = rate(results[0]!);
  for (let b = 0; b < bins.length; b++) {
    console.log(`${bins[b]}: median ${Math.round(rate(results[b]!))} packets per worker CPU-second, ${(rate(results[b]!) / base).toFixed(2)}x the first`);
  }
}

if (process.argv.includes('--child')) await child();
else await main();
