/**
 * A real JsSIP user agent (the `jssip` npm package, the same code the softphone runs) driven
 * from Node, for integration tests of the gateway over SIP-over-WebSocket (RFC 7118).
 *
 *   const ua = await JsSipUa.start({ wsUrl, user: 'alice', password: 'pw-alice', domain, register: true });
 *   bob.onIncoming(async (call) => { await call.answer(); });
 *   const call = ua.call('sip:bob@127.0.0.1');
 *   await call.confirmed;             // 200 received and ACK sent
 *   const end = await call.hangup();  // BYE sent, and its final response seen
 *   await ua.stop();                  // un-REGISTER, close the WebSocket
 *
 * Every wait is bounded: a method takes an optional timeout (default 10 s, or the UA's
 * `timeoutMs`), and the promise getters (`call.progress`, `call.confirmed`, `call.ended`...) use
 * the default. Failures carry the SIP status code and the JsSIP cause (`SipFailureError`).
 *
 * What Node lacks and JsSIP needs is provided here (see `installNodeShims`):
 * - `WebSocket`: JsSIP's WebSocketInterface does `new WebSocket(url, 'sip')` on the global and
 *   sets `binaryType`, `onopen`/`onclose`/`onmessage`/`onerror`; the `ws` package's WebSocket is
 *   installed as `globalThis.WebSocket` when there is none (Node 20).
 * - `window.RTCPeerConnection` (JsSIP checks it before calling or accepting a call),
 *   `RTCPeerConnection` (constructed as `new RTCPeerConnection(pcConfig, rtcConstraints)`) and
 *   `RTCSessionDescription`. The global RTCPeerConnection is a dispatcher: it builds the peer
 *   connection with the factory carried in `pcConfig` (a symbol key this file sets per call), so
 *   each UA / call can plug its own implementation. The default is `FixedSdpPeerConnection`: no
 *   media, a fixed valid WebRTC-style audio SDP, and a record of the remote SDP it was given.
 *   A later helper can pass a werift-based factory (`peerConnectionFactory`) for real media.
 * - a local MediaStream: a fake one is passed as `mediaStream`, so JsSIP never calls
 *   `navigator.mediaDevices.getUserMedia`.
 *
 * JsSIP logs through the `debug` module: silent unless `DEBUG` names it (e.g. `DEBUG=JsSIP:*`).
 * `JSSIP_UA_TRACE=1` prints every SIP message each UA sends and receives to stderr.
 *
 * A few JsSIP internals are touched (pinned at jssip 3.13.8): the WebSocketInterface's `_ws`
 * (to drop a connection abruptly), the UA's `_closeTimer`/`_transport` (to close the socket at
 * once instead of after JsSIP's 2 s grace) and a session's `_request` (its Call-ID).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import JsSIP from 'jssip';
import type { RTCSession } from 'jssip/lib/RTCSession.js';
import type { UA } from 'jssip/lib/UA.js';
import sdpTransform from 'sdp-transform';
import { WebSocket as WsWebSocket } from 'ws';
import { Latch, within as withinOr } from './latch.js';

export const DEFAULT_TIMEOUT_MS = 10_000;

// JsSIP's loggers are `debug` instances: keep them off unless the user asked for them.
if (!process.env.DEBUG) JsSIP.debug.disable();

// ---------------------------------------------------------------------------------------------
// errors and bounded waits

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** A SIP-level failure: the final status code (null when there was no response) and JsSIP's cause. */
export class SipFailureError extends Error {
  override name = 'SipFailureError';
  constructor(
    message: string,
    readonly status: number | null,
    readonly reason: string | null,
    /** JsSIP's cause ('Authentication Error', 'Rejected', 'Busy'...) */
    override readonly cause: string,
    readonly originator: string | null = null,
  ) {
    super(message);
  }
}

export class RegistrationError extends SipFailureError {
  override name = 'RegistrationError';
}

export class CallFailedError extends SipFailureError {
  override name = 'CallFailedError';
}

