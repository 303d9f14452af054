/**
 * The gateway's audio taps: start one on a call (HTTP API, routing script, a SIP header,
 * wsbridge), control it (send_text, pause, resume, stop), list them with their state and
 * counters, and hear their events (connect, disconnect, error, json, play, mark, dtmf,
 * stop) on one emitter, also logged.
 *
 * A tap may be started before the call is answered (from the proxy at INVITE time): it
 * waits, attaches to the media once the call is answered, and ends if the call ends first.
 * Every tap closes with its call. The audio runs in worker threads (tap-worker-pool.ts); a
 * tap beyond the limits (total, per thread, thread load) is refused with OVERLOADED: an
 * `error` event and a 503 carrying the code, and the running taps are untouched.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { MediaService } from '../media/media-service.js';
import type { CallInfo } from './dialect.js';
import { contentTypeRate, wsbridgeUrl } from './dialects/wsbridge.js';
import { TapErrorCode } from './errors.js';
import { parseUrl, TapInputError, withDefaults, type TapStartOptions } from './options.js';
import { newTapId, Tap, type TapEvent } from './tap.js';
import { TapWorkerPool } from './tap-worker-pool.js';
import type { ResolvedAddress } from './url-policy.js';

/**
 * What taps need of a call (the calls floor's Call has it): taps sit below the call
 * controller, which starts them; they follow a call through these few fields and events.
 */
export interface TappedCall {
  readonly id: string;
  readonly callId: string;
  readonly state: string;
  readonly caller: { uri: string };
  readonly callee: { uri: string };
}

/** The calls a tap may follow (the calls floor's CallRegistry). */
export interface TappedCalls {
  get(id: string): TappedCall | undefined;
  on(event: 'updated' | 'ended', listener: (call: TappedCall) => void): unknown;
}

export interface TapServiceEvents {
  /** every event of every tap (publish these on the gateway's event stream) */
  event: [TapEvent];
  started: [Tap];
  stopped: [Tap, string];
}

export interface TapServiceDeps {
  calls: TappedCalls;
  media: MediaService | null;
  log: Logger;
  /** options every tap starts with (the config file's), overridden per tap */
  defaults?: Partial<TapStartOptions>;
  /** most taps at once (default 2000) */
  maxTaps?: number;
  /** worker threads running the taps' audio (default 0: one per core) */
  threads?: number;
  /** most taps per thread (default 1000) */
  maxPerThread?: number;
  /** a thread busier than this (event-loop utilisation 0..1) takes no new tap (default 0.85) */
  maxLoad?: number;
  /** nice value of the tap threads (taps.threadNice) */
  threadNice?: number;
}

export interface WsBridgeParams {
  /** P-wsbridge-websocket-uri, already URL-decoded */
  uri: string;
  /** P-wsbridge-websocket-headers: a JSON object (text), fields of the first message */
  headers?: string | Record<string, unknown> | null;
  /** P-wsbridge-websocket-content-type: audio/l16;rate=16000 (default) or rate=8000 */
  contentType?: string | null;
  /** the address the URL policy checked (wsbridge-app.ts) */
  connectTo?: ResolvedAddress;
}

function callInfo(call: TappedCall): CallInfo {
  return { id: call.id, callId: call.callId, from: call.caller.uri, to: call.callee.uri };
}

