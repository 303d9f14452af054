/**
 * A tap worker thread: the audio pipelines (tap-pipeline.ts) of its shard of taps, their
 * WebSocket clients, their UDP ports towards mediasoup and one FrameClock. The main thread
 * creates, attaches, controls and stops taps by message (tap-messages.ts); this thread
 * answers with events and the ports it bound. Started by tap-worker-pool.ts.
 */
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import type { Side } from './dialect.js';
import { DeviationHistogram } from './deviation-histogram.js';
import { FrameClock } from './frame-clock.js';
import type { FromWorker, ToWorker } from './tap-messages.js';
import { TapPipeline } from './tap-pipeline.js';
import { TapStats } from './tap-stats.js';
import { mediaCounters, UdpTapPort } from './udp-tap-port.js';

export interface TapWorkerData {
  index: number;
  /** threads in the pool (each clock takes its own phase of the 5 ms slot) */
  of: number;
  /** nice value this thread gives itself (taps.threadNice) */
  nice: number;
  level: string;
  histogram: SharedArrayBuffer;
}

const port = parentPort!;
const data = workerData as TapWorkerData;
// straight to fd 1 from this thread (no hop through the main thread's stdout)
const log = pino({ level: data.level, base: { component: 'taps', thread: data.index } }, pino.destination({ dest: 1, sync: true }));
const clock = new FrameClock(5, (e) => log.error({ err: e }, 'tap step failed'), 4, data.index / Math.max(1, data.of));
const histogram = new DeviationHistogram(data.histogram);
// this thread's own health, for the stats answer (the bench): loop delay and GC pauses. The
// delay monitor is a 5 ms timer: it runs only while the thread holds taps (an idle thread
// woken 200 times a second cost a third of the gateway's CPU during a call-only hold)
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

interface Entry {
  pipe: TapPipeline;
  port: UdpTapPort | null;
}
const taps = new Map<string, Entry>();
const injects = new Map<number, { resolve: (ssrc: number) => void; reject: (e: Error) => void }>();
let req = 0;

function post(m: FromWorker): void {
  port.postMessage(m);
}

function inject(id: string, side: Side): Promise<number> {
  const r = ++req;
  return new Promise<number>((resolve, reject) => {
    injects.set(r, { resolve, reject });
    post({ t: 'inject', id, req: r, side });
  });
}

async function attach(m: Extract<ToWorker, { t: 'attach' }>): Promise<void> {
  const entry = taps.get(m.id);
  if (!entry || entry.pipe.state !== 'pending') return void post({ t: 'bound', req: m.req, port: null, error: 'the tap has ended' });
  let udp: UdpTapPort;
  try {
    udp = await UdpTapPort.open(m.media, m.sources, (side) => inject(m.id, side));
  } catch (e) {
    return void post({ t: 'bound', req: m.req, port: null, error: (e as Error).message });
  }
  if (entry.pipe.state !== 'pending') {
    udp.close();
    return void post({ t: 'bound', req: m.req, port: null, error: 'the tap has ended' });
  }
  entry.port = udp;
  post({ t: 'bound', req: m.req, port: udp.localPort });
  entry.pipe.attach(udp);
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'create': {
      const pipe = new TapPipeline(m.id, m.call, m.options, { clock, log, stats: new TapStats(m.stats), histogram, emit: (e) => post({ t: 'event', e }) });
      taps.set(m.id, { pipe, port: null });
      if (taps.size === 1) loopDelay.enable();
      pipe.once('end', (reason) => {
        taps.delete(m.id);
        if (taps.size === 0) loopDelay.disable();
        post({ t: 'end', id: m.id, reason });
      });
      break;
    }
    case 'attach':
      void attach(m);
      break;
    case 'source':
      taps.get(m.id)?.port?.setSource(m.side, m.source);
      break;
    case 'injected': {
      const p = injects.get(m.req);
      injects.delete(m.req);
      if (m.ssrc !== null) p?.resolve(m.ssrc);
      else p?.reject(new Error(m.error ?? 'cannot inject'));
      break;
    }
    case 'stop':
      taps.get(m.id)?.pipe.stop(m.reason, m.metadata);
      break;
    case 'pause':
      taps.get(m.id)?.pipe.pause();
      break;
    case 'resume':
      taps.get(m.id)?.pipe.resume();
      break;
    case 'text':
      taps.get(m.id)?.pipe.sendText(m.text);
      break;
    case 'stats':
      post({ t: 'stats', req: m.req, clock: clock.snapshot(), loop: { p99Ms: loopDelay.percentile(99) / 1e6, maxMs: loopDelay.max / 1e6, gcMs }, media: { ...mediaCounters } });
      loopDelay.reset();
      break;
  }
});

function osThreadId(): number | null {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop()) || null;
  } catch {
    return null;
  }
}

const tid = osThreadId();
// Linux applies a priority set on a thread id to that thread only: the SIP thread keeps its own
if (data.nice > 0 && tid !== null) {
  try {
    os.setPriority(tid, data.nice);
  } catch (e) {
    log.warn({ err: e, nice: data.nice }, 'cannot lower the tap thread\'s priority (taps.threadNice)');
  }
}
post({ t: 'ready', tid });
