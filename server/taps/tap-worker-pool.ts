/**
 * The tap worker threads (tap-worker.ts), one per core by default: each owns a shard of the
 * calls' taps (a call's taps share a thread) and runs their audio, sockets and clock, so the
 * SIP event loop only sets taps up, tears them down and relays their events.
 *
 * Admission control: a new tap goes to the least loaded thread that still has room (fewer
 * than `maxPerThread` taps, event-loop utilisation under `maxLoad`: the thread's own CPU
 * guard, after LiveKit SIP's max_cpu_utilization); when none has, the tap is refused with
 * OVERLOADED (errors.ts), so the taps already running never pay for one more.
 *
 * A thread that dies (a crash, out of memory, terminate()) ends its taps with a WORKER_DIED
 * error event (the calls go on: their media never depended on the thread) and is started
 * again for the taps to come.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { DeviationHistogram, sumHistograms } from './deviation-histogram.js';
import type { FrameClockStats } from './frame-clock.js';
import type { FromWorker, MediaCounters, ToWorker } from './tap-messages.js';
import type { TapEvent } from './tap-pipeline.js';
import type { Side } from './dialect.js';
import type { TapWorkerData } from './tap-worker.js';

export interface TapWorkerPoolOptions {
  /** threads (0: one per core) */
  threads: number;
  /** most taps per thread */
  maxPerThread: number;
  /** a thread busier than this (event-loop utilisation, 0..1) takes no new tap */
  maxLoad: number;
  /** nice value each thread gives itself (0: as the process) */
  nice?: number;
  log: Logger;
}

/** What a thread asks of the main-thread handle of each of its taps (tap.ts's Tap). */
export interface ThreadTap {
  readonly call: { id: string };
  /** an event the tap's pipeline raised */
  onEvent(e: TapEvent): void;
  /** the pipeline ended (socket closed, stop, error) */
  onEnd(reason: string): void;
  /** playback needs a producer into the call for `side`: resolves with its SSRC */
  onInject(side: Side): Promise<number>;
  /** the thread died: the tap ends with WORKER_DIED */
  threadDied(): void;
}

export interface TapThreadInfo {
  index: number;
  taps: number;
  /** event-loop utilisation over the last second, 0..1 */
  load: number;
  alive: boolean;
  restarts: number;
}

/** One worker thread and its taps. */
export class TapThread {
  readonly taps = new Map<string, ThreadTap>();
  /** taps the main thread already ended (an error it saw): what their pipeline still says is dropped */
  readonly silenced = new Set<string>();
  worker!: Worker;
  alive = false;
  load = 0;
  /** the OS thread id (Linux), once the thread is up */
  tid: number | null = null;
  restarts = 0;
  readonly histogram = new DeviationHistogram();
  private elu: EventLoopUtilization | null = null;
  private readonly replies = new Map<number, (m: FromWorker) => void>();
  private req = 0;

  constructor(
    readonly index: number,
    private readonly pool: TapWorkerPool,
  ) {
    this.start();
  }

  start(): void {
    const w = new Worker(new URL('./tap-worker.js', import.meta.url), {
      workerData: { index: this.index, of: this.pool.size, nice: this.pool.nice, level: this.pool.level, histogram: this.histogram.buffer } satisfies TapWorkerData,
    });
    this.worker = w;
    this.alive = true;
    this.elu = null;
    this.load = 0;
    w.unref();
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (e) => this.pool.log.error({ err: e, thread: this.index }, 'tap worker thread failed'));
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      this.alive = false;
      this.pool.threadExited(this, code);
    });
  }

  post(m: ToWorker): void {
    if (this.alive) this.worker.postMessage(m);
  }

  /** A request whose answer carries `req`. */
  request<T extends FromWorker>(make: (req: number) => ToWorker): Promise<T> {
    const r = ++this.req;
    return new Promise<T>((resolve, reject) => {
      if (!this.alive) return reject(new Error('the tap thread is not running'));
      this.replies.set(r, (m) => resolve(m as T));
      this.worker.postMessage(make(r));
    });
  }

  /** Requests still waiting when the thread died fail. */
  failReplies(): void {
    for (const [r, fn] of this.replies) fn({ t: 'bound', req: r, port: null, error: 'the tap thread died' });
    this.replies.clear();
  }

  sampleLoad(): void {
    if (!this.alive) return;
    const now = this.worker.performance.eventLoopUtilization();
    if (this.elu) this.load = this.worker.performance.eventLoopUtilization(now, this.elu).utilization;
    this.elu = now;
  }

  private onMessage(m: FromWorker): void {
    switch (m.t) {
      case 'event': {
        const tap = this.taps.get(m.e.tapId);
        // an ended tap's last words (its socket's disconnect) are still its events
        if (tap) tap.onEvent(m.e);
        else if (!this.silenced.has(m.e.tapId)) this.pool.emit('event', m.e);
        break;
      }
      case 'end':
        this.silenced.delete(m.id);
        this.taps.get(m.id)?.onEnd(m.reason);
        break;
      case 'inject': {
        const tap = this.taps.get(m.id);
        if (!tap) return this.post({ t: 'injected', req: m.req, ssrc: null, error: 'no such tap' });
        tap.onInject(m.side).then(
          (ssrc) => this.post({ t: 'injected', req: m.req, ssrc }),
          (e: Error) => this.post({ t: 'injected', req: m.req, ssrc: null, error: e.message }),
        );
        break;
      }
      case 'bound':
      case 'stats': {
        const fn = this.replies.get(m.req);
        this.replies.delete(m.req);
        fn?.(m);
        break;
      }
      case 'ready':
        this.tid = m.tid;
        break;
    }
  }
}

