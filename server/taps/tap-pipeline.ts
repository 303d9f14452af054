/**
 * The audio pipeline of one tap, run inside a tap worker thread (tap-worker.ts): a call's
 * audio out to a WebSocket server, the server's audio back in. The main thread only sees
 * its handle (tap.ts), its events (messages) and its figures (TapStats, shared memory).
 *
 *   RTP from each party (the port's 'rtp': a UDP socket of this thread that mediasoup
 *   sends to) -> PartyInput: decode, jitter FIFO
 *   every 20 ms (the thread's FrameClock, at this tap's phase):
 *     each party's frame -> rate of the tap -> the dialect (mono/mixed/stereo, framing) -> socket
 *     PlayoutQueue frame (server audio, paced) [+ the other party, who is no longer heard
 *       directly once we inject] -> encoder of the listener's codec -> RTP -> TapPort.send
 *
 * Injection starts with the first audio the server sends and lasts until the tap ends: from
 * then on the listener hears the tap's stream (the other party mixed in, DTMF relayed), so
 * nothing the server sends ever stalls the call's own audio: a dead or slow server only means
 * silence from the server. Stopping is idempotent and releases everything (socket, port,
 * coders, clock slot); the call ending stops its taps.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { RtpPacketizer } from '../audio/rtp.js';
import type { LegCodecs } from '../media/codecs.js';
import type { CodedType } from './coded-audio.js';
import type { DeviationHistogram } from './deviation-histogram.js';
import type { CallInfo, Dialect, DialectContext, Side, TapEventBodies, TapEventName } from './dialect.js';
import { createAudioStreamDialect } from './dialects/audio-stream.js';
import { createTwilioDialect } from './dialects/twilio.js';
import { createWsBridgeDialect } from './dialects/wsbridge.js';
import { errorName, TapErrorCode, type TapError, type TapErrorCodeValue } from './errors.js';
import { FRAME_MS, type FrameClock, type Ticking } from './frame-clock.js';
import type { Dialect as DialectName, Mix, PlayTo, TapRate, TapStartOptions } from './options.js';
import { PartyInput } from './party-input.js';
import { PlayoutQueue } from './playout-queue.js';
import { RateConverter } from './rate-converter.js';
import { codecKind, createEncoder, type FrameEncoder, type NativeRate } from './rtp-codecs.js';
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
export interface TapMediaPort {
  /** the codecs a party speaks on this call, or null before the answer */
  codecs(side: Side): LegCodecs | null;
  /** make `side` hear what send(side) injects; resolves with the SSRC to send with */
  inject(side: Side): Promise<number>;
  /** an RTP packet for `side` (the buffer may be reused once this returns) */
  send(side: Side, packet: Buffer): void;
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

const SIDES: readonly Side[] = ['caller', 'callee'];
const other = (s: Side): Side => (s === 'caller' ? 'callee' : 'caller');

/** Comfort noise: white noise at about -66 dBFS, one shared table. */
const NOISE = (() => {
  const t = new Int16Array(8000);
  let x = 0x12345678;
  for (let i = 0; i < t.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = (x % 33) | 0;
  }
  return t;
})();

