/**
 * A SIP desk phone in Node for integration tests: it registers over UDP with digest auth,
 * calls and answers like a simple hardware phone (RFC 3261 UA core, RFC 3264 offer/answer) and
 * sends and receives real RTP (RFC 3550): a tone coded with PCMU, PCMA or G.722, RFC 4733 DTMF.
 * Tests check the audio as audio: a tone sent on one side is detected on the other.
 *
 *   const gateway = `127.0.0.1:${gw.ports.udp}`;
 *   const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway, tone: 440 });
 *   const bob = await RtpPhone.start({ user: 'bob', password: 'pw-bob', gateway, tone: 880, autoAnswer: { ringMs: 100 } });
 *   await alice.register();
 *   await bob.register();
 *   const call = alice.call('bob');           // INVITE with an SDP offer
 *   await call.answered;                      // 200 received, ACK sent, RTP flowing
 *   const incoming = await bob.nextIncoming();
 *   await waitFor('440 Hz at bob', () => incoming.heardTone(440));
 *   await call.sendDtmf('123#');              // incoming.dtmfReceived becomes '123#'
 *   await call.hold();                        // re-INVITE a=sendonly (the tone keeps going)
 *   await call.resume();                      // re-INVITE a=sendrecv
 *   await call.hangup();                      // BYE (CANCEL before the answer)
 *   await incoming.ended;                     // { by: 'remote', reason: 'bye' }
 *   await alice.close();                      // timers stopped, sockets closed
 *
 * Every wait is bounded (`timeoutMs`, default 10 s) and fails with a TimeoutError naming what
 * it waited for; a SIP failure is a SipStatusError carrying the status. The promise getters
 * (`call.answered`, `call.ringing`, `call.ended`) each start a bounded wait when read.
 *
 * On the wire it behaves like a phone configured with the gateway as outbound proxy:
 * - every request goes to the gateway's address; requests inside a dialog carry the route set
 *   (Record-Route, reversed for the caller, RFC 3261 §12.1.2) as Route headers and the remote
 *   Contact as Request-URI (§12.2.1.1); responses go back where the request came from (rport);
 * - INVITE, BYE, REGISTER, CANCEL are retransmitted from T1 = 500 ms, doubling (non-INVITE
 *   capped at T2 = 4 s) until a response (§17.1); final responses to an INVITE are
 *   retransmitted until the ACK (§13.3.1.4, §17.2.1); a retransmitted request gets the same
 *   response again;
 * - media: one RTP socket per phone (even port; RTCP on the next port unless rtcp-mux), RTP
 *   sent from the socket it is received on (symmetric RTP), to the c= address and m= port of
 *   the remote SDP, one packet every 20 ms; a sender report every second.
 *
 * Layout: waits and errors; SDP (pure); SIP message building (pure); media (RTP in and out,
 * knows nothing of SIP); the phone (sockets, transactions) and its calls (dialogs, offer/answer).
 *
 * `RTP_PHONE_TRACE=1` (or the `trace` option) prints every SIP message sent and received.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import sdpTransform from 'sdp-transform';
import { digitPackets, DtmfReceiver, type DigitPacket } from '../../server/audio/dtmf.js';
import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from '../../server/audio/g711.js';
import { G722Decoder, G722Encoder } from '../../server/audio/g722.js';
import { isRtcp, parseRtp, RtpPacketizer } from '../../server/audio/rtp.js';
import { detectTone, ToneGenerator } from '../../server/audio/tone.js';
import { expectedResponse, ha1, parseCredentials, type DigestAlgorithm } from '../../server/registrar/digest.js';
import { parseNameAddr } from '../../server/sip/address.js';
import { newBranch, newCallId, newTag } from '../../server/sip/ids.js';
import { SipRequest, type SipMessageAny, type SipResponse } from '../../server/sip/message.js';
import { headerList, parseMessage } from '../../server/sip/parser.js';
import { makeResponse, reasonPhrase } from '../../server/sip/reply.js';
import { buildAckForError, buildCancel } from '../../server/sip/requests.js';
import { Latch, within as withinOr } from './latch.js';

// =============================================================================================
// waits and errors

export const DEFAULT_TIMEOUT_MS = 10_000;
/** RFC 3261 §17.1.1.1 timer values. */
const T1 = 500;
const T2 = 4000;
const LOCAL_ADDRESS = '127.0.0.1';
const USER_AGENT = 'rtp-phone (test desk phone)';
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO';

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** A request (or a call) got a final failure response. */
export class SipStatusError extends Error {
  override name = 'SipStatusError';
  constructor(
    readonly status: number,
    readonly reason: string,
    what: string,
    /** the failure response itself, when one came (its headers, for tests that check them) */
    readonly response: SipResponse | null = null,
  ) {
    super(`${what}: ${status} ${reason}`);
  }
}

/** `p`, or a TimeoutError naming `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withinOr(p, ms, what, (m) => new TimeoutError(m));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// =============================================================================================
// SDP (pure)

export type CodecName = 'PCMU' | 'PCMA' | 'G722';
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

interface CodecSpec {
  payloadType: number;
  /** PCM sample rate of the decoded audio (the RTP clock is 8000 for all three). */
  sampleRate: 8000 | 16000;
}

const CODECS: Record<CodecName, CodecSpec> = {
  PCMU: { payloadType: 0, sampleRate: 8000 },
  PCMA: { payloadType: 8, sampleRate: 8000 },
  // RFC 3551 §4.5.2: G.722 samples at 16 kHz, but its RTP clock is 8000 (kept for compatibility)
  G722: { payloadType: 9, sampleRate: 16000 },
};

/** RTP clock rate of every format here (telephone-event/8000 included). */
const RTP_CLOCK = 8000;
const FRAME_MS = 20;
/** Timestamp units per 20 ms packet. */
const FRAME_TS = (RTP_CLOCK * FRAME_MS) / 1000;
export const TELEPHONE_EVENT_PT = 101;

/** Static payload types (RFC 3551 Table 4) an SDP may list without an rtpmap. */
const STATIC_FORMATS: Record<number, { name: string; clockRate: number }> = {
  0: { name: 'PCMU', clockRate: 8000 },
  3: { name: 'GSM', clockRate: 8000 },
  4: { name: 'G723', clockRate: 8000 },
  8: { name: 'PCMA', clockRate: 8000 },
  9: { name: 'G722', clockRate: 8000 },
  18: { name: 'G729', clockRate: 8000 },
};

export interface SdpFormat {
  payloadType: number;
  /** encoding name as written (compare case-insensitively) */
  name: string;
  clockRate: number;
  fmtp?: string;
}

/** The audio stream of a session description: what a phone needs to send and receive. */
export interface AudioDescription {
  address: string;
  port: number;
  /** a=rtcp port, when given */
  rtcpPort: number | null;
  rtcpMux: boolean;
  direction: Direction;
  protocol: string;
  /** in m= line order (the offerer's preference) */
  formats: SdpFormat[];
}

/** The first audio stream of an SDP; throws when there is none or it has no address. */
export function parseSdp(text: string): AudioDescription {
  const s = sdpTransform.parse(text);
  const m = s.media.find((x) => x.type === 'audio' && x.port !== 0) ?? s.media.find((x) => x.type === 'audio');
  if (!m) throw new Error('SDP without an audio m= line');
  const address = m.connection?.ip ?? s.connection?.ip;
  if (!address) throw new Error('SDP without a c= line for its audio');
  const pts = String(m.payloads ?? '').trim().split(/\s+/).filter((p) => p !== '').map(Number);
  const formats = pts.map((payloadType): SdpFormat => {
    const rtp = m.rtp.find((r) => r.payload === payloadType);
    const fmtp = m.fmtp.find((f) => f.payload === payloadType)?.config;
    const known = STATIC_FORMATS[payloadType];
    return {
      payloadType,
      name: rtp?.codec ?? known?.name ?? `pt${payloadType}`,
      clockRate: rtp?.rate ?? known?.clockRate ?? RTP_CLOCK,
      ...(fmtp !== undefined ? { fmtp } : {}),
    };
  });
  return {
    address,
    port: m.port,
    rtcpPort: m.rtcp?.port ?? null,
    rtcpMux: m.rtcpMux === 'rtcp-mux',
    direction: m.direction ?? s.direction ?? 'sendrecv',
    protocol: m.protocol,
    formats,
  };
}

export interface SdpSpec {
  sessionId: string;
  version: number;
  address: string;
  port: number;
  formats: SdpFormat[];
  direction: Direction;
  rtcpMux: boolean;
}

/** A desk phone's SDP: plain RTP/AVP, one audio stream, no ICE, no crypto. */
export function buildSdp(o: SdpSpec): string {
  const lines = [
    'v=0',
    `o=- ${o.sessionId} ${o.version} IN IP4 ${o.address}`,
    's=rtp-phone',
    `c=IN IP4 ${o.address}`,
    't=0 0',
    `m=audio ${o.port} RTP/AVP ${o.formats.map((f) => f.payloadType).join(' ')}`,
  ];
  for (const f of o.formats) {
    lines.push(`a=rtpmap:${f.payloadType} ${f.name}/${f.clockRate}`);
    if (f.fmtp !== undefined) lines.push(`a=fmtp:${f.payloadType} ${f.fmtp}`);
  }
  lines.push('a=ptime:20', `a=${o.direction}`);
  if (o.rtcpMux) lines.push('a=rtcp-mux');
  return lines.join('\r\n') + '\r\n';
}

/** The codec a format carries, if it is one of ours. */
function codecOf(f: SdpFormat): CodecName | null {
  const name = f.name.toUpperCase();
  return f.clockRate === RTP_CLOCK && name in CODECS ? (name as CodecName) : null;
}

function isTelephoneEvent(f: SdpFormat): boolean {
  return f.name.toLowerCase() === 'telephone-event' && f.clockRate === RTP_CLOCK;
}

function telephoneEvent(payloadType: number): SdpFormat {
  return { payloadType, name: 'telephone-event', clockRate: RTP_CLOCK, fmtp: '0-16' };
}

/** What we offer: our codecs in order, then telephone-event/8000. */
export function offerFormats(codecs: readonly CodecName[]): SdpFormat[] {
  return [...codecs.map((c) => ({ payloadType: CODECS[c].payloadType, name: c, clockRate: RTP_CLOCK })), telephoneEvent(TELEPHONE_EVENT_PT)];
}

/**
 * What we answer (RFC 3264 §6.1): the first offered codec we support, in the offer's order,
 * with the offer's payload type; telephone-event when offered. null: nothing in common (488).
 */
export function answerFormats(offer: AudioDescription, codecs: readonly CodecName[]): SdpFormat[] | null {
  const codec = offer.formats.find((f) => {
    const c = codecOf(f);
    return c !== null && codecs.includes(c);
  });
  if (!codec) return null;
  const te = offer.formats.find(isTelephoneEvent);
  return [{ payloadType: codec.payloadType, name: codecOf(codec)!, clockRate: RTP_CLOCK }, ...(te ? [telephoneEvent(te.payloadType)] : [])];
}

