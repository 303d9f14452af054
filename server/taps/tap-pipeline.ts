/**
 * The audio pipeline of one tap, run inside a tap worker thread (tap-worker.ts): a call's
 * audio out to a WebSocket server, the server's audio back in. The main thread only sees
 * its handle (tap.ts), its events (messages) and its figures (TapStats, shared memory).
 *
 *   RTP from each party (the port's 'rtp': a UDP socket of this thread that mediasoup
 *   sends to) -> media in (CallCapture, call-capture.ts): decode, jitter FIFO
 *   every 20 ms (the thread's FrameClock, at this tap's phase):
 *     tick: each party's frame -> rate of the tap -> the dialect (mono/mixed/stereo, framing) -> socket
 *     afterTick: media out (CallPlayer, call-player.ts): PlayoutQueue frame (server audio,
 *       paced) [+ the other party, who is no longer heard directly once we inject]
 *       -> encoder of the listener's codec -> RTP -> TapMediaPort.send
 *
 * This file is the rest: the socket, the dialect and its context, the tap's lifecycle.
 *
 * Injection starts with the first audio the server sends and lasts until the tap ends: from
 * then on the listener hears the tap's stream (the other party mixed in, DTMF relayed), so
 * nothing the server sends ever stalls the call's own audio: a dead or slow server only means
 * silence from the server. Stopping is idempotent and releases everything (socket, port,
 * coders, clock slot); the call ending stops its taps.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { otherSide } from '../sip/dialog.js';
import { CallCapture } from './call-capture.js';
import { CallPlayer, type PlayPort } from './call-player.js';
import type { CodedType } from './coded-audio.js';
import type { DeviationHistogram } from './deviation-histogram.js';
import type { CallInfo, Dialect, DialectContext, Side, TapEventBodies, TapEventName } from './dialect.js';
import { createAudioStreamDialect } from './dialects/audio-stream.js';
import { createTwilioDialect } from './dialects/twilio.js';
import { createWsBridgeDialect } from './dialects/wsbridge.js';
import { errorName, TapErrorCode, type TapError, type TapErrorCodeValue } from './errors.js';
import { FRAME_MS, type FrameClock, type Ticking } from './frame-clock.js';
import { tapShape, type Dialect as DialectName, type Mix, type PlayTo, type TapRate, type TapStartOptions } from './options.js';
import { PlayoutQueue } from './playout-queue.js';
import { redact } from './redact.js';
import { TapSocket } from './tap-socket.js';
import type { TapCounters, TapStats, TapState } from './tap-stats.js';

export type { TapCounters, TapState };

export interface TapEvent<K extends TapEventName = TapEventName> {
  tapId: string;
  callId: string;
  dialect: DialectName;
  name: K;
  body: TapEventBodies[K];
  at: string;
}

/** What a pipeline needs of the call's media: a port of its thread (udp-tap-port.ts). */
export interface TapMediaPort extends PlayPort {
  on(event: 'rtp', fn: (side: Side, packet: Buffer) => void): unknown;
  on(event: 'close', fn: () => void): unknown;
  close(): void;
}

export interface TapDeps {
  clock: FrameClock;
  log: Logger;
  emit: (e: TapEvent) => void;
  /** the tap's figures, shared with the main thread */
  stats: TapStats;
  /** the thread's histogram of frame deviation */
  histogram?: DeviationHistogram;
}

export interface TapEvents {
  /** the tap ended (the reason in words) */
  end: [reason: string];
}

export class TapPipeline extends EventEmitter<TapEvents> implements Ticking {
  readonly dialectName: DialectName;
  readonly mix: Mix;
  readonly rate: TapRate;
  readonly playTo: PlayTo;
  readonly bufferMs: number;
  endReason: string | null = null;
  lastError: { code: number; error: string } | null = null;
  readonly counters: TapCounters;
  /** resolves when the socket first opens; rejects if the tap ends before */
  readonly ready: Promise<void>;
  /** resolves with the reason when the tap ends */
  readonly ended: Promise<string>;

  private readonly log: Logger;
  private readonly socket: TapSocket;
  private readonly dialect: Dialect;
  private readonly queue: PlayoutQueue;
  private port: TapMediaPort | null = null;
  private readonly stats: TapStats;
  private st: TapState = 'pending';
  private pz = false;
  /** lateness of this tap's previous step, ms (its deviation from 20 ms is the difference) */
  private prevLateMs: number | null = null;
  /** media in: the parties' audio, to the dialect and to the player's mix */
  private readonly capture: CallCapture;
  /** media out; made by attach(): nothing is played into a call before its port exists */
  private player: CallPlayer | null = null;
  private readonly pauseAboveMs: number;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  private endResolve!: (r: string) => void;
  private lastSlowReport = 0;
  private droppedSinceReport = 0;
  private lastOverflowReport = 0;
  private jsonWindow = { start: 0, count: 0 };