/** `p`, or a TimeoutError naming `what` after `ms`. The timer never outlives the wait. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withinOr(p, ms, what, (m) => new TimeoutError(m));
}

// ---------------------------------------------------------------------------------------------
// peer connection: the subset of RTCPeerConnection JsSIP uses, and a fixed-SDP implementation

export type SdpType = 'offer' | 'answer' | 'pranswer' | 'rollback';

export interface SessionDescriptionLike {
  type: SdpType;
  sdp: string;
}

/** What JsSIP's RTCSession calls on its peer connection (jssip 3.13.8, lib/RTCSession.js). */
export interface RTCPeerConnectionLike {
  readonly localDescription: SessionDescriptionLike | null;
  readonly remoteDescription: SessionDescriptionLike | null;
  readonly signalingState: string;
  /** JsSIP sends its SDP right away when this is 'complete' after setLocalDescription */
  readonly iceGatheringState: string;
  /** JsSIP terminates the call (408 RTP Timeout) when this becomes 'failed' */
  readonly iceConnectionState: string;
  createOffer(options?: unknown): Promise<SessionDescriptionLike>;
  createAnswer(options?: unknown): Promise<SessionDescriptionLike>;
  setLocalDescription(desc?: SessionDescriptionLike): Promise<unknown>;
  setRemoteDescription(desc: SessionDescriptionLike): Promise<unknown>;
  addTrack(track: unknown, ...streams: unknown[]): unknown;
  /** mute/unmute toggle `sender.track.enabled`; RTP DTMF uses `sender.dtmf` */
  getSenders(): readonly unknown[];
  close(): void;
  /** 'iceconnectionstatechange', 'icecandidate', 'icegatheringstatechange' */
  addEventListener(type: string, listener: (ev: any) => void): void; // eslint-disable-line @typescript-eslint/no-explicit-any
  removeEventListener(type: string, listener: (ev: any) => void): void; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** `pcConfig` as JsSIP passes it (`{ iceServers: [] }` by default), minus this file's factory key. */
export type PeerConnectionConfig = Record<string, unknown> & { iceServers?: unknown[] };

export type PeerConnectionFactory = (config: PeerConnectionConfig, rtcConstraints?: unknown) => RTCPeerConnectionLike;

export type FixedCodec = 'opus' | 'PCMU' | 'PCMA' | 'telephone-event';

interface CodecDef {
  pt: number;
  name: string;
  rate: number;
  channels?: number;
  fmtp?: string;
  rtcpFb?: string[];
}

const CODECS: Record<FixedCodec, CodecDef> = {
  opus: { pt: 111, name: 'opus', rate: 48000, channels: 2, fmtp: 'minptime=10;useinbandfec=1', rtcpFb: ['transport-cc'] },
  PCMU: { pt: 0, name: 'PCMU', rate: 8000 },
  PCMA: { pt: 8, name: 'PCMA', rate: 8000 },
  'telephone-event': { pt: 126, name: 'telephone-event', rate: 8000, fmtp: '0-16' },
};

export interface FixedSdpOptions {
  /** the address in c=, o= and the host candidate (default 127.0.0.1) */
  address?: string;
  /** the port in m= and the candidate (default: a random even port in 40000..59998; nothing listens) */
  port?: number;
  /** what the offer lists and the answer accepts, in order (default opus, PCMU, PCMA, telephone-event) */
  codecs?: FixedCodec[];
  /** use this offer verbatim instead of the generated one */
  offerSdp?: string;
  /** use this answer instead of the generated one (a function gets the remote offer) */
  answerSdp?: string | ((offer: string) => string);
}

function invalidState(what: string, state: string): Error {
  const e = new Error(`${what} in signaling state ${state}`);
  e.name = 'InvalidStateError';
  return e;
}

function hexBytes(n: number, sep = ''): string {
  return [...randomBytes(n)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(sep);
}

/**
 * An RTCPeerConnection without media: createOffer/createAnswer give a fixed, valid WebRTC-style
 * audio SDP (UDP/TLS/RTP/SAVPF, ICE ufrag/pwd, one host candidate, a sha-256 fingerprint,
 * rtcp-mux, BUNDLE), the answer built against the remote offer (same m-lines and mids, codecs
 * intersected, setup active/passive, direction mirrored). Every remote SDP given to it is kept
 * in `remoteSdps` so tests can inspect what reached this end.
 */
export class FixedSdpPeerConnection extends EventTarget implements RTCPeerConnectionLike {
  readonly config: PeerConnectionConfig;
  readonly address: string;
  readonly port: number;
  readonly codecs: FixedCodec[];
  readonly iceUfrag = hexBytes(4).toLowerCase();
  readonly icePwd = hexBytes(12).toLowerCase();
  readonly fingerprint = hexBytes(32, ':');
  readonly streamId = randomUUID();
  readonly trackId = randomUUID();
  readonly ssrc = randomBytes(4).readUInt32BE(0) || 1;
  readonly cname = randomBytes(12).toString('base64');
  private readonly sessionId = BigInt('0x' + randomBytes(7).toString('hex')).toString();
  private sessionVersion = 1;

  localDescription: SessionDescriptionLike | null = null;
  remoteDescription: SessionDescriptionLike | null = null;
  /** every SDP passed to setRemoteDescription, in order */
  readonly remoteSdps: SessionDescriptionLike[] = [];
  /** every SDP passed to setLocalDescription, in order */
  readonly localSdps: SessionDescriptionLike[] = [];
  signalingState: 'stable' | 'have-local-offer' | 'have-remote-offer' | 'have-local-pranswer' | 'have-remote-pranswer' | 'closed' = 'stable';
  iceGatheringState: 'new' | 'gathering' | 'complete' = 'new';
  iceConnectionState: 'new' | 'checking' | 'connected' | 'completed' | 'failed' | 'disconnected' | 'closed' = 'new';
  connectionState: 'new' | 'connecting' | 'connected' | 'failed' | 'disconnected' | 'closed' = 'new';
  closed = false;

  // event handler properties, as on the real thing
  onicecandidate: ((ev: Event) => void) | null = null;
  onicegatheringstatechange: ((ev: Event) => void) | null = null;
  oniceconnectionstatechange: ((ev: Event) => void) | null = null;
  onsignalingstatechange: ((ev: Event) => void) | null = null;
  onconnectionstatechange: ((ev: Event) => void) | null = null;
  onnegotiationneeded: ((ev: Event) => void) | null = null;
  ontrack: ((ev: Event) => void) | null = null;

  private readonly senders: { track: unknown; dtmf: null; replaceTrack(t: unknown): Promise<void>; getParameters(): object }[] = [];
  private readonly opts: FixedSdpOptions;

  constructor(config: PeerConnectionConfig = {}, opts: FixedSdpOptions = {}) {
    super();
    this.config = config;
    this.opts = opts;
    this.address = opts.address ?? '127.0.0.1';
    this.port = opts.port ?? 40000 + 2 * Math.floor(Math.random() * 10000);
    this.codecs = opts.codecs ?? ['opus', 'PCMU', 'PCMA', 'telephone-event'];
  }

  /** the last remote SDP, or null */
  get remoteSdp(): string | null {
    return this.remoteDescription?.sdp ?? null;
  }

  async createOffer(_options?: unknown): Promise<SessionDescriptionLike> {
    this.assertOpen('createOffer');
    return { type: 'offer', sdp: this.opts.offerSdp ?? this.buildOffer() };
  }

  async createAnswer(_options?: unknown): Promise<SessionDescriptionLike> {
    this.assertOpen('createAnswer');
    if (this.signalingState !== 'have-remote-offer' && this.signalingState !== 'have-local-pranswer') {
      throw invalidState('createAnswer', this.signalingState);
    }
    const offer = this.remoteDescription!.sdp;
    const a = this.opts.answerSdp;
    return { type: 'answer', sdp: typeof a === 'function' ? a(offer) : (a ?? this.buildAnswer(offer)) };
  }

  async setLocalDescription(desc?: SessionDescriptionLike): Promise<void> {
    this.assertOpen('setLocalDescription');
    if (!desc) {
      desc = this.signalingState === 'have-remote-offer' ? await this.createAnswer() : await this.createOffer();
    }
    checkSdp(desc, 'setLocalDescription');
    switch (desc.type) {
      case 'offer':
        if (this.signalingState !== 'stable' && this.signalingState !== 'have-local-offer') throw invalidState('setLocalDescription(offer)', this.signalingState);
        this.setSignaling('have-local-offer');
        break;
      case 'answer':
      case 'pranswer':
        if (this.signalingState !== 'have-remote-offer' && this.signalingState !== 'have-local-pranswer') {
          throw invalidState(`setLocalDescription(${desc.type})`, this.signalingState);
        }
        this.setSignaling(desc.type === 'answer' ? 'stable' : 'have-local-pranswer');
        break;
      default:
        throw new TypeError(`setLocalDescription: unsupported type ${String(desc.type)}`);
    }
    this.localDescription = { type: desc.type, sdp: desc.sdp };
    this.localSdps.push(this.localDescription);
    if (this.iceGatheringState !== 'complete') {
      // gathering is instant: JsSIP reads 'complete' right after this resolves and sends the SDP
      this.iceGatheringState = 'complete';
      this.fireLater('icegatheringstatechange');
      this.fireLater('icecandidate', { candidate: null });
    }
    this.maybeConnect();
  }

  async setRemoteDescription(desc: SessionDescriptionLike): Promise<void> {
    this.assertOpen('setRemoteDescription');
    checkSdp(desc, 'setRemoteDescription');
    switch (desc.type) {
      case 'offer':
        if (this.signalingState !== 'stable' && this.signalingState !== 'have-remote-offer') throw invalidState('setRemoteDescription(offer)', this.signalingState);
        this.setSignaling('have-remote-offer');
        break;
      case 'answer':
      case 'pranswer':
        if (this.signalingState !== 'have-local-offer' && this.signalingState !== 'have-remote-pranswer') {
          throw invalidState(`setRemoteDescription(${desc.type})`, this.signalingState);
        }
        this.setSignaling(desc.type === 'answer' ? 'stable' : 'have-remote-pranswer');
        break;
      default:
        throw new TypeError(`setRemoteDescription: unsupported type ${String(desc.type)}`);
    }
    this.remoteDescription = { type: desc.type, sdp: desc.sdp };
    this.remoteSdps.push(this.remoteDescription);
    this.maybeConnect();
  }

  addTrack(track: unknown, ..._streams: unknown[]): unknown {
    this.assertOpen('addTrack');
    const sender = {
      track,
      dtmf: null,
      replaceTrack: async (t: unknown): Promise<void> => {
        sender.track = t;
      },
      getParameters: (): object => ({ encodings: [] }),
    };
    this.senders.push(sender);
    return sender;
  }

  getSenders(): readonly unknown[] {
    return [...this.senders];
  }

  getReceivers(): readonly unknown[] {
    return [];
  }

  getTransceivers(): readonly unknown[] {
    return [];
  }

  getLocalStreams(): unknown[] {
    return [];
  }

  getRemoteStreams(): unknown[] {
    return [];
  }

  async getStats(): Promise<Map<string, unknown>> {
    return new Map();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.signalingState = 'closed';
    this.iceConnectionState = 'closed';
    this.connectionState = 'closed';
  }

  /** The generated offer (also what createOffer returns unless `offerSdp` was given). */
  buildOffer(): string {
    const defs = this.codecs.map((c) => CODECS[c]);
    const a = this.address;
    const p = this.port;
    const lines = [
      'v=0',
      `o=- ${this.sessionId} ${this.sessionVersion++} IN IP4 ${a}`,
      's=-',
      't=0 0',
      'a=group:BUNDLE 0',
      `a=msid-semantic: WMS ${this.streamId}`,
      `m=audio ${p} UDP/TLS/RTP/SAVPF ${defs.map((d) => d.pt).join(' ')}`,
      `c=IN IP4 ${a}`,
      `a=rtcp:${p} IN IP4 ${a}`,
      `a=candidate:1467250027 1 udp 2122260223 ${a} ${p} typ host generation 0`,
      `a=ice-ufrag:${this.iceUfrag}`,
      `a=ice-pwd:${this.icePwd}`,
      `a=fingerprint:sha-256 ${this.fingerprint}`,
      'a=setup:actpass',
      'a=mid:0',
      'a=sendrecv',
      `a=msid:${this.streamId} ${this.trackId}`,
      'a=rtcp-mux',
      ...defs.flatMap(codecLines),
      `a=ssrc:${this.ssrc} cname:${this.cname}`,
      `a=ssrc:${this.ssrc} msid:${this.streamId} ${this.trackId}`,
      'a=end-of-candidates',
    ];
    return lines.join('\r\n') + '\r\n';
  }

  /** The generated answer to `offer`: same m-lines and mids, audio accepted if a codec matches. */
  buildAnswer(offer: string): string {
    const parsed = sdpTransform.parse(offer);
    const a = this.address;
    const p = this.port;
    const wanted = this.codecs.map((c) => CODECS[c]);
    const acceptedMids: string[] = [];
    const media: string[] = [];
    parsed.media.forEach((m, i) => {
      const mid = m.mid !== undefined ? String(m.mid) : String(i);
      const codecs: { pt: number; def: CodecDef; rtpmap: string }[] = [];
      if (m.type === 'audio' && m.port !== 0) {
        const order = String(m.payloads ?? '')
          .split(/\s+/)
          .filter(Boolean)
          .map(Number);
        for (const pt of order) {
          const r = m.rtp.find((x) => x.payload === pt);
          const name = r?.codec ?? (pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : undefined);
          const rate = r?.rate ?? 8000;
          const def = wanted.find((d) => name !== undefined && d.name.toLowerCase() === name.toLowerCase() && d.rate === rate);
          if (def) codecs.push({ pt, def, rtpmap: r ? `${r.codec}/${r.rate ?? rate}${r.encoding ? `/${r.encoding}` : ''}` : `${def.name}/${def.rate}` });
        }
      }
      if (!codecs.some((c) => c.def.name !== 'telephone-event')) {
        // rejected: port 0, same protocol and formats
        media.push(`m=${m.type} 0 ${m.protocol} ${m.payloads ?? '0'}`, `c=IN IP4 ${a}`);
        if (m.mid !== undefined) media.push(`a=mid:${mid}`);
        media.push('a=inactive');
        return;
      }
      acceptedMids.push(mid);
      const fingerprint = m.fingerprint ?? parsed.fingerprint;
      const ice = (m.iceUfrag ?? parsed.iceUfrag) !== undefined;
      const offeredSetup = m.setup ?? parsed.setup;
      const dir = m.direction ?? parsed.direction ?? 'sendrecv';
      const answerDir = dir === 'sendonly' ? 'recvonly' : dir === 'recvonly' ? 'sendonly' : dir;
      media.push(`m=audio ${p} ${m.protocol} ${codecs.map((c) => c.pt).join(' ')}`, `c=IN IP4 ${a}`);
      if (ice) {
        media.push(
          `a=candidate:1467250027 1 udp 2122260223 ${a} ${p} typ host generation 0`,
          `a=ice-ufrag:${this.iceUfrag}`,
          `a=ice-pwd:${this.icePwd}`,
        );
      }
      if (fingerprint) {
        media.push(`a=fingerprint:sha-256 ${this.fingerprint}`, `a=setup:${offeredSetup === 'active' ? 'passive' : 'active'}`);
      }
      if (m.mid !== undefined) media.push(`a=mid:${mid}`);
      media.push(`a=${answerDir}`, `a=msid:${this.streamId} ${this.trackId}`);
      if (m.rtcpMux) media.push('a=rtcp-mux');
      for (const c of codecs) {
        media.push(`a=rtpmap:${c.pt} ${c.rtpmap}`);
        for (const fb of c.def.rtcpFb ?? []) media.push(`a=rtcp-fb:${c.pt} ${fb}`);
        const fmtp = m.fmtp.find((f) => f.payload === c.pt)?.config ?? c.def.fmtp;
        if (fmtp) media.push(`a=fmtp:${c.pt} ${fmtp}`);
      }
      media.push(`a=ssrc:${this.ssrc} cname:${this.cname}`);
      if (ice) media.push('a=end-of-candidates');
    });
    const bundled = (parsed.groups ?? []).some((g) => g.type === 'BUNDLE');
    const lines = [
      'v=0',
      `o=- ${this.sessionId} ${this.sessionVersion++} IN IP4 ${a}`,
      's=-',
      't=0 0',
      ...(bundled && acceptedMids.length > 0 ? [`a=group:BUNDLE ${acceptedMids.join(' ')}`] : []),
      `a=msid-semantic: WMS ${this.streamId}`,
      ...media,
    ];
    return lines.join('\r\n') + '\r\n';
  }

  private assertOpen(what: string): void {
    if (this.closed) throw invalidState(what, 'closed');
  }

  private setSignaling(s: FixedSdpPeerConnection['signalingState']): void {
    if (this.signalingState === s) return;
    this.signalingState = s;
    this.fireLater('signalingstatechange');
  }

  /** both descriptions set: pretend ICE and DTLS came up */
  private maybeConnect(): void {
    if (this.signalingState !== 'stable' || !this.localDescription || !this.remoteDescription) return;
    if (this.iceConnectionState !== 'new') return;
    this.iceConnectionState = 'checking';
    this.connectionState = 'connecting';
    this.fireLater('iceconnectionstatechange');
    this.fireLater('connectionstatechange');
    queueMicrotask(() => {
      if (this.closed) return;
      this.iceConnectionState = 'connected';
      this.connectionState = 'connected';
      this.fireLater('iceconnectionstatechange');
      this.fireLater('connectionstatechange');
    });
  }

  private fireLater(type: string, props: Record<string, unknown> = {}): void {
    queueMicrotask(() => {
      if (this.closed) return;
      const ev = new Event(type);
      for (const [k, v] of Object.entries(props)) Object.defineProperty(ev, k, { value: v, enumerable: true });
      const handler = (this as unknown as Record<string, unknown>)[`on${type}`];
      if (typeof handler === 'function') (handler as (e: Event) => void).call(this, ev);
      this.dispatchEvent(ev);
    });
  }
}

function codecLines(d: CodecDef): string[] {
  const out = [`a=rtpmap:${d.pt} ${d.name}/${d.rate}${d.channels ? `/${d.channels}` : ''}`];
  for (const fb of d.rtcpFb ?? []) out.push(`a=rtcp-fb:${d.pt} ${fb}`);
  if (d.fmtp) out.push(`a=fmtp:${d.pt} ${d.fmtp}`);
  return out;
}

function checkSdp(desc: SessionDescriptionLike, what: string): void {
  if (!desc || typeof desc.sdp !== 'string' || !/^v=0\r?\n/.test(desc.sdp)) {
    throw new TypeError(`${what}: not an SDP: ${JSON.stringify(desc?.sdp)?.slice(0, 80)}`);
  }
  const parsed = sdpTransform.parse(desc.sdp);
  if (!parsed.media || parsed.media.length === 0) throw new TypeError(`${what}: SDP without m= line`);
}

/** A factory for FixedSdpPeerConnections with these options. */
export function fixedSdpPeerConnectionFactory(opts: FixedSdpOptions = {}): PeerConnectionFactory {
  return (config) => new FixedSdpPeerConnection(config, opts);
}

export const defaultPeerConnectionFactory: PeerConnectionFactory = (config) => new FixedSdpPeerConnection(config);

// ---------------------------------------------------------------------------------------------
// fake local media

export interface MediaStreamTrackLike {
  readonly kind: 'audio' | 'video';
  readonly id: string;
  readonly label: string;
  enabled: boolean;
  readyState: 'live' | 'ended';
  stop(): void;
}

export interface MediaStreamLike {
  readonly id: string;
  readonly active: boolean;
  getTracks(): MediaStreamTrackLike[];
  getAudioTracks(): MediaStreamTrackLike[];
  getVideoTracks(): MediaStreamTrackLike[];
  addTrack(t: MediaStreamTrackLike): void;
  removeTrack(t: MediaStreamTrackLike): void;
}

export function fakeAudioTrack(): MediaStreamTrackLike {
  return {
    kind: 'audio',
    id: randomUUID(),
    label: 'fake audio',
    enabled: true,
    readyState: 'live',
    stop() {
      this.readyState = 'ended';
    },
  };
}

/** A MediaStream stand-in; by default one fake audio track (so mute/unmute have a sender to toggle). */
export function fakeMediaStream(tracks: MediaStreamTrackLike[] = [fakeAudioTrack()]): MediaStreamLike {
  const list = [...tracks];
  return {
    id: randomUUID(),
    get active() {
      return list.some((t) => t.readyState === 'live');
    },
    getTracks: () => [...list],
    getAudioTracks: () => list.filter((t) => t.kind === 'audio'),
    getVideoTracks: () => list.filter((t) => t.kind === 'video'),
    addTrack: (t) => void (list.includes(t) || list.push(t)),
    removeTrack: (t) => {
      const i = list.indexOf(t);
      if (i >= 0) list.splice(i, 1);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// globals JsSIP expects

/** pcConfig key carrying the factory from `call()`/`answer()` to the global RTCPeerConnection. */
export const PC_FACTORY = Symbol.for('jssip-ua.peerConnectionFactory');

const SHIM_MARK = Symbol.for('jssip-ua.shim');

class RTCSessionDescriptionShim {
  type: SdpType;
  sdp: string;
  constructor(init: { type: SdpType; sdp?: string }) {
    this.type = init.type;
    this.sdp = init.sdp ?? '';
  }
  toJSON(): { type: SdpType; sdp: string } {
    return { type: this.type, sdp: this.sdp };
  }
}

/** `new RTCPeerConnection(pcConfig, rtcConstraints)` -> the factory in pcConfig (or the default). */
class RTCPeerConnectionDispatcher {
  static readonly [SHIM_MARK] = true;
  constructor(config?: Record<PropertyKey, unknown>, rtcConstraints?: unknown) {
    const factory = (config?.[PC_FACTORY] as PeerConnectionFactory | undefined) ?? defaultPeerConnectionFactory;
    const clean: PeerConnectionConfig = { ...(config ?? {}) };
    delete (clean as Record<PropertyKey, unknown>)[PC_FACTORY];
    return factory(clean, rtcConstraints) as unknown as RTCPeerConnectionDispatcher;
  }
}

/**
 * Installs what JsSIP needs from a browser (idempotent): `WebSocket` (from `ws`, only when the
 * runtime has none), `window.RTCPeerConnection` / `RTCPeerConnection` (the factory dispatcher)
 * and `RTCSessionDescription`. `window` is a plain object, not `globalThis`, so libraries that
 * sniff `window.document` still see Node.
 */
export function installNodeShims(): void {
  const g = globalThis as Record<string, unknown>;
  if (typeof g.WebSocket === 'undefined') g.WebSocket = WsWebSocket;
  const existing = g.RTCPeerConnection as Record<PropertyKey, unknown> | undefined;
  if (!existing || !existing[SHIM_MARK]) g.RTCPeerConnection = RTCPeerConnectionDispatcher;
  if (typeof g.RTCSessionDescription === 'undefined') g.RTCSessionDescription = RTCSessionDescriptionShim;
  if (typeof g.window === 'undefined') g.window = {};
  (g.window as Record<string, unknown>).RTCPeerConnection = g.RTCPeerConnection;
}

// ---------------------------------------------------------------------------------------------
// SIP trace

export interface SipTraceEntry {
  dir: 'in' | 'out';
  /** ms since the epoch */
  at: number;
  raw: string;
  /** response status, or null for a request */
  status: number | null;
  /** request method, or null for a response */
  method: string | null;
  callId: string | null;
  cseq: { seq: number; method: string } | null;
  /** first value of a header (case-insensitive, compact forms understood), or null */
  header(name: string): string | null;
  /** the body (after the blank line) */
  body: string;
}

const COMPACT: Record<string, string> = { i: 'call-id', f: 'from', t: 'to', v: 'via', m: 'contact', l: 'content-length', c: 'content-type', k: 'supported', e: 'content-encoding', s: 'subject' };

export function parseSipTrace(dir: 'in' | 'out', raw: string): SipTraceEntry {
  const sep = raw.indexOf('\r\n\r\n');
  const head = sep >= 0 ? raw.slice(0, sep) : raw;
  const body = sep >= 0 ? raw.slice(sep + 4) : '';
  const [start = '', ...hlines] = head.split(/\r\n(?![ \t])/);
  const headers = new Map<string, string[]>();
  for (const line of hlines) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    let name = line.slice(0, i).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    const list = headers.get(name) ?? [];
    list.push(line.slice(i + 1).trim());
    headers.set(name, list);
  }
  const header = (n: string): string | null => {
    const k = n.toLowerCase();
    return headers.get(COMPACT[k] ?? k)?.[0] ?? null;
  };
  const sm = /^SIP\/2\.0\s+(\d{3})/.exec(start);
  const rm = /^([A-Za-z]+)\s/.exec(start);
  const cs = /^(\d+)\s+(\S+)/.exec(header('cseq') ?? '');
  return {
    dir,
    at: Date.now(),
    raw,
    status: sm ? Number(sm[1]) : null,
    method: sm ? null : (rm?.[1] ?? null),
    callId: header('call-id'),
    cseq: cs ? { seq: Number(cs[1]), method: cs[2]! } : null,
    header,
    body,
  };
}

// ---------------------------------------------------------------------------------------------
// calls

export interface CallProgress {
  originator: 'local' | 'remote' | 'system';
  /** the provisional response's status (null for an incoming call's local 180) */
  status: number | null;
  reason: string | null;
  sdp: string | null;
}

export interface CallEnd {
  /** 'failed': never established (rejected, canceled, error); 'ended': established, then BYE */
  kind: 'ended' | 'failed';
  originator: 'local' | 'remote' | 'system';
  /** JsSIP's cause: 'Terminated' (BYE), 'Busy', 'Rejected', 'Canceled', 'Not Found', 'Request Timeout'... */
  cause: string;
  /** the final response's status code, the one this UA sent on reject(), or null */
  status: number | null;
  reason: string | null;
  /** the method when a request ended it (BYE, CANCEL) */
  method: string | null;
}

export interface HangupResult extends CallEnd {
  /** status of the final response to our BYE (null when no BYE was sent) */
  byeStatus: number | null;
}

interface JsSipMessageLike {
  status_code?: number;
  reason_phrase?: string;
  method?: string;
  body?: string;
  call_id?: string;
  data?: string;
}

export interface AnswerOptions {
  extraHeaders?: string[];
  timeoutMs?: number;
  mediaStream?: MediaStreamLike;
  peerConnectionFactory?: PeerConnectionFactory;
}

export interface CallOptions {
  extraHeaders?: string[];
  mediaStream?: MediaStreamLike;
  peerConnectionFactory?: PeerConnectionFactory;
  anonymous?: boolean;
}

/** One call (JsSIP RTCSession), either direction. */
export class JsSipCall {
  /** every SDP seen by JsSIP on this call ('sdp' events), in order */
  readonly sdps: { originator: string; type: string; sdp: string }[] = [];
  /** peer connection errors JsSIP reported ('peerconnection:*failed'), and handler errors */
  readonly errors: unknown[] = [];
  private readonly progressL = new Latch<CallProgress>();
  private readonly acceptedL = new Latch<void>();
  private readonly confirmedL = new Latch<void>();
  private readonly endL = new Latch<CallEnd>();
  private localStatus: { status: number; reason: string | null } | null = null;

  constructor(
    readonly ua: JsSipUa,
    readonly session: RTCSession,
    readonly direction: 'incoming' | 'outgoing',
    /** the initial INVITE as received (incoming calls only), raw text */
    readonly request: string | null,
  ) {
    const s = session as unknown as NodeJS.EventEmitter;
    s.on('progress', (e: { originator: CallProgress['originator']; response: JsSipMessageLike | null }) =>
      this.progressL.resolve({
        originator: e.originator,
        status: e.response?.status_code ?? null,
        reason: e.response?.reason_phrase ?? null,
        sdp: e.response?.body || null,
      }),
    );
    s.on('accepted', () => this.acceptedL.resolve());
    s.on('confirmed', () => this.confirmedL.resolve());
    s.on('sdp', (e: { originator: string; type: string; sdp: string }) => this.sdps.push({ originator: e.originator, type: e.type, sdp: e.sdp }));
    s.on('ended', (e: { originator: CallEnd['originator']; message: JsSipMessageLike | null; cause: string }) => this.finish('ended', e));
    s.on('failed', (e: { originator: CallEnd['originator']; message: JsSipMessageLike | null; cause: string }) => this.finish('failed', e));
    for (const ev of ['getusermediafailed', 'peerconnection:createofferfailed', 'peerconnection:createanswerfailed', 'peerconnection:setlocaldescriptionfailed', 'peerconnection:setremotedescriptionfailed']) {
      s.on(ev, (err: unknown) => this.errors.push(err));
    }
  }

  get id(): string {
    return this.session.id;
  }

  /** the Call-ID of the dialog */
  get callId(): string | null {
    return (this.session as unknown as { _request?: { call_id?: string } })._request?.call_id ?? null;
  }

  /** JsSIP's peer connection (outgoing: from call(); incoming: from answer()) */
  get peerConnection(): RTCPeerConnectionLike | null {
    return (this.session.connection as unknown as RTCPeerConnectionLike | null) ?? null;
  }

  /** the SDP offer of an incoming INVITE (null when outgoing or offerless) */
  get remoteOffer(): string | null {
    if (this.direction !== 'incoming' || this.request === null) return null;
    const sep = this.request.indexOf('\r\n\r\n');
    const body = sep >= 0 ? this.request.slice(sep + 4) : '';
    return body.length > 0 ? body : null;
  }

  /** the last SDP received from the far end, or null */
  get remoteSdp(): string | null {
    return [...this.sdps].reverse().find((x) => x.originator === 'remote')?.sdp ?? null;
  }

  /** the last SDP this end sent, or null */
  get localSdp(): string | null {
    return [...this.sdps].reverse().find((x) => x.originator === 'local')?.sdp ?? null;
  }

  get isEnded(): boolean {
    return this.endL.settled;
  }

  /** the outcome once ended/failed, else null */
  get end(): CallEnd | null {
    return this.endL.value ?? null;
  }

  /** first provisional response (outgoing) / 180 sent (incoming); rejects if the call fails first */
  get progress(): Promise<CallProgress> {
    return this.waitProgress();
  }
  /** 200 received (outgoing) / 200 sent (incoming); rejects with CallFailedError if the call fails first */
  get accepted(): Promise<void> {
    return this.waitAccepted();
  }
  /** 200 + ACK; rejects with CallFailedError if the call fails first */
  get confirmed(): Promise<void> {
    return this.waitConfirmed();
  }
  /** resolves (never rejects, except on timeout) with how the call ended or failed */
  get ended(): Promise<CallEnd> {
    return this.waitEnded();
  }

  waitProgress(timeoutMs = this.ua.timeoutMs): Promise<CallProgress> {
    return within(this.progressL.promise, timeoutMs, `${this.label} progress (1xx)`);
  }
  waitAccepted(timeoutMs = this.ua.timeoutMs): Promise<void> {
    return within(this.acceptedL.promise, timeoutMs, `${this.label} accepted (200)`);
  }
  waitConfirmed(timeoutMs = this.ua.timeoutMs): Promise<void> {
    return within(this.confirmedL.promise, timeoutMs, `${this.label} confirmed (200 + ACK)`);
  }
  waitEnded(timeoutMs = this.ua.timeoutMs): Promise<CallEnd> {
    return within(this.endL.promise, timeoutMs, `${this.label} end`);
  }

  /** Answers an incoming call with the UA's (or the given) media; resolves once the 200 is sent. */
  async answer(opts: AnswerOptions = {}): Promise<void> {
    if (this.direction !== 'incoming') throw new Error('answer(): not an incoming call');
    this.session.answer({
      extraHeaders: opts.extraHeaders ?? [],
      mediaConstraints: { audio: true, video: false },
      mediaStream: (opts.mediaStream ?? this.ua.newMediaStream()) as never,
      pcConfig: { iceServers: [], [PC_FACTORY]: opts.peerConnectionFactory ?? this.ua.peerConnectionFactory } as never,
    });
    await this.waitAccepted(opts.timeoutMs);
  }

  /** Rejects an incoming call that is not answered yet (486 by default); resolves with the outcome. */
  async reject(status = 486, reason?: string, timeoutMs = this.ua.timeoutMs): Promise<CallEnd> {
    if (this.direction !== 'incoming') throw new Error('reject(): not an incoming call');
    this.localStatus = { status, reason: reason ?? null };
    this.session.terminate({ status_code: status, ...(reason ? { reason_phrase: reason } : {}) });
    return this.waitEnded(timeoutMs);
  }

  /**
   * Ends the call whatever its state: BYE when established (and waits for the BYE's final
   * response unless `waitByeResponse` is false), CANCEL when outgoing and ringing, a 480 (or
   * `status`) when incoming and unanswered.
   */
  async hangup(opts: { status?: number; reason?: string; timeoutMs?: number; waitByeResponse?: boolean } = {}): Promise<HangupResult> {
    const timeoutMs = opts.timeoutMs ?? this.ua.timeoutMs;
    if (this.endL.settled) return { ...this.endL.value!, byeStatus: null };
    const established = this.session.isEstablished();
    const since = this.ua.trace.length;
    const callId = this.callId;
    if (this.direction === 'incoming' && !established && !this.acceptedL.settled) {
      this.localStatus = { status: opts.status ?? 480, reason: opts.reason ?? null };
    }
    this.session.terminate({
      ...(opts.status !== undefined ? { status_code: opts.status } : {}),
      ...(opts.reason !== undefined ? { reason_phrase: opts.reason } : {}),
    });
    const end = await this.waitEnded(timeoutMs);
    let byeStatus: number | null = null;
    if (established && opts.waitByeResponse !== false) {
      const res = await this.ua.waitForMessage(
        (m) => m.dir === 'in' && m.status !== null && m.status >= 200 && m.cseq?.method === 'BYE' && (callId === null || m.callId === callId),
        { since, timeoutMs, what: `${this.label} final response to BYE` },
      );
      byeStatus = res.status;
    }
    return { ...end, byeStatus };
  }

  private get label(): string {
    return `${this.ua.user}: ${this.direction} call ${this.callId ?? this.session.id}`;
  }

  private finish(kind: CallEnd['kind'], e: { originator: CallEnd['originator']; message: JsSipMessageLike | null; cause: string }): void {
    const m = e.message;
    const fromResponse = m && typeof m.status_code === 'number';
    const local = e.originator === 'local' && !fromResponse ? this.localStatus : null;
    const end: CallEnd = {
      kind,
      originator: e.originator,
      cause: String(e.cause),
      status: fromResponse ? m.status_code! : (local?.status ?? null),
      reason: fromResponse ? (m.reason_phrase ?? null) : (local?.reason ?? null),
      method: m && typeof m.method === 'string' && !fromResponse ? m.method : null,
    };
    this.endL.resolve(end);
    const err = new CallFailedError(
      `${this.label} ${kind}: ${end.cause}${end.status !== null ? ` (${end.status}${end.reason ? ` ${end.reason}` : ''})` : ''}, originator ${end.originator}`,
      end.status,
      end.reason,
      end.cause,
      end.originator,
    );
    this.progressL.reject(err);
    this.acceptedL.reject(err);
    this.confirmedL.reject(err);
  }
}

// ---------------------------------------------------------------------------------------------
// the user agent

export interface JsSipUaOptions {
  /** e.g. ws://127.0.0.1:8080/sip */
  wsUrl: string;
  /** the user part of the AOR (sip:user@domain) */
  user: string;
  password?: string;
  /** the AOR's host, and the registrar's (REGISTER sip:domain) */
  domain: string;
  /** digest username, if not `user` */
  authorizationUser?: string;
  displayName?: string;
  /** register once connected (start() resolves after 'registered', rejects on failure) */
  register?: boolean;
  registerExpires?: number;
  /** default for every wait (ms, default 10 s) */
  timeoutMs?: number;
  /** builds the peer connection of each call (default: FixedSdpPeerConnection) */
  peerConnectionFactory?: PeerConnectionFactory;
  /** the local stream of each call (default: a fake one with one audio track) */
  mediaStream?: () => MediaStreamLike;
  /** RFC 4028 session timers (JsSIP's default: on) */
  sessionTimers?: boolean;
  userAgent?: string;
  /** seconds before JsSIP answers 408 to an incoming call nobody answers (JsSIP: 60) */
  noAnswerTimeout?: number;
  /** anything else for JsSIP's UA configuration */
  jssip?: Record<string, unknown>;
}

export interface RegisterResult {
  status: number;
  /** the Contact header(s) of the 200, as received */
  contact: string | null;
  expires: number | null;
}

type Waiter = { pred: (m: SipTraceEntry) => boolean; done: (m: SipTraceEntry) => void };

/** A JsSIP UA over one WebSocket. */
export class JsSipUa {
  readonly ua: UA;
  readonly user: string;
  readonly uri: string;
  readonly timeoutMs: number;
  readonly peerConnectionFactory: PeerConnectionFactory;
  /** every SIP message sent and received on the WebSocket, in order */
  readonly trace: SipTraceEntry[] = [];
  /** all calls, both directions */
  readonly calls: JsSipCall[] = [];
  /** errors thrown by onIncoming handlers */
  readonly errors: unknown[] = [];
  private readonly socket: InstanceType<typeof JsSIP.WebSocketInterface>;
  private readonly mediaStreamFactory: () => MediaStreamLike;
  private incomingHandler: ((call: JsSipCall) => void | Promise<void>) | null = null;
  private readonly incomingQueue: JsSipCall[] = [];
  private readonly incomingWaiters: ((c: JsSipCall) => void)[] = [];
  private readonly traceWaiters = new Set<Waiter>();
  private stopping: Promise<void> | null = null;

  /** Creates the UA, connects its WebSocket and (with `register: true`) registers. */
  static async start(opts: JsSipUaOptions): Promise<JsSipUa> {
    const ua = new JsSipUa(opts);
    try {
      await ua.connect();
      if (opts.register) await ua.register();
      return ua;
    } catch (e) {
      await ua.stop({ unregister: false }).catch(() => undefined);
      throw e;
    }
  }

  constructor(opts: JsSipUaOptions) {
    installNodeShims();
    this.user = opts.user;
    this.uri = `sip:${opts.user}@${opts.domain}`;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.peerConnectionFactory = opts.peerConnectionFactory ?? defaultPeerConnectionFactory;
    this.mediaStreamFactory = opts.mediaStream ?? (() => fakeMediaStream());
    this.socket = new JsSIP.WebSocketInterface(opts.wsUrl);
    this.tapSocket();
    this.ua = new JsSIP.UA({
      sockets: [this.socket],
      uri: this.uri,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ...(opts.authorizationUser !== undefined ? { authorization_user: opts.authorizationUser } : {}),
      ...(opts.displayName !== undefined ? { display_name: opts.displayName } : {}),
      ...(opts.registerExpires !== undefined ? { register_expires: opts.registerExpires } : {}),
      ...(opts.sessionTimers !== undefined ? { session_timers: opts.sessionTimers } : {}),
      ...(opts.noAnswerTimeout !== undefined ? { no_answer_timeout: opts.noAnswerTimeout } : {}),
      user_agent: opts.userAgent ?? `JsSIP ${JsSIP.version} (node test UA)`,
      register: false, // register() drives it, so its outcome can be awaited
      ...(opts.jssip ?? {}),
    });
    const ee = this.ua as unknown as NodeJS.EventEmitter;
    ee.on('newRTCSession', (e: { originator: string; session: RTCSession; request: JsSipMessageLike }) => {
      if (e.originator !== 'remote') return;
      const call = new JsSipCall(this, e.session, 'incoming', e.request?.data ?? null);
      this.calls.push(call);
      this.dispatchIncoming(call);
    });
    // JsSIP's INVITE server transaction leaves Timer H (32 s) running after the ACK to a
    // non-2xx (Transactions.js: the ACK arms Timer I and destroys the transaction, H stays):
    // harmless in a browser, but it would keep a test process alive 32 s after a rejected call.
    ee.on('transactionDestroyed', (e: { transaction: Record<string, unknown> }) => {
      for (const k of ['F', 'K', 'B', 'D', 'M', 'J', 'L', 'H', 'I']) {
        const t = e.transaction[k];
        if (t) clearTimeout(t as NodeJS.Timeout);
      }
    });
  }

  /** the Contact URI JsSIP registers (sip:random@random.invalid;transport=ws) */
  get contactUri(): string {
    return String((this.ua as unknown as { contact: { uri: unknown } }).contact.uri);
  }

  isConnected(): boolean {
    return this.ua.isConnected();
  }

  isRegistered(): boolean {
    return this.ua.isRegistered();
  }

  /** a new local stream, as given to each call */
  newMediaStream(): MediaStreamLike {
    return this.mediaStreamFactory();
  }

  /** Starts JsSIP and waits for its WebSocket to open. */
  async connect(timeoutMs = this.timeoutMs): Promise<void> {
    if (this.ua.isConnected()) return;
    const ee = this.ua as unknown as NodeJS.EventEmitter;
    const p = new Promise<void>((resolve, reject) => {
      const onConnected = (): void => {
        ee.off('disconnected', onDisconnected);
        resolve();
      };
      const onDisconnected = (e: { code?: number; reason?: string; error?: boolean }): void => {
        ee.off('connected', onConnected);
        reject(new Error(`${this.user}: WebSocket ${this.socket.url} closed before opening (code ${e.code ?? '?'}${e.reason ? ` ${e.reason}` : ''})`));
      };
      ee.once('connected', onConnected);
      ee.once('disconnected', onDisconnected);
    });
    this.ua.start();
    await within(p, timeoutMs, `${this.user}: WebSocket ${this.socket.url} open`);
  }

  /**
   * Sends REGISTER (answering the digest challenge) and resolves with the 200's status; rejects
   * with a RegistrationError carrying the final status (401/403...) and JsSIP's cause.
   */
  async register(timeoutMs = this.timeoutMs): Promise<RegisterResult> {
    const ee = this.ua as unknown as NodeJS.EventEmitter;
    const wasRegistered = this.ua.isRegistered();
    let cleanup = (): void => undefined;
    const p = new Promise<RegisterResult>((resolve, reject) => {
      const ok = (res: JsSipMessageLike | null): void => {
        cleanup();
        const entry = res?.data ? parseSipTrace('in', res.data) : null;
        const contact = entry?.header('contact') ?? null;
        const exp = contact ? /;\s*expires=(\d+)/i.exec(contact) : null;
        resolve({ status: res?.status_code ?? 200, contact, expires: exp ? Number(exp[1]) : entry?.header('expires') ? Number(entry.header('expires')) : null });
      };
      const onRegistered = (e: { response: JsSipMessageLike }): void => ok(e.response);
      const onFailed = (e: { response: JsSipMessageLike | null; cause: string }): void => {
        cleanup();
        const status = e.response?.status_code ?? null;
        const reason = e.response?.reason_phrase ?? null;
        reject(new RegistrationError(`${this.user}: registration failed: ${e.cause}${status !== null ? ` (${status} ${reason ?? ''})` : ''}`, status, reason, String(e.cause)));
      };
      // JsSIP emits 'registered' only on the first success: a refresh is seen in the trace
      const waiter: Waiter = {
        pred: (m) => wasRegistered && m.dir === 'in' && m.cseq?.method === 'REGISTER' && m.status !== null && m.status >= 200 && m.status < 300,
        done: (m) => ok({ status_code: m.status!, data: m.raw }),
      };
      cleanup = () => {
        ee.off('registered', onRegistered);
        ee.off('registrationFailed', onFailed);
        this.traceWaiters.delete(waiter);
      };
      ee.on('registered', onRegistered);
      ee.on('registrationFailed', onFailed);
      this.traceWaiters.add(waiter);
    });
    this.ua.register();
    try {
      return await within(p, timeoutMs, `${this.user}: REGISTER`);
    } finally {
      cleanup();
    }
  }

  /** Sends REGISTER with Expires 0 (all: Contact *); resolves with the response's status (null if none). */
  async unregister(opts: { all?: boolean; timeoutMs?: number } = {}): Promise<{ status: number | null; cause: string | null }> {
    if (!this.ua.isRegistered()) return { status: null, cause: null };
    const ee = this.ua as unknown as NodeJS.EventEmitter;
    let off = (): void => undefined;
    const p = new Promise<{ status: number | null; cause: string | null }>((resolve) => {
      const on = (e: { response: JsSipMessageLike | null; cause?: string | null }): void => resolve({ status: e.response?.status_code ?? null, cause: e.cause ?? null });
      ee.once('unregistered', on);
      off = () => ee.off('unregistered', on);
    });
    this.ua.unregister({ all: opts.all ?? false });
    try {
      return await within(p, opts.timeoutMs ?? this.timeoutMs, `${this.user}: un-REGISTER`);
    } finally {
      off();
    }
  }

  /** Places a call; follow it with the returned JsSipCall's promises. */
  call(target: string, opts: CallOptions = {}): JsSipCall {
    const session = this.ua.call(target, {
      extraHeaders: opts.extraHeaders ?? [],
      mediaConstraints: { audio: true, video: false },
      mediaStream: (opts.mediaStream ?? this.newMediaStream()) as never,
      pcConfig: { iceServers: [], [PC_FACTORY]: opts.peerConnectionFactory ?? this.peerConnectionFactory } as never,
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false } as never,
      ...(opts.anonymous ? { anonymous: true } : {}),
    });
    const call = new JsSipCall(this, session, 'outgoing', null);
    this.calls.push(call);
    return call;
  }

  /**
   * Handles incoming calls (replacing any previous handler); returns a function removing it.
   * Without a handler, calls queue for nextIncoming(). A handler that throws gets its call
   * ended (500 if unanswered) and the error recorded in `errors`.
   */
  onIncoming(handler: (call: JsSipCall) => void | Promise<void>): () => void {
    this.incomingHandler = handler;
    return () => {
      if (this.incomingHandler === handler) this.incomingHandler = null;
    };
  }

  /** The next incoming call not taken by an onIncoming handler. */
  nextIncoming(timeoutMs = this.timeoutMs): Promise<JsSipCall> {
    const queued = this.incomingQueue.shift();
    if (queued) return Promise.resolve(queued);
    let waiter: ((c: JsSipCall) => void) | null = null;
    const p = new Promise<JsSipCall>((resolve) => {
      waiter = resolve;
      this.incomingWaiters.push(resolve);
    });
    return within(p, timeoutMs, `${this.user}: incoming call`).finally(() => {
      const i = this.incomingWaiters.indexOf(waiter!);
      if (i >= 0) this.incomingWaiters.splice(i, 1);
    });
  }

  /**
   * The first trace entry matching `pred`, among those from index `since` (default: only
   * messages still to come).
   */
  waitForMessage(pred: (m: SipTraceEntry) => boolean, opts: { since?: number; timeoutMs?: number; what?: string } = {}): Promise<SipTraceEntry> {
    const since = opts.since ?? this.trace.length;
    const past = this.trace.slice(since).find(pred);
    if (past) return Promise.resolve(past);
    let waiter: Waiter | null = null;
    const p = new Promise<SipTraceEntry>((resolve) => {
      waiter = { pred, done: resolve };
      this.traceWaiters.add(waiter);
    });
    return within(p, opts.timeoutMs ?? this.timeoutMs, `${this.user}: ${opts.what ?? 'SIP message'}`).finally(() => this.traceWaiters.delete(waiter!));
  }

  /**
   * Hangs up its calls, un-REGISTERs (unless `unregister: false`: then the WebSocket is just
   * closed, like a browser tab going away) and closes the WebSocket. Never rejects; bounded.
   */
  stop(opts: { unregister?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.stopping) return this.stopping;
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    this.stopping = (async () => {
      if (opts.unregister === false) {
        await this.closeSocket({ abrupt: false, timeoutMs }).catch(() => undefined);
        return;
      }
      await Promise.allSettled(this.calls.filter((c) => !c.isEnded).map((c) => c.hangup({ timeoutMs, waitByeResponse: false })));
      if (this.ua.isRegistered()) await this.unregister({ timeoutMs }).catch(() => undefined);
      await this.shutdown(timeoutMs);
    })();
    return this.stopping;
  }

  /**
   * Drops the WebSocket without un-REGISTER or BYE (`abrupt`: no close handshake, like a
   * crash; else a normal close frame), waits for JsSIP to see it, then stops the UA so it does
   * not reconnect. Resolves once the socket is closed.
   */
  dropConnection(opts: { abrupt?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = this.closeSocket({ abrupt: opts.abrupt ?? true, timeoutMs: opts.timeoutMs ?? this.timeoutMs });
    return this.stopping;
  }

  // -------------------------------------------------------------------------------------------

  private rawWs(): { readyState: number; close(code?: number): void; terminate?: () => void; addEventListener(t: string, l: () => void): void } | null {
    return (this.socket as unknown as { _ws: ReturnType<JsSipUa['rawWs']> })._ws ?? null;
  }

  private async closeSocket(opts: { abrupt: boolean; timeoutMs: number }): Promise<void> {
    const ws = this.rawWs();
    if (ws && ws.readyState <= 1) {
      const ee = this.ua as unknown as NodeJS.EventEmitter;
      const seen = new Promise<void>((resolve) => ee.once('disconnected', () => resolve()));
      if (opts.abrupt && typeof ws.terminate === 'function') ws.terminate();
      else ws.close(1000);
      await within(seen, opts.timeoutMs, `${this.user}: WebSocket close`).catch(() => undefined);
    }
    await this.shutdown(opts.timeoutMs);
  }

  /** ua.stop(), then close the socket at once rather than after JsSIP's 2 s grace; wait for the close. */
  private async shutdown(timeoutMs: number): Promise<void> {
    const ws = this.rawWs();
    const closed =
      ws && ws.readyState !== 3
        ? new Promise<void>((resolve) => ws.addEventListener('close', () => resolve()))
        : Promise.resolve();
    this.ua.stop();
    const internals = this.ua as unknown as { _closeTimer?: NodeJS.Timeout | null; _transport?: { disconnect(): void } };
    if (internals._closeTimer) {
      clearTimeout(internals._closeTimer);
      internals._closeTimer = null;
      internals._transport?.disconnect();
    }
    await within(closed, timeoutMs, `${this.user}: WebSocket closed`).catch(() => {
      ws?.terminate?.();
    });
  }

  private dispatchIncoming(call: JsSipCall): void {
    const handler = this.incomingHandler;
    if (handler) {
      void (async () => {
        try {
          await handler(call);
        } catch (e) {
          this.errors.push(e);
          call.errors.push(e);
          if (!call.isEnded) {
            try {
              if (call.session.isEstablished()) call.session.terminate();
              else call.session.terminate({ status_code: 500, reason_phrase: 'Test Handler Error' });
            } catch {
              /* already ending */
            }
          }
        }
      })();
      return;
    }
    const waiter = this.incomingWaiters.shift();
    if (waiter) waiter(call);
    else this.incomingQueue.push(call);
  }

  /** records every message on the socket in `trace` (JsSIP's Transport sets `ondata` before connect) */
  private tapSocket(): void {
    const sock = this.socket as unknown as { send(d: unknown): boolean; ondata: (d: unknown) => void };
    const send = sock.send.bind(sock);
    sock.send = (data: unknown): boolean => {
      this.record('out', data);
      return send(data);
    };
    let inner: (d: unknown) => void = () => undefined;
    Object.defineProperty(sock, 'ondata', {
      configurable: true,
      get: () => (d: unknown) => {
        this.record('in', d);
        inner(d);
      },
      set: (fn: (d: unknown) => void) => {
        inner = fn;
      },
    });
  }

  private record(dir: 'in' | 'out', data: unknown): void {
    const raw = typeof data === 'string' ? data : data instanceof ArrayBuffer ? Buffer.from(data).toString('utf8') : String(data);
    if (raw.trim() === '') return; // CRLF keep-alives
    const entry = parseSipTrace(dir, raw);
    this.trace.push(entry);
    if (process.env.JSSIP_UA_TRACE) process.stderr.write(`--- ${this.user} ${dir === 'in' ? '<<<' : '>>>'} ${new Date(entry.at).toISOString()}\n${raw}\n`);
    for (const w of [...this.traceWaiters]) {
      if (w.pred(entry)) {
        this.traceWaiters.delete(w);
        w.done(entry);
      }
    }
  }
}