export interface TapWorkerPoolEvents {
  /** a thread died; its taps have ended */
  died: [index: number, taps: number];
  /** an event of a tap that has ended on the main thread (its socket closing after the stop) */
  event: [TapEvent];
}

export class TapWorkerPool extends EventEmitter<TapWorkerPoolEvents> {
  readonly threads: TapThread[] = [];
  /** how many threads the pool runs */
  readonly size: number;
  readonly nice: number;
  readonly log: Logger;
  readonly level: string;
  private readonly loadTimer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: TapWorkerPoolOptions) {
    super();
    this.log = o.log;
    this.level = o.log.level;
    this.nice = o.nice ?? 0;
    const n = (this.size = o.threads > 0 ? o.threads : Math.max(1, os.availableParallelism()));
    for (let i = 0; i < n; i++) this.threads.push(new TapThread(i, this));
    this.loadTimer = setInterval(() => {
      for (const t of this.threads) t.sampleLoad();
    }, 1000);
    this.loadTimer.unref();
  }

  /**
   * The thread for a new tap of `callId`, or why there is none (admission control): the
   * thread of the call's other taps when it has room, else the least loaded one with room.
   */
  pick(callId: string): TapThread | string {
    const room = (t: TapThread): boolean => t.alive && t.taps.size < this.o.maxPerThread && t.load < this.o.maxLoad;
    for (const t of this.threads) {
      for (const tap of t.taps.values()) if (tap.call.id === callId && room(t)) return t;
    }
    let best: TapThread | null = null;
    for (const t of this.threads) {
      if (!room(t)) continue;
      if (!best || t.taps.size + t.load * 100 < best.taps.size + best.load * 100) best = t;
    }
    if (best) return best;
    const full = this.threads.filter((t) => t.alive && t.taps.size >= this.o.maxPerThread).length;
    const busy = this.threads.filter((t) => t.alive && t.load >= this.o.maxLoad).length;
    return full === this.threads.length
      ? `every tap thread holds its maximum of ${this.o.maxPerThread} taps (taps.maxPerThread)`
      : busy > 0
        ? `the tap threads are too busy (load over taps.maxLoad ${this.o.maxLoad}: ${this.threads.map((t) => t.load.toFixed(2)).join(', ')})`
        : 'no tap thread is running';
  }

  threadExited(t: TapThread, code: number): void {
    t.failReplies();
    const taps = [...t.taps.values()];
    t.taps.clear();
    t.silenced.clear();
    if (this.closed) return;
    this.log.error({ thread: t.index, code, taps: taps.length }, 'a tap worker thread died: its taps end, the calls go on');
    for (const tap of taps) tap.threadDied();
    t.restarts++;
    t.start();
    this.emit('died', t.index, taps.length);
  }

  info(): TapThreadInfo[] {
    return this.threads.map((t) => ({ index: t.index, taps: t.taps.size, load: t.load, alive: t.alive, restarts: t.restarts }));
  }

  /** Each thread's clock figures, event-loop delay and GC pauses (the bench). */
  async clocks(): Promise<(FrameClockStats & { loop: { p99Ms: number; maxMs: number; gcMs: number }; media: MediaCounters })[]> {
    return Promise.all(
      this.threads.map(async (t) => {
        const r = await t.request<Extract<FromWorker, { t: 'stats' }>>((req) => ({ t: 'stats', req }));
        return { ...r.clock, loop: r.loop, media: r.media };
      }),
    );
  }

  /** Frame deviation of every tap, all threads pooled (Prometheus histogram, seconds). */
  deviation(): ReturnType<typeof sumHistograms> {
    return sumHistograms(this.threads.map((t) => t.histogram));
  }

  /** The threads' OS ids (CPU figures from /proc/<pid>/task/<tid>), where known. */
  get osThreadIds(): (number | null)[] {
    return this.threads.map((t) => t.tid);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.loadTimer);
    await Promise.all(this.threads.map((t) => t.worker.terminate().catch(() => 0)));
  }
}