  constructor(
    readonly id: string,
    readonly call: CallInfo,
    readonly options: TapStartOptions,
    private readonly deps: TapDeps,
  ) {
    super();
    this.stats = deps.stats;
    this.counters = deps.stats.counters;
    ({ dialectName: this.dialectName, mix: this.mix, rate: this.rate, playTo: this.playTo, bufferMs: this.bufferMs } = tapShape(options));
    this.pauseAboveMs = options.pauseReadingAboveMs ?? 60_000;
    this.log = deps.log.child({ tap: this.id, call: call.id, dialect: this.dialectName });
    this.ready = new Promise<void>((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    this.ended = new Promise<string>((res) => (this.endResolve = res));
    this.queue = new PlayoutQueue(
      { rate: 16000, maxQueuedMs: options.maxQueuedMs ?? 600_000 },
      { decodeError: (type, err) => this.error(TapErrorCode.BAD_MESSAGE, `${type} audio does not decode: ${err.message}`) },
    );
    const heartbeatMs = (options.heartbeatSec ?? 0) * 1000;
    const rc = options.reconnect;
    this.socket = new TapSocket({
      url: options.url,
      address: options.connectTo, // the address the URL policy checked (no second lookup)
      headers: options.headers,
      deflate: options.deflate === true,
      tls: options.tls,
      heartbeatMs,
      reconnect: rc === true ? { enabled: true } : typeof rc === 'object' ? { enabled: true, ...rc } : { enabled: false },
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      maxMessageBytes: options.maxMessageBytes,
      maxBufferedBytes: options.maxBufferedBytes,
    });
    const ctx = this.context();
    const input = { ctx, mix: this.mix, rate: this.rate, bufferMs: this.bufferMs };
    this.dialect = this.dialectName === 'twilio' ? createTwilioDialect(input) : this.dialectName === 'wsbridge' ? createWsBridgeDialect(input) : createAudioStreamDialect(input);
    this.capture = new CallCapture({
      rate: this.rate,
      codecs: (side) => this.port?.codecs(side) ?? null,
      digit: (side, digit, durationMs) => {
        this.emitEvent('dtmf', { side, digit, durationMs });
        if (this.socket.isOpen) this.dialect.onDtmf(side, digit, durationMs);
      },
      event: (side, payload, timestamp, marker) => this.player?.relayDtmf(otherSide(side), payload, timestamp, marker),
    });
    this.wireSocket();
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * The state, mirrored to the shared block except `stopped`: the main thread writes that
   * itself when the 'end' message arrives, so a reader there never sees a stopped tap whose
   * end (reason, events) it has not been told yet.
   */
  get state(): TapState {
    return this.st;
  }
  private set state(s: TapState) {
    this.st = s;
    if (s !== 'stopped') this.stats.state = s;
  }
  get paused(): boolean {
    return this.pz;
  }
  private set paused(v: boolean) {
    this.pz = v;
    this.stats.paused = v;
  }

  /** Takes the call's media port and connects (the call is answered). */
  attach(port: TapMediaPort): void {
    if (this.state !== 'pending') {
      port.close();
      return;
    }
    this.port = port;
    this.player = new CallPlayer({
      port,
      queue: this.queue,
      playTo: this.playTo,
      comfortNoise: this.options.comfortNoise ?? this.dialectName === 'wsbridge',
      heard: (side) => this.capture.heard(side),
      listen: (side) => void this.capture.listen(side),
      stats: this.stats,
      log: this.log,
      error: (code, message) => this.error(code, message),
      marked: (name) => this.markPlayed(name),
    });
    port.on('rtp', (side, packet) => this.onRtp(side, packet));
    port.on('close', () => this.stop('call ended'));
    this.state = 'connecting';
    this.deps.clock.add(this);
    this.socket.connect();
  }

  /** Stops (API, call end): last words to the server, close 1000. Idempotent. */
  stop(reason = 'stopped', metadata: string | null = null): void {
    if (this.state === 'stopped') return;
    if (this.socket.isOpen) {
      try {
        this.dialect.onStop(metadata);
      } catch (e) {
        this.log.warn({ err: e }, 'dialect failed on stop');
      }
    }
    this.finish(reason);
    this.socket.close(1000, 'Normal closure');
  }

  pause(): void {
    if (this.state === 'stopped') return;
    this.paused = true;
    if (this.state === 'connected') this.state = 'paused';
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.state === 'paused') this.state = 'connected';
  }

  /** send_text: returns false when not connected. */
  sendText(text: string): boolean {
    const ok = this.socket.sendText(text, true);
    if (ok) this.counters.textSent++;
    return ok;
  }

  private finish(reason: string): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.endReason = reason;
    this.deps.clock.delete(this);
    this.capture.close();
    this.player?.close();
    this.queue.close();
    const port = this.port;
    this.port = null;
    port?.close();
    this.readyReject(new Error(`tap ended: ${reason}`));
    this.emitEvent('stop', { reason });
    this.publish();
    this.log.info({ reason, counters: this.stats.snapshot() }, 'tap stopped');
    this.endResolve(reason);
    this.emit('end', reason);
  }

  // ---------------------------------------------------------------- socket

  private wireSocket(): void {
    const s = this.socket;
    s.on('open', () => {
      if (this.state === 'stopped') return;
      this.state = this.paused ? 'paused' : 'connected';
      this.stats.connectedAt ??= Date.now();
      this.emitEvent('connect', { status: 'connected' });
      this.log.info({ url: redact(this.options.url) }, 'tap connected');
      try {
        this.dialect.onOpen();
      } catch (e) {
        this.log.warn({ err: e }, 'dialect failed on open');
      }
      this.readyResolve();
    });
    s.on('text', (text) => {
      if (this.state === 'stopped') return;
      this.counters.textReceived++;
      if (!this.options.suppressLog) this.log.debug({ text: text.length > 512 ? `${text.slice(0, 512)}...(${text.length})` : text }, 'server message');
      try {
        this.dialect.onText(text);
      } catch (e) {
        this.error(TapErrorCode.BAD_MESSAGE, `message not handled: ${(e as Error).message}`);
      }
      this.flowControl();
    });
    s.on('binary', (data) => {
      if (this.state === 'stopped') return;
      try {
        this.dialect.onBinary(data);
      } catch (e) {
        this.error(TapErrorCode.BAD_MESSAGE, `binary message not handled: ${(e as Error).message}`);
      }
      this.flowControl();
    });
    s.on('error', (err, retry) => this.socketError(err, retry));
    s.on('close', (code, reason, reconnecting) => {
      this.emitEvent('disconnect', { status: 'disconnected', message: { code, reason } });
      this.log.info({ code, reason, reconnecting }, 'tap disconnected');
      if (this.state === 'stopped') return;
      if (reconnecting) this.state = 'reconnecting';
    });
    s.on('end', () => {
      if (this.state === 'stopped') return;
      if (this.dialect.drainOnClose && this.player?.state === 'playing' && !this.queue.empty) {
        this.state = 'draining';
        return;
      }
      this.finish(this.lastError ? `error ${this.lastError.code}: ${this.lastError.error}` : 'server closed');
    });
  }

  private socketError(err: TapError, retry: { retries: number; waitMs: number | null }): void {
    const message: TapEventBodies['error']['message'] = { code: err.code, error: err.message, ...err.details };
    if (retry.waitMs !== null) {
      message.retries = retry.retries;
      message.wait_time = retry.waitMs;
    }
    this.lastError = { code: err.code, error: err.message };
    this.emitEvent('error', { status: 'error', message });
    this.log.warn({ code: err.code, name: errorName(err.code), error: err.message, ...retry }, 'tap error');
  }

  /** Read no more while a lot of audio waits; read again below half of it. */
  private flowControl(): void {
    const q = this.queue.queuedMs;
    if (!this.socket.isPaused && q > this.pauseAboveMs) this.socket.pause();
    else if (this.socket.isPaused && q < this.pauseAboveMs / 2) this.socket.resume();
  }

  // ---------------------------------------------------------------- dialect context

  private context(): DialectContext {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tap = this;
    return {
      get tapId() {
        return tap.id;
      },
      call: this.call,
      options: this.options,
      get log() {
        return tap.log;
      },
      sendText(text, force) {
        const ok = tap.socket.sendText(text, force);
        if (ok) {
          tap.counters.textSent++;
          if (!force) tap.counters.framesSent++;
        }
        return ok;
      },
      sendBinary(buf) {
        const ok = tap.socket.sendBinary(buf, true);
        if (ok) tap.counters.framesSent++;
        return ok;
      },
      dropped() {
        tap.counters.framesDropped++;
        tap.droppedSinceReport++;
        const now = Date.now();
        if (tap.socket.isOpen && now - tap.lastSlowReport > 5000) {
          tap.lastSlowReport = now;
          tap.error(TapErrorCode.SLOW_SERVER, 'the server does not read: dropping outgoing audio', { dropped: tap.droppedSinceReport, bufferedAmount: tap.socket.bufferedAmount });
          tap.droppedSinceReport = 0;
        }
      },
      received() {
        tap.counters.framesReceived++;
      },
      playL16: (bytes, rate, channels = 1) => this.enqueued(this.queue.enqueueL16(bytes, rate, channels), (bytes.length / 2 / channels / rate) * 1000),
      playPcm: (pcm, rate) => this.enqueued(this.queue.enqueuePcm(pcm, rate), (pcm.length / rate) * 1000),
      playCoded: (type: CodedType, bytes) => this.enqueued(this.queue.enqueueCoded(type, bytes), 0),
      mark: (name) => this.queue.mark(name),
      clear: () => this.queue.clear(),
      emit: (name, body) => this.emitEvent(name, body),
      error: (code, message, details) => this.error(code, message, details),
    };
  }

  private enqueued(ok: boolean, ms: number): void {
    if (!ok) {
      this.counters.playbackDroppedMs += Math.round(ms);
      const now = Date.now();
      if (now - this.lastOverflowReport > 1000) {
        this.lastOverflowReport = now;
        this.error(TapErrorCode.PLAYBACK_OVERFLOW, `playout queue full (${Math.round(this.queue.queuedMs)} ms queued, cap ${this.queue.maxQueuedMs} ms): audio dropped`, { droppedMs: this.counters.playbackDroppedMs });
      }
    }
    this.player?.start();
  }

  private error(code: TapErrorCodeValue, message: string, details: Record<string, unknown> = {}): void {
    this.lastError = { code, error: message };
    this.emitEvent('error', { status: 'error', message: { code, error: message, ...details } });
    this.log.warn({ code, name: errorName(code), error: message, ...details }, 'tap error');
  }

  private emitEvent<K extends TapEventName>(name: K, body: TapEventBodies[K]): void {
    if (name === 'json') {
      // a server flooding us with text does not flood the event stream
      const now = Date.now();
      if (now - this.jsonWindow.start >= 1000) this.jsonWindow = { start: now, count: 0 };
      if (++this.jsonWindow.count > 100) {
        this.counters.eventsSuppressed++;
        return;
      }
    }
    this.deps.emit({ tapId: this.id, callId: this.call.id, dialect: this.dialectName, name, body, at: new Date().toISOString() });
  }

  // ---------------------------------------------------------------- media in

  private onRtp(side: Side, packet: Buffer): void {
    if (side === 'caller') this.counters.rtpCaller++;
    else this.counters.rtpCallee++;
    // a party nobody needs is not decoded (mono, nothing played yet)
    if (!this.dialect.needs[side] && this.player?.state === 'idle') return;
    this.capture.push(side, packet);
  }

  // ---------------------------------------------------------------- the 20 ms step

  /** First phase of a step: every tap's outgoing frame leaves close to the step's start. */
  tick(_n: number, lateMs: number): void {
    if (this.state === 'stopped') return;
    if (this.prevLateMs !== null) {
      this.stats.step(lateMs - this.prevLateMs);
      this.deps.histogram?.observe(lateMs - this.prevLateMs);
    }
    this.prevLateMs = lateMs;
    this.capture.pull();
    if (this.state === 'connected' && !this.paused && this.socket.isOpen) this.capture.deliver(this.dialect);
  }

  /** Second phase: what the call hears. */
  afterTick(): void {
    if (this.state === 'stopped') return;
    this.player?.step();
    if (this.state === 'draining' && this.queue.empty) this.finish('server closed');
    if (this.socket.isPaused) this.flowControl();
    this.publish();
  }

  /** Steps skipped after a stall of this thread: a gap in the audio, counted. */
  skipped(frames: number): void {
    this.counters.framesSkipped += frames;
    this.prevLateMs = null;
  }

  private markPlayed(name: string): void {
    this.emitEvent('mark', { name });
    if (this.socket.isOpen) this.dialect.onMarkPlayed(name);
  }

  // ---------------------------------------------------------------- reporting

  /** Queue and socket figures to the shared block (once per step, and at the end). */
  private publish(): void {
    const q = this.queue;
    const so = this.socket;
    this.stats.publish(q.queuedMs, q.empty, so.isPaused, so.bufferedAmount, so.bytesOut, so.bytesIn, so.connects);
  }
}

export { FRAME_MS };