export class TapService extends EventEmitter<TapServiceEvents> {
  readonly pool: TapWorkerPool;
  private readonly taps = new Map<string, Tap>();
  private readonly byCall = new Map<string, Set<Tap>>();
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly d: TapServiceDeps) {
    super();
    this.log = d.log;
    this.pool = new TapWorkerPool({ threads: d.threads ?? 0, maxPerThread: d.maxPerThread ?? 1000, maxLoad: d.maxLoad ?? 0.85, nice: d.threadNice ?? 0, log: d.log });
    this.pool.on('event', (e) => this.emit('event', e));
    d.calls.on('updated', (call) => this.callUpdated(call));
    d.calls.on('ended', (call) => this.callEnded(call));
  }

  /**
   * Starts a tap on a call (answered or not yet). Throws TapInputError: 404 unknown call,
   * 409 ended call or no media, 400 bad options, 503 with code 107 (OVERLOADED) when
   * admission control refuses it (an `error` event says so too).
   */
  start(callId: string, options: TapStartOptions, how: { attachNow?: boolean } = {}): Tap {
    if (this.closed) throw new TapInputError(503, 'shutting down');
    const call = this.d.calls.get(callId);
    if (!call) throw new TapInputError(404, `no call ${callId}`);
    if (call.state === 'ended') throw new TapInputError(409, `call ${callId} has ended`);
    if (!this.d.media) throw new TapInputError(409, 'media is not anchored in this gateway (media.enabled is false): nothing to tap');
    if (call.state === 'answered' && !this.d.media.has(call.id)) throw new TapInputError(409, `call ${callId} has no media session to tap`);
    // undefined keys keep the config's defaults; tls merges key by key
    const opts: TapStartOptions = { ...withDefaults(this.d.defaults, options), url: parseUrl(options.url) };
    const max = this.d.maxTaps ?? 2000;
    const thread = this.taps.size >= max ? `the gateway holds its maximum of ${max} taps (taps.maxTaps)` : this.pool.pick(call.id);
    if (typeof thread === 'string') this.refuse(call, opts, thread);
    const media = this.d.media;
    const tap = new Tap(callInfo(call), opts, {
      thread,
      log: this.log,
      emit: (e) => this.emit('event', e),
      openPort: () => media.openTap(call.id),
    });
    this.taps.set(tap.id, tap);
    let set = this.byCall.get(call.id);
    if (!set) this.byCall.set(call.id, (set = new Set()));
    set.add(tap);
    tap.once('end', (reason) => {
      this.taps.delete(tap.id);
      const s = this.byCall.get(call.id);
      s?.delete(tap);
      if (s?.size === 0) this.byCall.delete(call.id);
      this.emit('stopped', tap, reason);
    });
    this.log.info({ tap: tap.id, call: call.id, dialect: tap.dialectName, mix: tap.mix, rate: tap.rate, state: call.state }, 'tap started');
    this.emit('started', tap);
    if (call.state === 'answered' || (how.attachNow && media.has(call.id))) void tap.attach();
    return tap;
  }

  /**
   * wsbridge: the gateway answered the caller itself (media.answerAsEndpoint); bridge it to
   * the WebSocket server. The tap's `ended` tells the caller's leg to hang up; stop() it when
   * the caller hangs up. Throws TapInputError on a bad URI or content type.
   */
  startWsBridge(callId: string, p: WsBridgeParams): Tap {
    // the P-wsbridge-* headers are URL-encoded; a script may hand them over still encoded
    const decode = (v: string): string => {
      try {
        return v.includes('%') ? decodeURIComponent(v) : v;
      } catch {
        return v;
      }
    };
    const rate = contentTypeRate(decode(p.contentType ?? 'audio/l16;rate=16000'));
    if (rate === null) throw new TapInputError(400, `unsupported content type ${JSON.stringify(p.contentType)}: audio/l16;rate=16000 or audio/l16;rate=8000`);
    let headers: Record<string, unknown> = {};
    if (typeof p.headers === 'string' && p.headers.trim() !== '') {
      try {
        const text = p.headers.trim().startsWith('%7B') || p.headers.trim().startsWith('%7b') ? decode(p.headers) : p.headers;
        const h = JSON.parse(text) as unknown;
        if (h && typeof h === 'object' && !Array.isArray(h)) headers = h as Record<string, unknown>;
        else throw new Error('not an object');
      } catch {
        throw new TapInputError(400, 'P-wsbridge-websocket-headers must be a JSON object');
      }
    } else if (p.headers && typeof p.headers === 'object') headers = p.headers;
    // the gateway itself answered the caller: the media is there before the call is "answered"
    return this.start(callId, { url: wsbridgeUrl(p.uri), dialect: 'wsbridge', mix: 'mono', rate, playTo: 'caller', comfortNoise: true, wsbridgeHeaders: headers , connectTo: p.connectTo }, { attachNow: true });
  }

  /** Admission control said no: one event, one log line, and a 503 with the code. */
  private refuse(call: TappedCall, opts: TapStartOptions, why: string): never {
    const message = `tap refused: ${why}`;
    this.log.warn({ call: call.id, code: TapErrorCode.OVERLOADED, taps: this.taps.size, threads: this.pool.info() }, message);
    this.emit('event', { tapId: newTapId(), callId: call.id, dialect: opts.dialect ?? 'audio_stream', name: 'error', body: { status: 'error', message: { code: TapErrorCode.OVERLOADED, error: message } }, at: new Date().toISOString() });
    throw new TapInputError(503, message, TapErrorCode.OVERLOADED);
  }

  get(tapId: string): Tap | undefined {
    return this.taps.get(tapId);
  }

  /** the tap or a 404 */
  require(tapId: string): Tap {
    const t = this.taps.get(tapId);
    if (!t) throw new TapInputError(404, `no tap ${tapId}`);
    return t;
  }

  list(): Tap[] {
    return [...this.taps.values()];
  }

  forCall(callId: string): Tap[] {
    return [...(this.byCall.get(callId) ?? [])];
  }

  stop(tapId: string, metadata: string | null = null): void {
    this.require(tapId).stop('stopped by request', metadata);
  }

  pause(tapId: string): void {
    this.require(tapId).pause();
  }

  resume(tapId: string): void {
    this.require(tapId).resume();
  }

  sendText(tapId: string, text: string): void {
    const t = this.require(tapId);
    if (!t.sendText(text)) throw new TapInputError(409, `tap ${tapId} is not connected (${t.state})`);
  }

  get size(): number {
    return this.taps.size;
  }

  private callUpdated(call: TappedCall): void {
    if (call.state !== 'answered') return;
    for (const tap of this.byCall.get(call.id) ?? []) {
      if (tap.state === 'pending') void tap.attach();
    }
  }

  private callEnded(call: TappedCall): void {
    for (const tap of this.byCall.get(call.id) ?? []) tap.stop('call ended');
  }

  /** Stops every tap (their last words go out) and then the threads. */
  close(): Promise<void> {
    this.closed = true;
    const list = this.list();
    for (const tap of list) tap.stop('shutdown');
    const ended = Promise.all(list.map((t) => t.ended));
    const grace = new Promise<void>((r) => setTimeout(r, 2500).unref());
    return Promise.race([ended.then(() => undefined), grace]).then(() => this.pool.close());
  }
}