interface Injection {
  side: Side;
  encoder: FrameEncoder;
  packetizer: RtpPacketizer;
  dtmfPt: number | null;
  frame: Int16Array;
  mixBuf: Int16Array;
  playConv: RateConverter | null;
  otherConv: RateConverter | null;
  rtp: Buffer;
  marker: boolean;
  /** telephone-event being relayed: its source timestamp -> ours */
  dtmf: { src: number; dst: number } | null;
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
  private readonly inputs: Record<Side, PartyInput | null> = { caller: null, callee: null };
  private readonly native: Record<Side, Int16Array> = { caller: new Int16Array(320), callee: new Int16Array(320) };
  private readonly had: Record<Side, boolean> = { caller: false, callee: false };
  private readonly toTap: Record<Side, RateConverter | null> = { caller: null, callee: null };
  private readonly tapBuf: Record<Side, Int16Array>;
  private readonly playFrame = new Int16Array(320);
  private readonly premixBuf = new Int16Array(320);
  private playRate: NativeRate | null = null;
  private readonly inject: Record<Side, Injection | null> = { caller: null, callee: null };
  private injecting: 'no' | 'starting' | 'yes' | 'failed' = 'no';
  private noiseAt = 0;
  private readonly comfortNoise: boolean;
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
    this.dialectName = options.dialect ?? 'audio_stream';
    this.mix = options.mix ?? 'mono';
    this.rate = this.dialectName === 'twilio' ? 8000 : (options.rate ?? 8000);
    this.playTo = options.playTo ?? 'caller';
    this.bufferMs = this.dialectName === 'audio_stream' ? (options.bufferMs ?? 20) : 20;
    this.comfortNoise = options.comfortNoise ?? this.dialectName === 'wsbridge';
    this.pauseAboveMs = options.pauseReadingAboveMs ?? 60_000;
    this.log = deps.log.child({ tap: this.id, call: call.id, dialect: this.dialectName });
    this.tapBuf = { caller: new Int16Array(this.rate / 50), callee: new Int16Array(this.rate / 50) };
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
    for (const side of SIDES) {
      this.inputs[side]?.flushDtmf();
      this.inputs[side]?.destroy();
      this.inputs[side] = null;
      this.inject[side]?.encoder.destroy();
      this.inject[side] = null;
    }
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
      if (this.dialect.drainOnClose && this.injecting === 'yes' && !this.queue.empty) {
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
    if (this.injecting === 'no') void this.startInjection();
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

  private input(side: Side): PartyInput {
    let inp = this.inputs[side];
    if (!inp) {
      inp = new PartyInput(() => this.port?.codecs(side) ?? null, {
        digit: (digit, durationMs) => {
          this.emitEvent('dtmf', { side, digit, durationMs });
          if (this.socket.isOpen) this.dialect.onDtmf(side, digit, durationMs);
        },
        event: (payload, timestamp, marker) => this.relayDtmf(other(side), payload, timestamp, marker),
        rate: () => {
          this.toTap[side] = null;
        },
      });
      this.inputs[side] = inp;
    }
    return inp;
  }

  private onRtp(side: Side, packet: Buffer): void {
    if (side === 'caller') this.counters.rtpCaller++;
    else this.counters.rtpCallee++;
    // a party nobody needs is not decoded (mono, nothing played yet)
    if (!this.dialect.needs[side] && this.injecting === 'no') return;
    this.input(side).push(packet);
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
    for (const side of SIDES) {
      const inp = this.inputs[side];
      if (inp) {
        const buf = this.native[side].subarray(0, inp.rate / 50);
        this.had[side] = inp.pull(buf);
      } else this.had[side] = false;
    }
    if (this.state === 'connected' && !this.paused && this.socket.isOpen) this.capture();
  }

  /** Second phase: what the call hears. */
  afterTick(): void {
    if (this.state === 'stopped') return;
    if (this.injecting === 'yes') this.play();
    else if (this.injecting === 'no' && !this.queue.empty) void this.startInjection();
    else if (this.injecting === 'no' && !this.queue.idle && this.queue.empty) {
      // marks with no audio before them: reached at once
      const silent = this.playFrame.subarray(0, 160);
      this.queue.pull(silent);
      for (const name of this.queue.takeReached()) this.markPlayed(name);
    }
    if (this.state === 'draining' && this.queue.empty) this.finish('server closed');
    if (this.socket.isPaused) this.flowControl();
    this.publish();
  }

  /** Steps skipped after a stall of this thread: a gap in the audio, counted. */
  skipped(frames: number): void {
    this.counters.framesSkipped += frames;
    this.prevLateMs = null;
  }

  private capture(): void {
    const n = this.rate / 50;
    const ci = this.inputs.caller;
    const ce = this.inputs.callee;
    if (this.dialect.premix && ci && ce && ci.rate === ce.rate && this.had.callee) {
      // mixed: sum at the codec rate, convert once
      const a = this.native.caller;
      const b = this.native.callee;
      const mix = this.premixBuf;
      const m = ci.rate / 50;
      const hadA = this.had.caller;
      for (let i = 0; i < m; i++) {
        const s = (hadA ? a[i]! : 0) + b[i]!;
        mix[i] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
      }
      this.toTapBuf('caller', ci, mix);
      this.tapBuf.callee.fill(0);
      this.dialect.onAudio(this.tapBuf.caller, this.tapBuf.callee, true, true);
      return;
    }
    for (const side of SIDES) {
      if (!this.dialect.needs[side]) continue;
      const inp = this.inputs[side];
      if (!inp || !this.had[side]) this.tapBuf[side].fill(0, 0, n);
      else this.toTapBuf(side, inp, this.native[side]);
    }
    this.dialect.onAudio(this.tapBuf.caller, this.tapBuf.callee, this.had.caller, this.had.callee);
  }

  /** One party's native frame (or the premixed one, in the caller's slot) at the tap's rate. */
  private toTapBuf(side: Side, inp: PartyInput, src: Int16Array): void {
    const out = this.tapBuf[side];
    let conv = this.toTap[side];
    if (!conv || conv.inRate !== inp.rate) conv = this.toTap[side] = new RateConverter(inp.rate, this.rate, 'telephony');
    const got = conv.process(src.subarray(0, inp.rate / 50), out, 0);
    if (got < out.length) out.fill(0, got);
  }

  // ---------------------------------------------------------------- media out

  private async startInjection(): Promise<void> {
    const port = this.port;
    if (!port || this.injecting !== 'no') return;
    const targets = SIDES.filter((s) => (this.playTo === 'both' || this.playTo === s) && port.codecs(s) !== null);
    if (targets.length === 0) return; // codecs not known yet: tried again with the next audio
    this.injecting = 'starting';
    try {
      for (const side of targets) {
        const codecs = port.codecs(side)!;
        const kind = codecKind(codecs.media);
        if (!kind) throw new Error(`no encoder for ${codecs.media.name}`);
        const encoder = createEncoder(kind);
        const ssrc = await port.inject(side);
        if (this.state === 'stopped') {
          encoder.destroy();
          return;
        }
        this.inject[side] = {
          side,
          encoder,
          packetizer: new RtpPacketizer({ payloadType: codecs.media.pt, clockRate: codecs.media.clockRate, samplesPerPacket: encoder.tsPerFrame, ssrc }),
          dtmfPt: codecs.dtmf?.pt ?? null,
          frame: new Int16Array(encoder.rate / 50),
          mixBuf: new Int16Array(encoder.rate / 50),
          playConv: null,
          otherConv: null,
          rtp: Buffer.alloc(1600),
          marker: true,
          dtmf: null,
        };
      }
      const rates = new Set(targets.map((s) => this.inject[s]!.encoder.rate));
      this.playRate = rates.size === 1 ? [...rates][0]! : 16000;
      this.queue.setRate(this.playRate);
      // from now on the other party is heard through us: decode it
      for (const side of targets) this.input(other(side));
      this.injecting = 'yes';
      this.stats.playing = true;
      this.log.info({ targets, playRate: this.playRate }, 'playing into the call');
    } catch (e) {
      this.injecting = 'failed';
      this.error(TapErrorCode.MEDIA, `cannot play into the call: ${(e as Error).message}`);
    }
  }

  private play(): void {
    const port = this.port;
    const rate = this.playRate;
    if (!port || rate === null) return;
    const n = rate / 50;
    const frame = this.playFrame.subarray(0, n);
    const got = this.queue.pull(frame);
    if (got < n) {
      if (this.comfortNoise) {
        for (let i = got; i < n; i++) {
          frame[i] = NOISE[this.noiseAt]!;
          if (++this.noiseAt === NOISE.length) this.noiseAt = 0;
        }
      } else frame.fill(0, got);
    }
    if (got > 0) this.counters.framesPlayed++;
    for (const side of SIDES) {
      const inj = this.inject[side];
      if (!inj) continue;
      const m = inj.frame.length;
      // server audio at the listener's codec rate
      if (rate === inj.encoder.rate) inj.frame.set(frame);
      else {
        inj.playConv ??= new RateConverter(rate, inj.encoder.rate, 'telephony');
        const w = inj.playConv.process(frame, inj.frame, 0);
        if (w < m) inj.frame.fill(0, w);
      }
      // plus the other party, who no longer reaches this side directly
      const o = other(side);
      const inp = this.inputs[o];
      if (inp && this.had[o]) {
        const src = this.native[o].subarray(0, inp.rate / 50);
        let add = src;
        if (inp.rate !== inj.encoder.rate) {
          if (!inj.otherConv || inj.otherConv.inRate !== inp.rate) inj.otherConv = new RateConverter(inp.rate, inj.encoder.rate, 'telephony');
          const w = inj.otherConv.process(src, inj.mixBuf, 0);
          if (w < m) inj.mixBuf.fill(0, w);
          add = inj.mixBuf;
        }
        const f = inj.frame;
        for (let i = 0; i < m; i++) {
          const s = f[i]! + add[i]!;
          f[i] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
        }
      }
      const payload = inj.encoder.encode(inj.frame);
      const pkt = inj.packetizer.next(payload, { marker: inj.marker, out: inj.rtp });
      inj.marker = false;
      port.send(side, pkt);
    }
    for (const name of this.queue.takeReached()) this.markPlayed(name);
  }

  private markPlayed(name: string): void {
    this.emitEvent('mark', { name });
    if (this.socket.isOpen) this.dialect.onMarkPlayed(name);
  }

  /** A telephone-event from the party `to` no longer hears directly: pass it on. */
  private relayDtmf(to: Side, payload: Uint8Array, timestamp: number, marker: boolean): void {
    const inj = this.inject[to];
    const port = this.port;
    if (!inj || !port || inj.dtmfPt === null || this.injecting !== 'yes') return;
    if (!inj.dtmf || inj.dtmf.src !== timestamp) inj.dtmf = { src: timestamp, dst: inj.packetizer.timestamp };
    const pkt = inj.packetizer.packetAt(payload, { timestamp: inj.dtmf.dst, marker, payloadType: inj.dtmfPt, out: inj.rtp });
    port.send(to, pkt);
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
