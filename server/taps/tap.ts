/**
 * One audio tap as the main thread holds it: a handle on a pipeline (tap-pipeline.ts) that
 * runs in one of the tap worker threads. The handle sets up the call's media port (a
 * mediasoup PlainTransport that sends to the thread's UDP socket), relays control (stop,
 * pause, resume, send_text) and the pipeline's events, and reads the tap's live figures
 * from shared memory (TapStats). Stopping is idempotent; the call ending stops its taps; a
 * thread that dies ends its taps with a WORKER_DIED error event.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { TapPort } from '../media/tap-port.js';
import type { CallInfo, Side } from './dialect.js';
import { TapErrorCode } from './errors.js';
import { tapShape, type Dialect as DialectName, type Mix, type PlayTo, type TapRate, type TapStartOptions } from './options.js';
import { redact } from './redact.js';
import type { FromWorker } from './tap-messages.js';
import type { TapEvent } from './tap-pipeline.js';
import { TapStats, type TapCounters, type TapState } from './tap-stats.js';
import type { TapThread, ThreadTap } from './tap-worker-pool.js';

export type { TapCounters, TapEvent, TapState };

export interface TapDeps {
  thread: TapThread;
  log: Logger;
  emit: (e: TapEvent) => void;
  openPort: () => Promise<TapPort>;
}

export interface TapEvents {
  /** the tap ended (the reason in words) */
  end: [reason: string];
}

let seq = 0;

/** A new tap's id (also given to taps refused before they start, for their error event). */
export function newTapId(): string {
  return `t${Date.now().toString(36)}${(++seq).toString(36)}`;
}

export class Tap extends EventEmitter<TapEvents> implements ThreadTap {
  readonly id = newTapId();
  readonly dialectName: DialectName;
  readonly mix: Mix;
  readonly rate: TapRate;
  readonly playTo: PlayTo;
  readonly bufferMs: number;
  readonly createdAt = Date.now();
  endReason: string | null = null;
  lastError: { code: number; error: string } | null = null;
  /** resolves when the socket first opens; rejects if the tap ends before */
  readonly ready: Promise<void>;
  /** resolves with the reason when the tap ends */
  readonly ended: Promise<string>;
  private readonly stats = new TapStats();
  private readonly log: Logger;
  private port: TapPort | null = null;
  private attaching = false;
  private done = false;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  private endResolve!: (r: string) => void;