const sends = (d: Direction): boolean => d === 'sendrecv' || d === 'sendonly';
const receives = (d: Direction): boolean => d === 'sendrecv' || d === 'recvonly';

function directionOf(send: boolean, recv: boolean): Direction {
  return send ? (recv ? 'sendrecv' : 'sendonly') : recv ? 'recvonly' : 'inactive';
}

/**
 * RFC 3264 §6.1: the answer's direction, given the offer's and what we want (sendonly while
 * we hold the call): sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive.
 */
export function answerDirection(offered: Direction, wanted: Direction = 'sendrecv'): Direction {
  return directionOf(sends(wanted) && receives(offered), receives(wanted) && sends(offered));
}

/** How media flows after an offer/answer: where and how we send, how to read what we receive. */
export interface MediaPlan {
  codec: CodecName;
  /** payload type the remote SDP gave the codec (we send with it) */
  sendPayloadType: number;
  /** the remote SDP's telephone-event payload type; null when it did not list one */
  sendEventPayloadType: number | null;
  /** what each received payload type carries (our SDP's numbers, then the remote's) */
  receive: Map<number, CodecName | 'telephone-event'>;
  /** where RTP and RTCP go; null when there is nowhere (port 0, c=0.0.0.0 hold) */
  remote: { address: string; port: number; rtcpPort: number } | null;
  /** our direction and the remote's allow us to send */
  send: boolean;
  rtcpMux: boolean;
}

/**
 * The plan for our current SDP and the remote one: the codec is the first one of the remote
 * description that ours also lists (an answer lists one; as answerer ours lists one).
 */
export function planMedia(local: { formats: SdpFormat[]; direction: Direction; rtcpMux: boolean }, remote: AudioDescription): MediaPlan | null {
  const localCodecs = new Set(local.formats.map(codecOf).filter((c) => c !== null));
  const chosen = remote.formats.find((f) => {
    const c = codecOf(f);
    return c !== null && localCodecs.has(c);
  });
  if (!chosen) return null;
  const receive = new Map<number, CodecName | 'telephone-event'>();
  for (const f of [...remote.formats, ...local.formats]) {
    const c = codecOf(f);
    if (c !== null) receive.set(f.payloadType, c);
    else if (isTelephoneEvent(f)) receive.set(f.payloadType, 'telephone-event');
  }
  const rtcpMux = local.rtcpMux && remote.rtcpMux;
  const reachable = remote.port !== 0 && remote.address !== '0.0.0.0';
  return {
    codec: codecOf(chosen)!,
    sendPayloadType: chosen.payloadType,
    sendEventPayloadType: remote.formats.find(isTelephoneEvent)?.payloadType ?? null,
    receive,
    remote: reachable ? { address: remote.address, port: remote.port, rtcpPort: rtcpMux ? remote.port : (remote.rtcpPort ?? remote.port + 1) } : null,
    send: reachable && sends(local.direction) && receives(remote.direction),
    rtcpMux,
  };
}

// =============================================================================================
// SIP message building (pure)

interface RequestSpec {
  method: string;
  uri: string;
  via: string;
  from: string;
  to: string;
  callId: string;
  cseq: number;
  contact?: string;
  routes?: readonly string[];
  headers?: readonly [string, string][];
  sdp?: string | null;
}

function buildRequest(r: RequestSpec): SipRequest {
  const pairs: [string, string][] = [
    ['Via', r.via],
    ['Max-Forwards', '70'],
    ...(r.routes ?? []).map((v): [string, string] => ['Route', v]),
    ['From', r.from],
    ['To', r.to],
    ['Call-ID', r.callId],
    ['CSeq', `${r.cseq} ${r.method}`],
  ];
  if (r.contact) pairs.push(['Contact', r.contact]);
  pairs.push(...(r.headers ?? []), ['User-Agent', USER_AGENT]);
  if (r.sdp) pairs.push(['Content-Type', 'application/sdp']);
  return new SipRequest(r.method, r.uri, headerList(pairs), r.sdp ? Buffer.from(r.sdp, 'latin1') : undefined);
}

/**
 * RFC 3261 §12.2.1.1: Request-URI and Route headers of a request inside a dialog. A loose
 * router first in the route set (;lr) leaves the remote target as Request-URI; a strict one
 * takes its place, and the remote target goes last in Route.
 */
export function dialogTarget(remoteTarget: string, routeSet: readonly string[]): { uri: string; routes: string[] } {
  if (routeSet.length === 0) return { uri: remoteTarget, routes: [] };
  const first = parseNameAddr(routeSet[0]!);
  if (first.uri.params.has('lr')) return { uri: remoteTarget, routes: [...routeSet] };
  return { uri: first.uriText, routes: [...routeSet.slice(1), `<${remoteTarget}>`] };
}

/** The URI of a name-addr header value (Contact, To...). */
function uriOf(value: string): string {
  return parseNameAddr(value).uriText;
}

/**
 * The Authorization (or Proxy-Authorization) header answering a 401 (407) challenge:
 * RFC 2617 / 8760 digest, qop=auth when offered, MD5 preferred.
 */