  constructor(
    readonly call: CallInfo,
    readonly options: TapStartOptions,
    private readonly deps: TapDeps,
  ) {
    super();
    ({ dialectName: this.dialectName, mix: this.mix, rate: this.rate, playTo: this.playTo, bufferMs: this.bufferMs } = tapShape(options));
    this.log = deps.log.child({ tap: this.id, call: call.id, dialect: this.dialectName });
    this.ready = new Promise<void>((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    this.ended = new Promise<string>((res) => (this.endResolve = res));
    deps.thread.taps.set(this.id, this);
    deps.thread.post({ t: 'create', id: this.id, call, options, stats: this.stats.buffer });
  }

  get state(): TapState {
    return this.stats.state;
  }

  get paused(): boolean {
    return this.stats.paused;
  }

  /** live counters (shared memory written by the tap's thread) */
  get counters(): TapCounters {
    return this.stats.counters;
  }

  get connectedAt(): number | null {
    return this.stats.connectedAt;
  }

  /** the index of the worker thread running it */
  get thread(): number {
    return this.deps.thread.index;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Opens the call's tap port, has the tap's thread bind its end, and connects (the call is answered). */
  async attach(): Promise<void> {
    if (this.done || this.attaching || this.state !== 'pending') return;
    this.attaching = true;
    let port: TapPort;
    try {
      port = await this.deps.openPort();
    } catch (e) {
      this.fail(TapErrorCode.MEDIA, `cannot tap the call's media: ${(e as Error).message}`, 'no media');
      return;
    }
    if (this.done) return void port.close();
    this.port = port;
    port.on('close', () => this.stop('call ended'));
    port.on('source', (side, source) => this.deps.thread.post({ t: 'source', id: this.id, side, source }));
    const local = port.local;
    const bound = await this.deps.thread
      .request<Extract<FromWorker, { t: 'bound' }>>((req) => ({ t: 'attach', id: this.id, req, media: local, sources: { caller: port.source('caller'), callee: port.source('callee') } }))
      .catch((e: Error) => ({ t: 'bound' as const, req: 0, port: null, error: e.message }));
    if (this.done) return;
    if (bound.port === null) {
      this.fail(TapErrorCode.MEDIA, `cannot tap the call's media: ${bound.error ?? 'no port'}`, 'no media');
      return;
    }
    try {
      await port.connect(local.ip, bound.port);
    } catch (e) {
      this.fail(TapErrorCode.MEDIA, `cannot tap the call's media: ${(e as Error).message}`, 'no media');
    }
  }

  /** Stops (API, call end): last words to the server, close 1000. Idempotent. */
  stop(reason = 'stopped', metadata: string | null = null): void {
    if (this.done) return;
    this.deps.thread.post({ t: 'stop', id: this.id, reason, metadata });
  }

  /** (the thread does the same on receipt: a reply to this request already shows it) */
  pause(): void {
    if (this.done) return;
    this.stats.paused = true;
    if (this.stats.state === 'connected') this.stats.state = 'paused';
    this.deps.thread.post({ t: 'pause', id: this.id });
  }

  resume(): void {
    if (this.done) return;
    this.stats.paused = false;
    if (this.stats.state === 'paused') this.stats.state = 'connected';
    this.deps.thread.post({ t: 'resume', id: this.id });
  }

  /** send_text: returns false when not connected. */
  sendText(text: string): boolean {
    const s = this.state;
    if (this.done || (s !== 'connected' && s !== 'paused' && s !== 'draining')) return false;
    this.deps.thread.post({ t: 'text', id: this.id, text });
    return true;
  }

  // ---------------------------------------------------------------- from the thread

  /** @internal an event of the pipeline */
  onEvent(e: TapEvent): void {
    if (e.name === 'error') {
      const m = (e.body as { message: { code: number; error: string } }).message;
      this.lastError = { code: m.code, error: m.error };
    } else if (e.name === 'connect') this.readyResolve();
    this.deps.emit(e);
  }

  /** @internal the pipeline wants to play into the call as `side` */
  onInject(side: Side): Promise<number> {
    if (!this.port || this.port.isClosed) return Promise.reject(new Error('the call has no media'));
    return this.port.inject(side);
  }

  /** @internal the pipeline ended */
  onEnd(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.deps.thread.taps.delete(this.id);
    this.endReason = reason;
    this.stats.state = 'stopped';
    const port = this.port;
    this.port = null;
    port?.close();
    this.readyReject(new Error(`tap ended: ${reason}`));
    this.endResolve(reason);
    this.emit('end', reason);
  }

  /** @internal the thread died: the tap ends with an error event (the call goes on) */
  threadDied(): void {
    if (this.done) return;
    this.fail(TapErrorCode.WORKER_DIED, `the tap's worker thread ${this.deps.thread.index} died`, 'tap worker died', false);
  }

  /** An error the main thread saw: its event, then the tap ends (the pipeline too, if it lives). */
  private fail(code: number, message: string, reason: string, pipelineAlive = true): void {
    this.emitOwn('error', { status: 'error', message: { code, error: message } });
    this.log.warn({ code, error: message }, 'tap error');
    if (pipelineAlive) {
      this.deps.thread.silenced.add(this.id);
      this.deps.thread.post({ t: 'stop', id: this.id, reason, metadata: null });
    }
    this.emitOwn('stop', { reason });
    this.onEnd(reason);
  }

  private emitOwn<K extends TapEvent['name']>(name: K, body: TapEvent<K>['body']): void {
    this.onEvent({ tapId: this.id, callId: this.call.id, dialect: this.dialectName, name, body, at: new Date().toISOString() } as TapEvent);
  }

  // ---------------------------------------------------------------- reporting

  toJSON(): object {
    const s = this.stats;
    return {
      id: this.id,
      callId: this.call.id,
      dialect: this.dialectName,
      url: redact(this.options.url),
      mix: this.mix,
      rate: this.rate,
      bufferMs: this.bufferMs,
      playTo: this.playTo,
      state: s.state,
      paused: s.paused,
      playing: s.playing,
      queuedMs: Math.round(s.queuedMs),
      queueEmpty: s.queueEmpty,
      readingPaused: s.readingPaused,
      bufferedBytes: s.bufferedBytes,
      counters: { ...s.snapshot(), bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, connects: s.connects },
      jitter: { ms: round2(s.jitterMs), maxDeviationMs: round2(s.maxDeviationMs) },
      thread: this.deps.thread.index,
      lastError: this.lastError,
      createdAt: new Date(this.createdAt).toISOString(),
      connectedAt: s.connectedAt ? new Date(s.connectedAt).toISOString() : null,
      endReason: this.endReason,
    };
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