export function digestAuthorization(res: SipResponse, o: { user: string; password: string; method: string; uri: string; nc: number }): [string, string] | null {
  const proxy = res.status === 407;
  const challenges = res.getAll(proxy ? 'proxy-authenticate' : 'www-authenticate').map(parseCredentials).filter((c) => c !== null && c.scheme.toLowerCase() === 'digest');
  const algorithmOf = (c: { params: Map<string, string> }): string => (c.params.get('algorithm') ?? 'MD5').toUpperCase();
  const chosen = challenges.find((c) => algorithmOf(c!) === 'MD5') ?? challenges.find((c) => algorithmOf(c!) === 'SHA-256');
  if (!chosen) return null;
  const alg = algorithmOf(chosen) as DigestAlgorithm;
  const realm = chosen.params.get('realm') ?? '';
  const nonce = chosen.params.get('nonce') ?? '';
  const opaque = chosen.params.get('opaque');
  const qop = (chosen.params.get('qop') ?? '').split(',').map((q) => q.trim().toLowerCase()).includes('auth');
  const nc = o.nc.toString(16).padStart(8, '0');
  const cnonce = newTag();
  const params = new Map([['uri', o.uri], ['nonce', nonce]]);
  if (qop) {
    params.set('qop', 'auth');
    params.set('nc', nc);
    params.set('cnonce', cnonce);
  }
  const response = expectedResponse(alg, ha1(alg, o.user, realm, o.password), o.method, params);
  let value = `Digest username="${o.user}", realm="${realm}", nonce="${nonce}", uri="${o.uri}", response="${response}", algorithm=${alg}`;
  if (qop) value += `, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
  if (opaque !== undefined) value += `, opaque="${opaque}"`;
  return [proxy ? 'Proxy-Authorization' : 'Authorization', value];
}

// =============================================================================================
// media: RTP out (tone, DTMF) and in (decode, digits), no SIP

/** The header fields of one received RTP packet, as the test peers record them (payload not kept). */
export interface RtpArrival {
  /** Date.now() at arrival */
  at: number;
  ssrc: number;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payloadLength: number;
}

/** One RTP datagram a phone received. */
export interface ReceivedRtp extends RtpArrival {
  /** the datagram's length, header included */
  bytes: number;
  /** the X bit: the packet carries a header extension block */
  extension: boolean;
  address: string;
  port: number;
}

export interface AudioSelection {
  /** only audio that arrived at or after this Date.now() value */
  since?: number;
  /** only audio that arrived before this Date.now() value */
  until?: number;
  /** only this SSRC */
  ssrc?: number;
}

export interface HeardToneOptions extends AudioSelection {
  /** audio to skip at the start of the selection (default 200 ms) */
  skipMs?: number;
  /** frequency tolerance (default 10 Hz) */
  toleranceHz?: number;
  /** at least this much audio must be there (after the skip; default 200 ms) */
  minMs?: number;
}

interface AudioCodec {
  sampleRate: 8000 | 16000;
  encoder(): (pcm: Int16Array) => Uint8Array;
  decoder(): (payload: Uint8Array) => Int16Array;
}

function audioCodec(name: CodecName): AudioCodec {
  switch (name) {
    case 'PCMU':
      return { sampleRate: 8000, encoder: () => (pcm) => encodeUlaw(pcm), decoder: () => (p) => decodeUlaw(p) };
    case 'PCMA':
      return { sampleRate: 8000, encoder: () => (pcm) => encodeAlaw(pcm), decoder: () => (p) => decodeAlaw(p) };
    case 'G722':
      return {
        sampleRate: 16000,
        encoder: () => {
          const enc = new G722Encoder();
          return (pcm) => enc.encode(pcm);
        },
        decoder: () => {
          const dec = new G722Decoder();
          return (p) => dec.decode(p);
        },
      };
  }
}

/** RTCP sender report + SDES CNAME (RFC 3550 §6.4.1, §6.5), the compound packet a phone sends. */
function senderReport(ssrc: number, rtpTimestamp: number, packets: number, octets: number, cname: string): Buffer {
  const now = Date.now();
  const sr = Buffer.alloc(28);
  sr[0] = 0x80;
  sr[1] = 200;
  sr.writeUInt16BE(6, 2);
  sr.writeUInt32BE(ssrc >>> 0, 4);
  sr.writeUInt32BE((Math.floor(now / 1000) + 2208988800) >>> 0, 8); // NTP seconds (from 1900)
  sr.writeUInt32BE(Math.floor(((now % 1000) / 1000) * 2 ** 32) >>> 0, 12);
  sr.writeUInt32BE(rtpTimestamp >>> 0, 16);
  sr.writeUInt32BE(packets >>> 0, 20);
  sr.writeUInt32BE(octets >>> 0, 24);
  const name = Buffer.from(cname, 'utf8').subarray(0, 255);
  const len = Math.ceil((4 + 2 + name.length + 1) / 4) * 4; // SSRC, CNAME item, END, padding
  const sdes = Buffer.alloc(4 + len);
  sdes[0] = 0x81;
  sdes[1] = 202;
  sdes.writeUInt16BE(sdes.length / 4 - 1, 2);
  sdes.writeUInt32BE(ssrc >>> 0, 4);
  sdes[8] = 1;
  sdes[9] = name.length;
  name.copy(sdes, 10);
  return Buffer.concat([sr, sdes]);
}

interface AudioChunk {
  at: number;
  ssrc: number;
  rate: number;
  pcm: Int16Array;
}

interface DigitJob {
  digit: string;
  durationMs: number;
  done: Latch<void>;
}

/** Bounds on what one call records (a test call lasts seconds; this is minutes). */
const MAX_PACKETS = 50 * 600;

/**
 * The RTP side of one call: a 20 ms clock that sends the tone (or DTMF events) while the plan
 * allows, and a recorder of everything received. The phone feeds it the datagrams of its
 * RTP/RTCP sockets while it owns them.
 */
export class RtpMedia {
  // ---- received
  readonly packets: ReceivedRtp[] = [];
  readonly ssrcs = new Set<number>();
  /** `address:port` of every RTP sender seen */
  readonly sources = new Set<string>();
  lastSource: { address: string; port: number } | null = null;
  dtmf = '';
  rtcpPackets = 0;
  /** packets whose payload type no SDP of the call names */
  unknownPayloadPackets = 0;
  private readonly chunks: AudioChunk[] = [];
  private readonly decoders = new Map<string, (payload: Uint8Array) => Int16Array>();
  private readonly dtmfReceiver = new DtmfReceiver();

  // ---- sent
  plan: MediaPlan | null = null;
  sentPackets = 0;
  /** voice frames this phone sent late (its timer, in this busy process): when and by how much */
  readonly lateSends: { at: number; lateMs: number }[] = [];
  sentOctets = 0;
  private packetizer = new RtpPacketizer({ payloadType: 0, clockRate: RTP_CLOCK, samplesPerPacket: FRAME_TS });
  private codec: CodecName | null = null;
  private encode: ((pcm: Int16Array) => Uint8Array) | null = null;
  private tone: ToneGenerator | null = null;
  private silence = new Int16Array(FRAME_TS);
  private timer: NodeJS.Timeout | null = null;
  private epoch = 0;
  private frames = 0;
  private markNext = true;
  private readonly digits: DigitJob[] = [];
  private event: { job: DigitJob; packets: DigitPacket[]; index: number; timestamp: number } | null = null;
  private gapFrames = 0;
  private stopped = false;
  /** a phone whose media died (tests of RTP timeouts): nothing goes out, RTCP neither */
  silent = false;

  /** sockets rebind() opened (closed by stop()) */
  private readonly rebound: dgram.Socket[] = [];
  /** RTP and RTCP datagrams received on them */
  reboundPackets = 0;

  constructor(
    private sockets: { rtp: dgram.Socket; rtcp: dgram.Socket | null },
    private readonly toneHz: number | null,
    private readonly cname: string,
    private readonly stampPayloads = false,
  ) {}

  /** Adopt a new offer/answer outcome; starts the 20 ms clock on first use. */
  apply(plan: MediaPlan): void {
    if (this.stopped) return;
    const wasSending = this.plan?.send === true;
    this.plan = plan;
    this.packetizer.payloadType = plan.sendPayloadType;
    if (plan.codec !== this.codec) {
      const codec = audioCodec(plan.codec);
      this.codec = plan.codec;
      this.encode = codec.encoder();
      this.tone = this.toneHz === null ? null : new ToneGenerator(this.toneHz, codec.sampleRate);
      this.silence = new Int16Array((codec.sampleRate * FRAME_MS) / 1000);
    }
    if (plan.send && !wasSending) this.markNext = true;
    if (this.timer === null) {
      this.epoch = performance.now() - FRAME_MS;
      this.frames = 0;
      this.timer = setInterval(() => this.tick(), FRAME_MS / 2);
    }
  }

  get sending(): boolean {
    return this.plan?.send === true && this.plan.remote !== null;
  }

  get ssrc(): number {
    return this.packetizer.ssrc;
  }

  /** Sample rate of the decoded audio (that of the negotiated codec). */
  get rate(): number {
    return this.codec === null ? 8000 : CODECS[this.codec].sampleRate;
  }

  /** From the next packet on: a new random SSRC, sequence number and timestamp base. */
  changeSsrc(): number {
    const old = this.packetizer.ssrc;
    let next: RtpPacketizer;
    do next = new RtpPacketizer({ payloadType: this.packetizer.payloadType, clockRate: RTP_CLOCK, samplesPerPacket: FRAME_TS });
    while (next.ssrc === old);
    this.packetizer = next;
    this.markNext = true;
    if (this.event) this.event.timestamp = next.timestamp;
    return next.ssrc;
  }

  /** Queue DTMF digits (RFC 4733 events); resolves when the last one's end packets are sent. */
  sendDtmf(digits: string, durationMs: number): Promise<void> {
    if (this.plan && this.plan.sendEventPayloadType === null) {
      return Promise.reject(new Error('telephone-event was not negotiated: cannot send DTMF'));
    }
    try {
      for (const digit of digits) digitPackets(digit, { durationMs }); // validate all before queueing any
    } catch (e) {
      return Promise.reject(e as Error);
    }
    let last: Promise<void> = Promise.resolve();
    for (const digit of digits) {
      const job = { digit, durationMs, done: new Latch<void>() };
      this.digits.push(job);
      last = job.done.promise;
    }
    return last;
  }

  private tick(): void {
    let due = Math.floor((performance.now() - this.epoch) / FRAME_MS) - this.frames;
    if (due > 5) {
      // the event loop stalled: skip the lost time rather than burst
      this.frames += due - 1;
      this.packetizer.skip((due - 1) * FRAME_TS);
      due = 1;
    }
    for (; due > 0; due--) {
      this.frames++;
      // how late this frame leaves, against its slot on the 20 ms schedule
      const lateMs = performance.now() - (this.epoch + this.frames * FRAME_MS);
      if (lateMs > FRAME_MS && this.lateSends.length < 10_000) this.lateSends.push({ at: Date.now(), lateMs });
      this.frame();
      if (this.frames % 50 === 25) this.sendRtcp();
    }
  }

  /** One 20 ms slot: a DTMF event packet, a voice packet, or nothing (timestamp still runs). */
  private frame(): void {
    const plan = this.plan;
    if (!plan || !plan.send || plan.remote === null) {
      this.packetizer.skip(FRAME_TS);
      this.markNext = true;
      return;
    }
    if (this.event === null && this.gapFrames === 0 && this.digits.length > 0 && plan.sendEventPayloadType !== null) {
      const job = this.digits.shift()!;
      this.event = { job, packets: digitPackets(job.digit, { durationMs: job.durationMs }), index: 0, timestamp: this.packetizer.timestamp };
    }
    let pkt: Buffer;
    const ev = this.event;
    if (ev !== null && plan.sendEventPayloadType !== null) {
      // RFC 4733 §2.5.1: every packet of the event carries its start timestamp; voice pauses
      const p = ev.packets[ev.index++]!;
      pkt = this.packetizer.packetAt(p.payload, { timestamp: ev.timestamp, marker: p.marker, payloadType: plan.sendEventPayloadType });
      this.packetizer.skip(FRAME_TS);
      if (ev.index === ev.packets.length) {
        this.event = null;
        this.gapFrames = 3; // 60 ms of voice between digits, as a keypad would
        ev.job.done.resolve();
      }
    } else {
      if (this.gapFrames > 0) this.gapFrames--;
      const pcm = this.tone ? this.tone.next() : this.silence;
      const payload = this.encode!(pcm);
      if (this.stampPayloads && payload.length >= 4) {
        new DataView(payload.buffer, payload.byteOffset, payload.byteLength).setUint32(0, this.sentPackets + 1);
      }
      pkt = this.packetizer.next(payload, { marker: this.markNext });
      this.markNext = false;
    }
    if (this.silent) return;
    this.sentPackets++;
    this.sentOctets += pkt.length - 12;
    this.send(this.sockets.rtp, pkt, plan.remote.port, plan.remote.address);
  }

  private sendRtcp(): void {
    const plan = this.plan;
    if (!plan || !plan.send || plan.remote === null || this.sentPackets === 0 || this.silent) return;
    const socket = plan.rtcpMux ? this.sockets.rtp : this.sockets.rtcp;
    if (socket === null) return;
    this.send(socket, senderReport(this.packetizer.ssrc, this.packetizer.timestamp, this.sentPackets, this.sentOctets, this.cname), plan.remote.rtcpPort, plan.remote.address);
  }

  private send(socket: dgram.Socket, buf: Buffer, port: number, address: string): void {
    try {
      socket.send(buf, port, address);
    } catch {
      // socket closed under us: the phone is closing
    }
  }

  /** A datagram on the RTP socket (RTP, or RTCP when muxed). */
  receive(buf: Buffer, address: string, port: number): void {
    if (this.stopped) return;
    if (isRtcp(buf)) {
      this.rtcpPackets++;
      return;
    }
    const p = parseRtp(buf);
    if (!p) return;
    const at = Date.now();
    if (this.packets.length < MAX_PACKETS) {
      this.packets.push({ at, ssrc: p.ssrc, payloadType: p.payloadType, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, marker: p.marker, payloadLength: p.payloadLength, bytes: buf.length, extension: (buf[0]! & 0x10) !== 0, address, port });
    }
    this.ssrcs.add(p.ssrc);
    this.sources.add(`${address}:${port}`);
    this.lastSource = { address, port };
    const kind = this.plan?.receive.get(p.payloadType);
    if (kind === undefined) {
      // before the answer (RtpPhone.listenEarly) nothing is planned yet: not a stray
      if (this.plan) this.unknownPayloadPackets++;
      return;
    }
    if (kind === 'telephone-event') {
      for (const d of this.dtmfReceiver.push(p.timestamp, p.payload)) this.dtmf += d.digit;
      return;
    }
    const key = `${p.ssrc}/${kind}`;
    let decode = this.decoders.get(key);
    if (!decode) {
      decode = audioCodec(kind).decoder();
      this.decoders.set(key, decode);
    }
    if (this.chunks.length < MAX_PACKETS) this.chunks.push({ at, ssrc: p.ssrc, rate: CODECS[kind].sampleRate, pcm: decode(p.payload) });
  }

  /** A datagram on the RTCP socket. */
  receiveRtcp(): void {
    if (!this.stopped) this.rtcpPackets++;
  }

  /** Decoded audio received (at `rate`), in arrival order, optionally only part of it. */
  audio(sel: AudioSelection = {}): Int16Array {
    const rate = this.rate;
    const picked = this.chunks.filter((c) => c.rate === rate && (sel.since === undefined || c.at >= sel.since) && (sel.until === undefined || c.at < sel.until) && (sel.ssrc === undefined || c.ssrc === sel.ssrc));
    const out = new Int16Array(picked.reduce((n, c) => n + c.pcm.length, 0));
    let off = 0;
    for (const c of picked) {
      out.set(c.pcm, off);
      off += c.pcm.length;
    }
    return out;
  }

  /** Is a tone at `freq` in the received audio (detectTone, after skipping the first 200 ms)? */
  heardTone(freq: number, opts: HeardToneOptions = {}): boolean {
    const rate = this.rate;
    const samples = this.audio(opts);
    const skip = Math.round(((opts.skipMs ?? 200) * rate) / 1000);
    const min = Math.round(((opts.minMs ?? 200) * rate) / 1000);
    if (samples.length - skip < min) return false;
    return detectTone(samples.subarray(skip), rate, freq, opts.toleranceHz ?? 10);
  }

  /**
   * A NAT that rebinds the phone's mapping: from the next packet on, RTP leaves from (and is
   * read on) a fresh socket on the same address, another port. Returns that port.
   */
  async rebind(): Promise<number> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, this.sockets.rtp.address().address, () => resolve()));
    s.on('message', (m, r) => {
      this.reboundPackets++;
      this.receive(m, r.address, r.port);
    });
    s.on('error', () => {});
    this.rebound.push(s);
    this.sockets = { ...this.sockets, rtp: s };
    return s.address().port;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const s of this.rebound.splice(0)) s.close();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const err = new Error('the call ended before the DTMF was sent');
    if (this.event) this.event.job.done.reject(err);
    for (const job of this.digits.splice(0)) job.done.reject(err);
    this.event = null;
  }
}

// =============================================================================================
// the phone: sockets, transactions, registration

export interface AutoAnswer {
  /** ring (180) this long before the final response (default 0) */
  ringMs?: number;
  /** final status: 200 answers, anything else (486, 488, 603...) rejects (default 200) */
  status?: number;
  /** send 183 with the SDP answer and start media while ringing, instead of 180 (default false) */
  earlyMedia?: boolean;
}

export interface RtpPhoneOptions {
  user: string;
  /** digest password (default: none; challenges then fail) */
  password?: string;
  /** the gateway's UDP address, 'host:port' */
  gateway: string;
  /** domain of AORs and targets (default: the gateway's host) */
  domain?: string;
  /** codecs in preference order, offered and accepted (default ['PCMU', 'PCMA']); telephone-event is always offered */
  codecs?: CodecName[];
  /** frequency of the tone it sends, Hz (default 440); null sends silence */
  tone?: number | null;
  /** offer/accept a=rtcp-mux (default false: RTCP on RTP port + 1) */
  rtcpMux?: boolean;
  /** answer incoming calls by itself (default: ring until told) */
  autoAnswer?: AutoAnswer;
  /** bound of every wait (default 10 s) */
  timeoutMs?: number;
  /** registration lifetime asked for (default 3600 s) */
  expires?: number;
  /** print SIP traffic to stderr (default: RTP_PHONE_TRACE env) */
  trace?: boolean;
  /** address its RTP (and RTCP) sockets send from and listen on (default 127.0.0.1; any 127/8 address works on loopback) */
  rtpAddress?: string;
  /** address its SDP names in c= (default: rtpAddress); another one is a phone behind NAT, naming a private address it cannot be reached at */
  sdpAddress?: string;
  /**
   * write each voice packet's number in this phone's sending (1, 2, ...: sentPackets once it
   * is sent) into the first 4 bytes of its payload, big-endian (default false). A relay rewrites
   * SSRC, sequence and timestamp, not the payload: the receiver can tell which packet it got
   * (see payloadStamp). The tone then clicks every packet: check packets, not the tone.
   */
  stampPayloads?: boolean;
}

/** The packet number an RtpPhone with stampPayloads wrote into `payload`, or null (too short). */
export function payloadStamp(payload: Uint8Array): number | null {
  if (payload.length < 4) return null;
  return ((payload[0]! << 24) | (payload[1]! << 16) | (payload[2]! << 8) | payload[3]!) >>> 0;
}

interface Peer {
  address: string;
  port: number;
}

class ClientTx {
  readonly final = new Latch<SipResponse>();
  readonly isInvite: boolean;
  provisional = false;
  finalSeen = false;
  retransmitTimer: NodeJS.Timeout | null = null;
  timeoutTimer: NodeJS.Timeout | null = null;
  /** ACK for a 300-699 final (§17.1.1.3), sent again for each retransmission of it */
  failureAck: Buffer | null = null;

  constructor(
    readonly request: SipRequest,
    readonly onResponse: ((res: SipResponse) => void) | null,
  ) {
    this.isInvite = request.method === 'INVITE';
  }
}

/** Where a request came from and the last response we sent to it (re-sent on retransmission). */
class ServerTx {
  last: Buffer | null = null;
  constructor(readonly peer: Peer) {}
}

function txKey(branch: string | null | undefined, method: string): string {
  return `${branch ?? ''}|${method}`;
}

async function bindUdp(port: number, address = LOCAL_ADDRESS): Promise<dgram.Socket | null> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    const onError = (): void => {
      try {
        s.close();
      } catch {
        // never bound
      }
      resolve(null);
    };
    s.once('error', onError);
    s.bind(port, address, () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

/** An RTP socket on an even port, with the RTCP socket on the next one unless muxed. */
async function bindRtpPair(mux: boolean, address: string): Promise<{ rtp: dgram.Socket; rtcp: dgram.Socket | null }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const rtp = await bindUdp(0, address);
    if (!rtp) continue;
    const port = rtp.address().port;
    if (port % 2 === 0 && port < 65535) {
      if (mux) return { rtp, rtcp: null };
      const rtcp = await bindUdp(port + 1, address);
      if (rtcp) return { rtp, rtcp };
    }
    rtp.close();
  }
  throw new Error('could not bind an even RTP port (and the next one for RTCP)');
}

export class RtpPhone {
  readonly user: string;
  readonly domain: string;
  /** sip:user@domain */
  readonly aor: string;
  readonly codecs: readonly CodecName[];
  readonly tone: number | null;
  readonly rtcpMux: boolean;
  readonly timeoutMs: number;
  readonly stampPayloads: boolean;
  /** the address its SDP names for media */
  readonly sdpAddress: string;
  autoAnswer: AutoAnswer | null;
  registered = false;
  /** SIP messages received that could not be parsed, or responses matching nothing we sent */
  readonly strays: string[] = [];

  private readonly password: string | null;
  private readonly gateway: Peer;
  private readonly expires: number;
  private readonly trace: boolean;
  private readonly clientTxs = new Map<string, ClientTx>();
  private readonly serverTxs = new Map<string, ServerTx>();
  private readonly callsById = new Map<string, PhoneCall>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly incomingQueue: PhoneCall[] = [];
  private readonly incomingWaiters: Latch<PhoneCall>[] = [];
  private incomingHandler: ((call: PhoneCall) => void) | null = null;
  private readonly registration = { callId: newCallId(LOCAL_ADDRESS), tag: newTag(), cseq: 0 };
  private nonceCount = 0;
  private closed = false;
  /** SIP datagrams handed to the socket and not sent yet (close() lets them go first) */
  private inflight = 0;
  private drained: (() => void)[] = [];
  /** the call whose media the RTP socket feeds */
  private mediaOwner: RtpMedia | null = null;

  private constructor(
    opts: RtpPhoneOptions,
    private readonly sip: dgram.Socket,
    private readonly rtp: dgram.Socket,
    private readonly rtcp: dgram.Socket | null,
  ) {
    const [host, port] = splitHostPort(opts.gateway);
    this.gateway = { address: host, port };
    this.user = opts.user;
    this.password = opts.password ?? null;
    this.domain = opts.domain ?? host;
    this.aor = `sip:${opts.user}@${this.domain}`;
    this.codecs = opts.codecs ?? ['PCMU', 'PCMA'];
    this.sdpAddress = opts.sdpAddress ?? opts.rtpAddress ?? LOCAL_ADDRESS;
    this.tone = opts.tone === undefined ? 440 : opts.tone;
    this.rtcpMux = opts.rtcpMux ?? false;
    this.stampPayloads = opts.stampPayloads ?? false;
    this.autoAnswer = opts.autoAnswer ?? null;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.expires = opts.expires ?? 3600;
    this.trace = opts.trace ?? (process.env.RTP_PHONE_TRACE !== undefined && process.env.RTP_PHONE_TRACE !== '0');

    sip.on('message', (buf, rinfo) => this.onSipDatagram(buf, { address: rinfo.address, port: rinfo.port }));
    rtp.on('message', (buf, rinfo) => this.mediaOwner?.receive(buf, rinfo.address, rinfo.port));
    rtcp?.on('message', () => this.mediaOwner?.receiveRtcp());
    for (const s of [sip, rtp, rtcp]) s?.on('error', (err) => this.log(`socket error: ${err.message}`));
  }

  /** Binds the SIP socket and the RTP (+RTCP) socket(s) on 127.0.0.1. */
  static async start(opts: RtpPhoneOptions): Promise<RtpPhone> {
    splitHostPort(opts.gateway);
    for (const c of opts.codecs ?? []) if (!(c in CODECS)) throw new Error(`unsupported codec ${c}`);
    if (opts.codecs?.length === 0) throw new Error('codecs must name at least one codec');
    const sip = await bindUdp(0);
    if (!sip) throw new Error('could not bind a SIP socket');
    try {
      const { rtp, rtcp } = await bindRtpPair(opts.rtcpMux ?? false, opts.rtpAddress ?? LOCAL_ADDRESS);
      return new RtpPhone(opts, sip, rtp, rtcp);
    } catch (e) {
      sip.close();
      throw e;
    }
  }

  get sipPort(): number {
    return this.sip.address().port;
  }

  get rtpPort(): number {
    return this.rtp.address().port;
  }

  /** The Contact we register and put in dialogs. */
  get contact(): string {
    return `<sip:${this.user}@${LOCAL_ADDRESS}:${this.sipPort}>`;
  }

  /** Every call this phone has made or received, oldest first. */
  get calls(): PhoneCall[] {
    return [...this.callsById.values()];
  }

  // ---- registration

  /** REGISTER (answering the digest challenge); resolves with the 200, rejects with the status otherwise. */
  async register(expires = this.expires): Promise<SipResponse> {
    let res = await this.sendRegister(expires, null);
    if ((res.status === 401 || res.status === 407) && this.password !== null) {
      const auth = digestAuthorization(res, { user: this.user, password: this.password, method: 'REGISTER', uri: `sip:${this.domain}`, nc: ++this.nonceCount });
      if (auth) res = await this.sendRegister(expires, auth);
    }
    if (res.status < 200 || res.status >= 300) throw new SipStatusError(res.status, res.reason, `REGISTER ${this.aor}`);
    this.registered = expires > 0;
    return res;
  }

  /** REGISTER with Expires: 0 for our contact. */
  unregister(): Promise<SipResponse> {
    return this.register(0);
  }

  private sendRegister(expires: number, auth: [string, string] | null): Promise<SipResponse> {
    const r = this.registration;
    const req = buildRequest({
      method: 'REGISTER',
      uri: `sip:${this.domain}`,
      via: this.via(),
      from: `<${this.aor}>;tag=${r.tag}`,
      to: `<${this.aor}>`,
      callId: r.callId,
      cseq: ++r.cseq,
      contact: this.contact,
      headers: [['Expires', String(expires)], ['Allow', ALLOW], ...(auth ? [auth] : [])],
    });
    return this.transact(req).final.promise;
  }

  // ---- calls

  /**
   * Calls `target` (a user of the domain, or a SIP URI): INVITE with an SDP offer, or none with
   * `lateOffer` (the offer then comes in the 200 and our answer goes in the ACK).
   */
  call(target: string, opts: { lateOffer?: boolean; headers?: [string, string][]; fromUser?: string } = {}): PhoneCall {
    this.assertOpen();
    const uri = target.includes(':') ? target : `sip:${target}@${this.domain}`;
    const call = new PhoneCall(this, 'outgoing', newCallId(LOCAL_ADDRESS));
    this.callsById.set(call.callId, call);
    // fromUser: a From other than our own user (authenticating as ourselves): a spoofing caller
    call.startOutgoing(uri, opts.lateOffer ?? false, opts.headers ?? [], opts.fromUser ? `sip:${opts.fromUser}@${this.domain}` : this.aor);
    return call;
  }

  /** Called with every incoming call (after it rings); answer it, reject it, or leave it to autoAnswer. */
  onIncoming(handler: ((call: PhoneCall) => void) | null): void {
    this.incomingHandler = handler;
  }

  /** The next incoming call not yet taken (including ones already arrived). */
  nextIncoming(timeoutMs = this.timeoutMs): Promise<PhoneCall> {
    const queued = this.incomingQueue.shift();
    if (queued) return Promise.resolve(queued);
    const d = new Latch<PhoneCall>();
    this.incomingWaiters.push(d);
    return within(d.promise, timeoutMs, `an incoming call at ${this.user}`).catch((e: Error) => {
      const i = this.incomingWaiters.indexOf(d);
      if (i >= 0) this.incomingWaiters.splice(i, 1);
      throw e;
    });
  }

  /** Ends every call (a BYE or CANCEL is sent, not waited for), stops timers, closes sockets. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const call of this.callsById.values()) call.abandon();
    // let the last BYE/CANCEL leave before the socket closes (dgram sends complete a tick later)
    if (this.inflight > 0) await within(new Promise<void>((r) => this.drained.push(r)), 500, 'the last SIP sends').catch(() => undefined);
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const tx of this.clientTxs.values()) tx.final.reject(new Error(`phone ${this.user} closed`));
    this.clientTxs.clear();
    for (const w of this.incomingWaiters.splice(0)) w.reject(new Error(`phone ${this.user} closed`));
    this.mediaOwner = null;
    await Promise.all([this.sip, this.rtp, this.rtcp].map((s) => (s ? new Promise<void>((r) => s.close(() => r())) : undefined)));
  }

  // ---- used by PhoneCall

  /** @internal */
  via(): string {
    return `SIP/2.0/UDP ${LOCAL_ADDRESS}:${this.sipPort};branch=${newBranch()};rport`;
  }

  /** @internal the RTP socket now feeds this media */
  ownMedia(media: RtpMedia): void {
    this.mediaOwner = media;
  }

  /**
   * @internal A caller that sent its offer must be prepared to receive media for it
   * (RFC 3264 §5.1): the RTP socket feeds `media` from then on, unless another call has it.
   * What arrives before the answer is recorded (receivedPackets), not decoded.
   */
  listenEarly(media: RtpMedia): void {
    this.mediaOwner ??= media;
  }

  /** @internal */
  releaseMedia(media: RtpMedia): void {
    if (this.mediaOwner === media) this.mediaOwner = null;
  }

  /** @internal */
  newMedia(): RtpMedia {
    return new RtpMedia({ rtp: this.rtp, rtcp: this.rtcp }, this.tone, `${this.user}@${LOCAL_ADDRESS}`, this.stampPayloads);
  }

  /** @internal */
  authorize(res: SipResponse, method: string, uri: string): [string, string] | null {
    if (this.password === null) return null;
    return digestAuthorization(res, { user: this.user, password: this.password, method, uri, nc: ++this.nonceCount });
  }

  /** @internal a timer cleared by close(); a no-op once closed */
  setTimer(fn: () => void, ms: number): NodeJS.Timeout | null {
    if (this.closed) return null;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  /** @internal */
  clearTimer(t: NodeJS.Timeout | null): void {
    if (t === null) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  /** @internal */
  sendSip(buf: Buffer, to: Peer = this.gateway): void {
    if (this.closed) return;
    if (this.trace) this.log(`--> ${to.address}:${to.port}\n${buf.toString('latin1')}`);
    this.inflight++;
    const done = (): void => {
      if (--this.inflight === 0) for (const r of this.drained.splice(0)) r();
    };
    try {
      this.sip.send(buf, to.port, to.address, done);
    } catch (e) {
      done();
      this.log(`send failed: ${(e as Error).message}`);
    }
  }

  /**
   * @internal Sends a request to the gateway as a client transaction (§17.1): retransmits over
   * UDP until a response (an INVITE until a provisional one), ACKs a failure of an INVITE, and
   * rejects `final` with a TimeoutError after timeoutMs. `onResponse` sees every response,
   * retransmissions included.
   */
  transact(req: SipRequest, onResponse: ((res: SipResponse) => void) | null = null): ClientTx {
    const tx = new ClientTx(req, onResponse);
    if (this.closed) {
      tx.final.reject(new Error(`phone ${this.user} closed`));
      return tx;
    }
    const key = txKey(req.via().params.get('branch'), req.method);
    this.clientTxs.set(key, tx);
    const buf = req.toBuffer();
    this.sendSip(buf);
    let interval = T1;
    const retransmit = (): void => {
      tx.retransmitTimer = null;
      if (tx.finalSeen || (tx.isInvite && tx.provisional)) return;
      this.sendSip(buf);
      // §17.1.2.2: a non-INVITE request is retransmitted at T2 once a provisional response came
      interval = tx.isInvite ? interval * 2 : tx.provisional ? T2 : Math.min(interval * 2, T2);
      tx.retransmitTimer = this.setTimer(retransmit, interval);
    };
    tx.retransmitTimer = this.setTimer(retransmit, interval);
    tx.timeoutTimer = this.setTimer(() => {
      tx.timeoutTimer = null;
      if (tx.finalSeen) return;
      this.clearTimer(tx.retransmitTimer);
      tx.final.reject(new TimeoutError(`no final response to ${req.method} ${req.uri} within ${this.timeoutMs} ms (${this.user})`));
      if (!tx.isInvite) this.clientTxs.delete(key);
    }, this.timeoutMs);
    return tx;
  }

  /** @internal sends (and remembers, for retransmissions of the request) a response */
  respond(tx: ServerTx, res: SipResponse): Buffer {
    res.set('server', USER_AGENT);
    const buf = res.toBuffer();
    tx.last = buf;
    this.sendSip(buf, tx.peer);
    return buf;
  }

  /** @internal */
  deliverIncoming(call: PhoneCall): void {
    const waiter = this.incomingWaiters.shift();
    if (waiter) waiter.resolve(call);
    else this.incomingQueue.push(call);
    try {
      this.incomingHandler?.(call);
    } catch (e) {
      this.log(`onIncoming handler threw: ${(e as Error).message}`);
    }
  }

  /** @internal */
  log(text: string): void {
    process.stderr.write(`[rtp-phone ${this.user}] ${text}\n`);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`phone ${this.user} is closed`);
  }

  // ---- incoming datagrams

  private onSipDatagram(buf: Buffer, from: Peer): void {
    if (this.closed) return;
    const parsed = parseMessage(buf);
    if (parsed.kind === 'keepalive') return;
    if (this.trace) this.log(`<-- ${from.address}:${from.port}\n${buf.toString('latin1')}`);
    if (parsed.kind === 'error') {
      this.strays.push(`unparsable (${parsed.error.message}): ${buf.toString('latin1').split('\r\n')[0]}`);
      return;
    }
    try {
      const msg: SipMessageAny = parsed.message;
      if (msg.isRequest()) this.onRequest(msg, from);
      else this.onResponse(msg);
    } catch (e) {
      this.strays.push(`failed to handle: ${(e as Error).message}`);
      this.log(`error handling a message: ${(e as Error).stack ?? e}`);
    }
  }

  private onResponse(res: SipResponse): void {
    const tx = this.clientTxs.get(txKey(res.via().params.get('branch'), res.cseq().method));
    if (!tx) {
      this.strays.push(`response matching no request: ${res.status} ${res.cseq().method}`);
      return;
    }
    if (res.status < 200) {
      tx.provisional = true;
    } else {
      if (!tx.finalSeen) {
        tx.finalSeen = true;
        this.clearTimer(tx.retransmitTimer);
        this.clearTimer(tx.timeoutTimer);
        tx.final.resolve(res);
        if (!tx.isInvite) this.clientTxs.delete(txKey(res.via().params.get('branch'), res.cseq().method));
      }
      if (tx.isInvite && res.status >= 300) {
        tx.failureAck ??= buildAckForError(tx.request, res).toBuffer();
        this.sendSip(tx.failureAck);
      }
    }
    tx.onResponse?.(res);
  }

  private onRequest(req: SipRequest, from: Peer): void {
    const branch = req.via().params.get('branch');
    if (req.method === 'ACK') {
      this.callsById.get(req.callId())?.onAck(req);
      return;
    }
    const key = txKey(branch, req.method);
    const known = this.serverTxs.get(key);
    if (known) {
      // a retransmission: the same answer again (or nothing yet)
      if (known.last) this.sendSip(known.last, known.peer);
      return;
    }
    const tx = new ServerTx(from);
    this.serverTxs.set(key, tx);
    const call = this.callsById.get(req.callId());
    const inDialog = req.toTag() !== null;

    switch (req.method) {
      case 'INVITE':
        if (inDialog) {
          if (call && call.matches(req)) call.onReinvite(req, tx);
          else this.respond(tx, makeResponse(req, 481, { toTag: null }));
        } else if (call) {
          // §8.2.2.2: the same request reached us twice (forked to two of our contacts)
          this.respond(tx, makeResponse(req, 482));
        } else {
          this.acceptInvite(req, tx);
        }
        return;
      case 'CANCEL': {
        const invite = call?.inviteFor(branch ?? '');
        this.respond(tx, makeResponse(req, invite ? 200 : 481, { toTag: null }));
        if (invite) call!.onCancel();
        return;
      }
      case 'BYE':
        if (call && inDialog && call.matches(req)) {
          this.respond(tx, makeResponse(req, 200, { toTag: null }));
          call.onBye();
        } else {
          this.respond(tx, makeResponse(req, 481, { toTag: null }));
        }
        return;
      case 'OPTIONS':
        this.respond(tx, makeResponse(req, 200, { toTag: inDialog ? null : undefined, headers: [['Allow', ALLOW], ['Accept', 'application/sdp']] }));
        return;
      case 'INFO':
        this.respond(tx, makeResponse(req, call && inDialog ? 200 : 481, { toTag: null }));
        return;
      default:
        this.respond(tx, makeResponse(req, 405, { toTag: inDialog ? null : undefined, headers: [['Allow', ALLOW]] }));
    }
  }

  private acceptInvite(req: SipRequest, tx: ServerTx): void {
    const call = new PhoneCall(this, 'incoming', req.callId());
    this.callsById.set(call.callId, call);
    this.respond(tx, makeResponse(req, 100));
    if (!call.startIncoming(req, tx)) {
      this.deliverIncoming(call);
      return;
    }
    const auto = this.autoAnswer;
    if (auto?.earlyMedia) call.progress();
    else call.ring();
    this.deliverIncoming(call);
    if (auto && call.state !== 'terminated') {
      const status = auto.status ?? 200;
      call.after(auto.ringMs ?? 0, () => {
        if (call.state === 'terminated' || call.finalSent) return;
        if (status >= 200 && status < 300) call.answer();
        else call.reject(status);
      });
    }
  }
}

function splitHostPort(hostPort: string): [string, number] {
  const m = /^([^:]+):(\d{1,5})$/.exec(hostPort);
  if (!m) throw new Error(`gateway must be 'host:port', got ${JSON.stringify(hostPort)}`);
  return [m[1]!, Number(m[2])];
}

// =============================================================================================
// a call: dialog, offer/answer, and its media

export type CallState = 'calling' | 'ringing' | 'early' | 'confirmed' | 'terminating' | 'terminated';

export interface CallEnd {
  /** who ended it: us (hangup, reject, timeout, close) or the other side (BYE, CANCEL, failure) */
  by: 'local' | 'remote';
  reason: 'bye' | 'cancel' | 'rejected' | 'timeout' | 'no-ack' | 'closed';
  /** the final status involved (the failure, the 487 of a CANCEL, the response to our BYE) */
  status?: number;
}

interface LocalSdp {
  formats: SdpFormat[];
  direction: Direction;
  rtcpMux: boolean;
  sdp: string;
}

/** An INVITE final response we retransmit until its ACK (§13.3.1.4, §17.2.1 timer G). */
interface PendingFinal {
  is2xx: boolean;
  initial: boolean;
  stop(): void;
}

export class PhoneCall {
  state: CallState;
  /** set once the call ended */
  endInfo: CallEnd | null = null;
  /** the SDP we last sent and the one we last received */
  localSdp: string | null = null;
  remoteSdp: string | null = null;
  /** incoming: a final response to the INVITE was sent */
  finalSent = false;

  private readonly media: RtpMedia;
  private readonly answeredD = new Latch<void>();
  private readonly ringingD = new Latch<number>();
  private readonly endedD = new Latch<CallEnd>();
  private readonly callTimers = new Set<NodeJS.Timeout>();

  // dialog state (RFC 3261 §12)
  private readonly localTag: string = newTag();
  private remoteTag: string | null = null;
  /** our From (outgoing) / To (incoming) header value, tag included */
  private localHeader = '';
  /** the other side's, tag included once known */
  private remoteHeader = '';
  private localSeq = randomInt(1, 10_000);
  private remoteSeq: number | null = null;
  private remoteTarget: string | null = null;
  private routeSet: string[] = [];

  // offer/answer (RFC 3264)
  private readonly sessionId = String(randomInt(1, 2 ** 31 - 1));
  private sdpVersion = randomInt(1, 1000);
  private local: LocalSdp | null = null;
  private remote: AudioDescription | null = null;
  /** our offer waiting for its answer */
  private pendingOffer: LocalSdp | null = null;
  /** what we want: sendonly while we hold the call */
  private wanted: Direction = 'sendrecv';

  // outgoing
  private targetUri = '';
  private invite: SipRequest | null = null;
  private inviteTx: ClientTx | null = null;
  private extraHeaders: [string, string][] = [];
  private authTried = false;
  private cancelRequested = false;
  private cancelSent = false;
  /** the ACK of the 2xx, re-sent when the 2xx is retransmitted */
  private ack: Buffer | null = null;
  private reinviteInProgress = false;

  // incoming
  private inviteReq: SipRequest | null = null;
  private inviteServerTx: ServerTx | null = null;
  private initialAnswer: LocalSdp | null = null;
  private readonly pendingFinals = new Map<number, PendingFinal>();

  constructor(
    private readonly phone: RtpPhone,
    readonly direction: 'outgoing' | 'incoming',
    readonly callId: string,
  ) {
    this.state = direction === 'outgoing' ? 'calling' : 'ringing';
    this.media = phone.newMedia();
  }

  /** The INVITE an incoming call arrived with (its headers as the gateway sent them); null for outgoing calls. */
  get request(): SipRequest | null {
    return this.inviteReq;
  }

  // ---- waits

  /** Resolves when the call is answered (outgoing: 2xx received and ACKed; incoming: ACK received). */
  get answered(): Promise<void> {
    return this.waitAnswered();
  }

  waitAnswered(timeoutMs = this.phone.timeoutMs): Promise<void> {
    return within(this.answeredD.promise, timeoutMs, `${this.label} to be answered`);
  }

  /** The first provisional status above 100 (180, 183...). */
  get ringing(): Promise<number> {
    return within(this.ringingD.promise, this.phone.timeoutMs, `${this.label} to ring`);
  }

  /** How the call ended (never rejects, except on timeout). */
  get ended(): Promise<CallEnd> {
    return this.waitEnded();
  }

  waitEnded(timeoutMs = this.phone.timeoutMs): Promise<CallEnd> {
    return within(this.endedD.promise, timeoutMs, `${this.label} to end`);
  }

  private get label(): string {
    return `${this.direction} call ${this.callId} at ${this.phone.user}`;
  }

  // ---- media, as read by tests

  /** All decoded audio received so far (8 kHz for G.711, 16 kHz for G.722). */
  get received(): Int16Array {
    return this.media.audio();
  }

  get receivedRate(): number {
    return this.media.rate;
  }

  get receivedPackets(): readonly ReceivedRtp[] {
    return this.media.packets;
  }

  get receivedSsrcs(): ReadonlySet<number> {
    return this.media.ssrcs;
  }

  /** Address of the last RTP packet received, and every `address:port` RTP came from. */
  get rtpSource(): { address: string; port: number } | null {
    return this.media.lastSource;
  }

  get rtpSources(): ReadonlySet<string> {
    return this.media.sources;
  }

  get rtcpReceived(): number {
    return this.media.rtcpPackets;
  }

  /** Digits received as telephone-events, in order. */
  get dtmfReceived(): string {
    return this.media.dtmf;
  }

  /** The SSRC we send with now. */
  get sentSsrc(): number {
    return this.media.ssrc;
  }

  get sentPackets(): number {
    return this.media.sentPackets;
  }

  /** Where we send RTP (from the remote SDP), or null. */
  get rtpTarget(): { address: string; port: number } | null {
    const r = this.media.plan?.remote;
    return r ? { address: r.address, port: r.port } : null;
  }

  get codec(): CodecName | null {
    return this.media.plan?.codec ?? null;
  }

  /** Direction of our current SDP (after the last offer/answer). */
  get localDirection(): Direction | null {
    return this.local?.direction ?? null;
  }

  get remoteDirection(): Direction | null {
    return this.remote?.direction ?? null;
  }

  /** Decoded audio received, optionally only since a time (Date.now()) or from one SSRC. */
  /** Frames this phone sent more than `minLateMs` late between `since` and `until` (Date.now() ms). */
  lateSends(since: number, until: number, minLateMs: number): number {
    return this.media.lateSends.filter((l) => l.at >= since && l.at <= until && l.lateMs > minLateMs).length;
  }

  audio(sel: AudioSelection = {}): Int16Array {
    return this.media.audio(sel);
  }

  /** detectTone on the decoded audio received (the first 200 ms of the selection skipped). */
  heardTone(freq: number, opts: HeardToneOptions = {}): boolean {
    return this.media.heardTone(freq, opts);
  }

  // ---- media, as driven by tests

  /** RFC 4733 events for each digit (voice paused meanwhile); resolves once all are sent. */
  sendDtmf(digits: string, opts: { durationMs?: number; timeoutMs?: number } = {}): Promise<void> {
    const ms = opts.timeoutMs ?? this.phone.timeoutMs;
    return within(this.media.sendDtmf(digits, opts.durationMs ?? 100), ms, `DTMF '${digits}' to be sent by ${this.phone.user}`);
  }

  /** From the next packet on: a new random SSRC, sequence and timestamp base. Returns the SSRC. */
  /** Stops sending any RTP or RTCP, as a phone whose media died (the call stays up in SIP). */
  stopSending(): void {
    this.media.silent = true;
  }

  changeSsrc(): number {
    return this.media.changeSsrc();
  }

  /** The phone's NAT rebinds: its RTP comes from another port from now on (RtpMedia.rebind). */
  rebindMedia(): Promise<number> {
    return this.media.rebind();
  }

  /** Datagrams received on the port rebindMedia() moved to. */
  get reboundPackets(): number {
    return this.media.reboundPackets;
  }

  // ---- outgoing

  /** @internal */
  startOutgoing(targetUri: string, lateOffer: boolean, headers: [string, string][], fromUri: string): void {
    this.targetUri = targetUri;
    this.extraHeaders = headers;
    this.localHeader = `<${fromUri}>;tag=${this.localTag}`;
    this.remoteHeader = `<${targetUri}>`;
    if (!lateOffer) {
      this.pendingOffer = this.makeOffer(this.wanted);
      this.phone.listenEarly(this.media);
    }
    this.sendInvite(null);
  }

  private sendInvite(auth: [string, string] | null): void {
    const req = buildRequest({
      method: 'INVITE',
      uri: this.targetUri,
      via: this.phone.via(),
      from: this.localHeader,
      to: this.remoteHeader,
      callId: this.callId,
      cseq: this.localSeq,
      contact: this.phone.contact,
      headers: [['Allow', ALLOW], ...this.extraHeaders, ...(auth ? [auth] : [])],
      sdp: this.pendingOffer?.sdp ?? null,
    });
    if (this.pendingOffer) this.localSdp = this.pendingOffer.sdp;
    this.invite = req;
    const tx = this.phone.transact(req, (res) => this.onInviteResponse(res, tx));
    this.inviteTx = tx;
    tx.final.promise.catch((err: Error) => {
      if (this.inviteTx !== tx || this.state === 'terminated' || !(err instanceof TimeoutError)) return;
      // no answer in time: give up like a phone's no-answer timer (CANCEL if it rang)
      this.answeredD.reject(err);
      if (tx.provisional) this.sendCancel();
      this.end({ by: 'local', reason: 'timeout' });
    });
  }

  private onInviteResponse(res: SipResponse, tx: ClientTx): void {
    if (tx !== this.inviteTx && res.status < 200) return;
    const status = res.status;
    if (status === 100) return;
    if (status < 200) {
      if (this.state === 'calling') this.state = 'ringing';
      this.ringingD.resolve(status);
      if (this.cancelRequested) this.sendCancel();
      // early media: an answer in a reliable-enough 18x (we do not do 100rel: take it as is)
      if (res.body.length > 0 && this.pendingOffer && res.toTag() !== null && this.state !== 'terminated') {
        this.state = 'early';
        this.takeAnswer(res.body.toString('latin1'), false);
      }
      return;
    }
    if (status < 300) {
      this.on2xx(res);
      return;
    }
    if ((status === 401 || status === 407) && !this.authTried && tx === this.inviteTx && this.state !== 'terminated') {
      const auth = this.phone.authorize(res, 'INVITE', this.targetUri);
      if (auth) {
        this.authTried = true;
        this.localSeq++;
        this.sendInvite(auth);
        return;
      }
    }
    if (tx !== this.inviteTx || this.state === 'terminated') return;
    this.answeredD.reject(new SipStatusError(status, res.reason, `INVITE ${this.targetUri}`, res));
    const cancelled = this.cancelSent && status === 487;
    this.end(cancelled ? { by: 'local', reason: 'cancel', status } : { by: 'remote', reason: 'rejected', status });
  }

  private on2xx(res: SipResponse): void {
    const tag = res.toTag();
    if (this.remoteTag !== null && tag === this.remoteTag) {
      // a retransmission of the 2xx: our ACK was lost (§13.2.2.4)
      if (this.ack) this.phone.sendSip(this.ack);
      return;
    }
    if (this.remoteTag !== null) {
      // another fork answered too: confirm that dialog and leave it at once (§13.2.2.4)
      this.ackAndByeStray(res);
      return;
    }
    this.remoteTag = tag;
    this.remoteHeader = res.get('to') ?? this.remoteHeader;
    const contact = res.get('contact');
    this.remoteTarget = contact ? uriOf(contact) : this.targetUri;
    // §12.1.2: the route set is the Record-Route of the response, in reverse order
    this.routeSet = res.getAll('record-route').reverse();
    let ackSdp: string | null = null;
    let unacceptable = false;
    if (res.body.length > 0) {
      const text = res.body.toString('latin1');
      if (this.pendingOffer) this.takeAnswer(text, true);
      else {
        // late offer: the 200 carries the offer, our answer goes in the ACK (§13.2.1)
        ackSdp = this.takeOffer(text, 'ack');
        unacceptable = ackSdp === null;
      }
    }
    // the answer came in a 18x already and the 200 repeats nothing: the offer is settled
    if (this.pendingOffer && this.remote) this.pendingOffer = null;
    this.sendAck(this.invite!.cseq().seq, ackSdp);
    if (this.state === 'terminated' || this.cancelRequested || unacceptable) {
      // answered after we gave up (CANCEL crossed the 200, or the no-answer timer), or with
      // an offer we cannot take: confirm, then hang up at once (§13.2.2.4)
      this.state = 'confirmed';
      this.answeredD.reject(new Error(`${this.label}: ${unacceptable ? 'no codec in common with the offer in the 200' : 'answered after it was cancelled'}`));
      void this.sendBye().catch(() => undefined);
      return;
    }
    this.state = 'confirmed';
    this.answeredD.resolve();
  }

  private ackAndByeStray(res: SipResponse): void {
    const contact = res.get('contact');
    const target = contact ? uriOf(contact) : this.targetUri;
    const { uri, routes } = dialogTarget(target, res.getAll('record-route').reverse());
    const base = { uri, routes, from: this.localHeader, to: res.get('to') ?? '', callId: this.callId };
    this.phone.sendSip(buildRequest({ ...base, method: 'ACK', via: this.phone.via(), cseq: res.cseq().seq }).toBuffer());
    this.phone.transact(buildRequest({ ...base, method: 'BYE', via: this.phone.via(), cseq: res.cseq().seq + 1 }));
  }

  private sendAck(cseq: number, sdp: string | null): void {
    const req = this.dialogRequest('ACK', { cseq, sdp });
    this.ack = req.toBuffer();
    this.phone.sendSip(this.ack);
  }

  /** CANCEL the INVITE (§9.1: only once a provisional response came; else when one comes). */
  private sendCancel(): void {
    if (this.cancelSent || !this.invite || !this.inviteTx?.provisional) return;
    this.cancelSent = true;
    this.phone.transact(buildCancel(this.invite));
  }

  // ---- incoming

  /** @internal false when the call was refused at once (no codec in common: 488) */
  startIncoming(req: SipRequest, tx: ServerTx): boolean {
    this.inviteReq = req;
    this.inviteServerTx = tx;
    this.localHeader = `${req.get('to') ?? ''};tag=${this.localTag}`;
    this.remoteHeader = req.get('from') ?? '';
    this.remoteTag = req.fromTag();
    this.remoteSeq = req.cseq().seq;
    const contact = req.get('contact');
    this.remoteTarget = contact ? uriOf(contact) : null;
    // §12.1.1: the route set is the Record-Route of the request, in order
    this.routeSet = req.getAll('record-route');
    if (req.body.length > 0) {
      let offer: AudioDescription;
      try {
        offer = parseSdp(req.body.toString('latin1'));
      } catch {
        this.reject(488);
        return false;
      }
      const formats = answerFormats(offer, this.phone.codecs);
      if (!formats) {
        this.reject(488);
        return false;
      }
      this.remote = offer;
      this.remoteSdp = req.body.toString('latin1');
      this.initialAnswer = this.makeLocal(formats, answerDirection(offer.direction, this.wanted));
    }
    return true;
  }

  /**
   * @internal the INVITE this CANCEL (same branch) is for; the CANCEL gets its 200 even when
   * the INVITE has its final response already, and then changes nothing (§9.2)
   */
  inviteFor(branch: string): SipRequest | null {
    const req = this.inviteReq;
    return req && req.via().params.get('branch') === branch ? req : null;
  }

  /** @internal */
  matches(req: SipRequest): boolean {
    return req.toTag() === this.localTag && (this.remoteTag === null || req.fromTag() === this.remoteTag);
  }

  /** Incoming: 180 Ringing. */
  ring(): void {
    this.provisional(180, null);
  }

  /** Incoming: 183 Session Progress with our SDP answer, and early media from now on. */
  progress(): void {
    if (!this.initialAnswer) return this.ring();
    this.provisional(183, this.initialAnswer);
  }

  private provisional(status: number, sdp: LocalSdp | null): void {
    if (this.direction !== 'incoming' || this.finalSent || this.state === 'terminated') return;
    this.phone.respond(this.inviteServerTx!, this.responseTo(this.inviteReq!, status, sdp?.sdp ?? null));
    if (sdp) {
      this.state = 'early';
      this.adoptLocal(sdp);
    }
  }

  /** Incoming: 200 OK with our SDP (the answer, or an offer if the INVITE had none). */
  answer(): void {
    if (this.direction !== 'incoming') throw new Error('answer() is for incoming calls');
    if (this.finalSent || this.state === 'terminated') return;
    let sdp: LocalSdp;
    if (this.initialAnswer) sdp = this.initialAnswer;
    else {
      sdp = this.makeOffer(this.wanted);
      this.pendingOffer = sdp;
    }
    this.finalSent = true;
    const res = this.responseTo(this.inviteReq!, 200, sdp.sdp);
    if (this.initialAnswer) this.adoptLocal(sdp);
    else this.localSdp = sdp.sdp;
    this.reliableFinal(res, this.inviteServerTx!, this.inviteReq!.cseq().seq, true);
  }

  /** Incoming: a final failure (486 Busy Here by default; 488, 603...). */
  reject(status = 486): void {
    if (this.direction !== 'incoming') throw new Error('reject() is for incoming calls');
    if (this.finalSent || this.state === 'terminated') return;
    this.finalSent = true;
    this.reliableFinal(this.responseTo(this.inviteReq!, status, null), this.inviteServerTx!, this.inviteReq!.cseq().seq, true);
    this.answeredD.reject(new SipStatusError(status, reasonPhrase(status), `${this.label} (rejected here)`));
    this.end({ by: 'local', reason: 'rejected', status });
  }

  /** A response to an INVITE of this dialog: our tag, Contact, Record-Route copied (§12.1.1). */
  private responseTo(req: SipRequest, status: number, sdp: string | null): SipResponse {
    const headers: [string, string][] = [];
    if (status > 100 && status < 300) {
      for (const rr of req.getAll('record-route')) headers.push(['Record-Route', rr]);
      headers.push(['Contact', this.phone.contact], ['Allow', ALLOW]);
    }
    return makeResponse(req, status, {
      toTag: req.toTag() === null ? this.localTag : null,
      headers,
      ...(sdp ? { body: Buffer.from(sdp, 'latin1'), contentType: 'application/sdp' } : {}),
    });
  }

  /**
   * Sends a final response to an INVITE and retransmits it (T1 doubling, capped at T2) until
   * the ACK; with no ACK in timeoutMs, a 2xx that set up the call is followed by a BYE.
   */
  private reliableFinal(res: SipResponse, tx: ServerTx, cseq: number, initial: boolean): void {
    const buf = this.phone.respond(tx, res);
    let interval = T1;
    let timer: NodeJS.Timeout | null = null;
    let giveUp: NodeJS.Timeout | null = null;
    const stop = (): void => {
      this.phone.clearTimer(timer);
      this.phone.clearTimer(giveUp);
      this.pendingFinals.delete(cseq);
    };
    const again = (): void => {
      this.phone.sendSip(buf, tx.peer);
      interval = Math.min(interval * 2, T2);
      timer = this.phone.setTimer(again, interval);
    };
    timer = this.phone.setTimer(again, interval);
    const is2xx = res.status < 300;
    giveUp = this.phone.setTimer(() => {
      giveUp = null;
      stop();
      if (is2xx && initial && this.state !== 'terminated') {
        this.answeredD.reject(new TimeoutError(`no ACK for the 200 of ${this.label} within ${this.phone.timeoutMs} ms`));
        void this.sendBye('no-ack').catch(() => undefined);
      }
    }, this.phone.timeoutMs);
    this.pendingFinals.get(cseq)?.stop();
    this.pendingFinals.set(cseq, { is2xx, initial, stop });
  }

  /** @internal */
  onAck(req: SipRequest): void {
    const pending = this.pendingFinals.get(req.cseq().seq);
    if (!pending) return; // a retransmitted ACK, or one for something we no longer track
    pending.stop();
    if (!pending.is2xx) return;
    if (req.body.length > 0 && this.pendingOffer) this.takeAnswer(req.body.toString('latin1'), true);
    if (pending.initial && this.state !== 'terminated' && this.state !== 'terminating') {
      this.state = 'confirmed';
      this.answeredD.resolve();
    }
  }

  /** @internal CANCEL of our pending INVITE: 487 for it (the CANCEL got its 200 already). */
  onCancel(): void {
    if (this.finalSent || this.state === 'terminated') return;
    this.finalSent = true;
    this.reliableFinal(this.responseTo(this.inviteReq!, 487, null), this.inviteServerTx!, this.inviteReq!.cseq().seq, true);
    this.answeredD.reject(new Error(`${this.label} was cancelled by the caller`));
    this.end({ by: 'remote', reason: 'cancel', status: 487 });
  }

  /** @internal BYE from the other side (answered 200 already). */
  onBye(): void {
    for (const p of [...this.pendingFinals.values()]) if (p.is2xx) p.stop();
    this.answeredD.reject(new Error(`${this.label} ended by BYE before the ACK`));
    this.end({ by: 'remote', reason: 'bye' });
  }

  /** @internal re-INVITE from the other side (hold, resume, a new address or SSRC...). */
  onReinvite(req: SipRequest, tx: ServerTx): void {
    const cseq = req.cseq().seq;
    if (this.remoteSeq !== null && cseq <= this.remoteSeq) {
      this.phone.respond(tx, makeResponse(req, 500, { toTag: null, headers: [['Retry-After', '1']] }));
      return;
    }
    this.remoteSeq = cseq;
    if (this.state === 'terminated' || this.state === 'terminating') {
      this.phone.respond(tx, makeResponse(req, 481, { toTag: null }));
      return;
    }
    if (this.reinviteInProgress || this.pendingOffer) {
      // §14.2: an offer of ours is outstanding (glare)
      this.phone.respond(tx, makeResponse(req, 491, { toTag: null }));
      return;
    }
    // §12.2.2: a target refresh request updates the remote target
    const contact = req.get('contact');
    if (contact) this.remoteTarget = uriOf(contact);
    let sdp: string;
    if (req.body.length > 0) {
      const answer = this.takeOffer(req.body.toString('latin1'), '200');
      if (answer === null) {
        this.phone.respond(tx, makeResponse(req, 488, { toTag: null }));
        return;
      }
      sdp = answer;
    } else {
      // an offer-less re-INVITE: we offer in the 200, the answer comes in the ACK
      this.pendingOffer = this.makeOffer(this.wanted);
      this.localSdp = this.pendingOffer.sdp;
      sdp = this.pendingOffer.sdp;
    }
    this.reliableFinal(this.responseTo(req, 200, sdp), tx, cseq, false);
  }

  // ---- both directions, in the dialog

  /** re-INVITE with a=sendonly (we keep sending the tone); resolves when the 200 came (ACKed). */
  hold(timeoutMs?: number): Promise<void> {
    return this.reinvite('sendonly', timeoutMs);
  }

  /** re-INVITE with a=sendrecv. */
  resume(timeoutMs?: number): Promise<void> {
    return this.reinvite('sendrecv', timeoutMs);
  }

  /** re-INVITE offering `direction`; rejects with a SipStatusError on a failure (the call goes on). */
  async reinvite(direction: Direction, timeoutMs = this.phone.timeoutMs): Promise<void> {
    if (this.state !== 'confirmed') throw new Error(`${this.label}: re-INVITE needs a confirmed call (state ${this.state})`);
    if (this.reinviteInProgress || this.pendingOffer) throw new Error(`${this.label}: an offer is already outstanding`);
    this.reinviteInProgress = true;
    const previousWanted = this.wanted;
    this.wanted = direction;
    const offer = this.makeOffer(direction);
    this.pendingOffer = offer;
    const req = this.dialogRequest('INVITE', { sdp: offer.sdp, contact: true });
    let ack: Buffer | null = null;
    const tx = this.phone.transact(req, (res) => {
      if (res.status < 200 || res.status >= 300) return;
      if (ack === null) {
        ack = this.dialogRequest('ACK', { cseq: req.cseq().seq }).toBuffer();
        if (this.pendingOffer === offer) this.takeAnswer(res.body.toString('latin1'), true);
      }
      this.phone.sendSip(ack);
    });
    try {
      const res = await within(tx.final.promise, timeoutMs, `the response to the re-INVITE (${direction}) of ${this.label}`);
      if (res.status >= 300) throw new SipStatusError(res.status, res.reason, `re-INVITE (${direction}) of ${this.label}`);
    } catch (e) {
      if (this.pendingOffer === offer) {
        this.pendingOffer = null;
        this.wanted = previousWanted;
      }
      throw e;
    } finally {
      this.reinviteInProgress = false;
    }
  }

  /**
   * Ends the call: BYE once it is answered, CANCEL before (outgoing), a 603 for an incoming
   * call not answered yet. Resolves with how it ended.
   */
  async hangup(timeoutMs = this.phone.timeoutMs): Promise<CallEnd> {
    if (this.state === 'terminated' || this.state === 'terminating') return this.waitEnded(timeoutMs);
    if (this.direction === 'incoming' && !this.finalSent) {
      this.reject(603);
      return this.waitEnded(timeoutMs);
    }
    if (this.direction === 'outgoing' && this.state !== 'confirmed') {
      this.cancelRequested = true;
      this.sendCancel();
      return this.waitEnded(timeoutMs);
    }
    if (this.state !== 'confirmed') {
      // §15: the callee MUST NOT send a BYE before the ACK of its 2xx (or its retransmissions
      // gave up, which sends the BYE itself)
      await this.answeredD.promise.catch(() => undefined);
      if ((this.state as CallState) !== 'confirmed') return this.waitEnded(timeoutMs);
    }
    await this.sendBye('bye', timeoutMs);
    return this.waitEnded(timeoutMs);
  }

  private async sendBye(reason: 'bye' | 'no-ack' = 'bye', timeoutMs = this.phone.timeoutMs): Promise<void> {
    this.state = 'terminating';
    this.stopMedia();
    for (const p of [...this.pendingFinals.values()]) p.stop();
    const tx = this.phone.transact(this.dialogRequest('BYE', {}));
    try {
      const res = await within(tx.final.promise, timeoutMs, `the response to the BYE of ${this.label}`);
      this.end({ by: 'local', reason, status: res.status });
    } catch (e) {
      this.end({ by: 'local', reason });
      throw e;
    }
  }

  /** @internal phone closing: say goodbye without waiting, end locally. */
  abandon(): void {
    if (this.state === 'terminated') return;
    try {
      if (this.state === 'confirmed' && this.remoteTarget) this.phone.sendSip(this.dialogRequest('BYE', {}).toBuffer());
      else if (this.direction === 'outgoing' && this.invite && this.inviteTx?.provisional) this.phone.sendSip(buildCancel(this.invite).toBuffer());
      else if (this.direction === 'incoming' && !this.finalSent && this.inviteReq && this.inviteServerTx) {
        this.phone.respond(this.inviteServerTx, this.responseTo(this.inviteReq, 480, null));
      }
    } catch {
      // best effort
    }
    this.answeredD.reject(new Error(`${this.label}: phone closed`));
    this.end({ by: 'local', reason: 'closed' });
  }

  /** @internal a timer of this call, cleared when it ends */
  after(ms: number, fn: () => void): void {
    const t = this.phone.setTimer(() => {
      this.callTimers.delete(t!);
      fn();
    }, ms);
    if (t) this.callTimers.add(t);
  }

  /** A request inside the dialog (§12.2.1.1), sent to the gateway. */
  private dialogRequest(method: string, o: { cseq?: number; sdp?: string | null; contact?: boolean }): SipRequest {
    if (!this.remoteTarget) throw new Error(`${this.label}: no dialog yet`);
    const { uri, routes } = dialogTarget(this.remoteTarget, this.routeSet);
    return buildRequest({
      method,
      uri,
      via: this.phone.via(),
      from: this.localHeader,
      to: this.remoteHeader,
      callId: this.callId,
      cseq: o.cseq ?? ++this.localSeq,
      routes,
      ...(o.contact ? { contact: this.phone.contact, headers: [['Allow', ALLOW]] as [string, string][] } : {}),
      sdp: o.sdp ?? null,
    });
  }

  // ---- offer/answer

  private makeLocal(formats: SdpFormat[], direction: Direction): LocalSdp {
    const rtcpMux = this.phone.rtcpMux;
    const sdp = buildSdp({ sessionId: this.sessionId, version: ++this.sdpVersion, address: this.phone.sdpAddress, port: this.phone.rtpPort, formats, direction, rtcpMux });
    return { formats, direction, rtcpMux, sdp };
  }

  /** An offer: our codecs (the one in use first), telephone-event. */
  private makeOffer(direction: Direction): LocalSdp {
    const current = this.media.plan?.codec;
    const codecs = current ? [current, ...this.phone.codecs.filter((c) => c !== current)] : [...this.phone.codecs];
    return this.makeLocal(offerFormats(codecs), direction);
  }

  /** The remote answer to our pending offer: adopt both and (re)plan the media. */
  private takeAnswer(text: string, final: boolean): void {
    const offer = this.pendingOffer;
    if (!offer) return;
    try {
      this.remote = parseSdp(text);
      this.remoteSdp = text;
    } catch (e) {
      this.phone.log(`bad SDP answer in ${this.label}: ${(e as Error).message}`);
      return;
    }
    if (final) this.pendingOffer = null;
    this.adoptLocal(offer);
  }

  /** A remote offer (200 of a late-offer INVITE, or a re-INVITE): our answer, or null for 488. */
  private takeOffer(text: string, where: 'ack' | '200'): string | null {
    let offer: AudioDescription;
    try {
      offer = parseSdp(text);
    } catch {
      return null;
    }
    const formats = answerFormats(offer, this.phone.codecs);
    if (!formats) {
      this.phone.log(`no codec in common in the offer of the ${where === 'ack' ? '200' : 're-INVITE'} of ${this.label}`);
      return null;
    }
    this.remote = offer;
    this.remoteSdp = text;
    const local = this.makeLocal(formats, answerDirection(offer.direction, this.wanted));
    this.adoptLocal(local);
    return local.sdp;
  }

  /** Our SDP is now `local`: replan the media against the remote one and start it. */
  private adoptLocal(local: LocalSdp): void {
    this.local = local;
    this.localSdp = local.sdp;
    if (!this.remote || this.state === 'terminated' || this.state === 'terminating') return;
    const plan = planMedia(local, this.remote);
    if (!plan) {
      this.phone.log(`no codec in common between our SDP and the remote one in ${this.label}`);
      return;
    }
    this.media.apply(plan);
    this.phone.ownMedia(this.media);
  }

  private stopMedia(): void {
    this.media.stop();
    this.phone.releaseMedia(this.media);
  }

  private end(info: CallEnd): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.endInfo ??= info;
    for (const t of this.callTimers) this.phone.clearTimer(t);
    this.callTimers.clear();
    this.stopMedia();
    const why = new Error(`${this.label} ended (${info.by} ${info.reason}${info.status ? ` ${info.status}` : ''})`);
    this.answeredD.reject(why);
    this.ringingD.reject(why);
    this.endedD.resolve(this.endInfo);
  }
}

/**
 * The usual pair of the integration tests, both registered with `gateway` (host:port): alice
 * (tone 440 Hz) calls, bob (tone 880 Hz) answers on his own. `alice`/`bob` override options.
 */
export async function registeredPair(
  gateway: string,
  o: { alice?: Partial<RtpPhoneOptions>; bob?: Partial<RtpPhoneOptions> } = {},
): Promise<{ alice: RtpPhone; bob: RtpPhone }> {
  const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway, tone: 440, ...o.alice });
  const bob = await RtpPhone.start({ user: 'bob', password: 'pw-bob', gateway, tone: 880, autoAnswer: { ringMs: 0 }, ...o.bob }).catch(async (e: unknown) => {
    await alice.close();
    throw e;
  });
  await alice.register();
  await bob.register();
  return { alice, bob };
}
