/**
 * A real WebRTC peer for JsSIP in Node: the RTCPeerConnection surface JsSIP uses, backed by
 * werift's RTCPeerConnection (pure TypeScript ICE, DTLS, SRTP), sending and receiving audio
 * like a browser tab with a microphone that plays a tone.
 *
 *   const alicePc = weriftPeerFactory({ toneHz: 440, label: 'alice' });
 *   const alice = await JsSipUa.start({ wsUrl, user: 'alice', ..., peerConnectionFactory: alicePc });
 *   const call = alice.call('sip:bob@127.0.0.1');
 *   await call.confirmed;
 *   const peer = peerOf(call);                 // the WeriftPeer JsSIP built for this call
 *   await peer.waitConnected();                // ICE + DTLS up
 *   await peer.waitForAudio(1000);             // 1 s of decoded audio received
 *   peer.heardTone(880);                       // frequency analysis of what arrived
 *   peer.sendDtmf('5*');                       // RFC 4733 on the negotiated telephone-event PT
 *   await holdCall(call); await resumeCall(call);   // JsSIP re-INVITEs (a=sendonly, then sendrecv)
 *
 * What it does, and how (werift 0.25.2):
 * - Loopback only: `iceUseIpv4/6: false` turns off werift's interface scan, and
 *   `iceAdditionalHostAddresses: ['127.0.0.1']` + `iceInterfaceAddresses` give exactly one
 *   host candidate, on 127.0.0.1 (no global os.networkInterfaces override needed, unlike the
 *   rtpengine anchor). werift writes `c=IN IP4 0.0.0.0` / `m=audio 9` even after gathering;
 *   the description handed to JsSIP carries the candidate's address and port there, as
 *   Chrome's does once gathering is complete.
 * - Offers a sendrecv audio m-line like Chrome: opus/48000/2 (111), PCMU (0), PCMA (8),
 *   telephone-event/48000 (110) and /8000 (126) (other numbers with `payloadTypes`, e.g.
 *   Firefox's opus 109), rtcp-mux, BUNDLE, `a=setup:actpass`, and the
 *   `urn:ietf:params:rtp-hdrext:sdes:mid` header extension. Renegotiation (JsSIP's hold and
 *   unhold re-INVITEs, either side) goes through werift's createOffer/createAnswer and
 *   set*Description again on the same transceiver, transports and SSRC.
 * - Sends, once DTLS is up and while the negotiated direction allows it, one packet every
 *   20 ms on the transceiver's sender (`RTCRtpSender.sendRtp`): a tone (default 440 Hz)
 *   encoded in the codec werift negotiated for sending (opus 48 kHz mono through
 *   server/audio/opus.ts, PCMU/PCMA through g711.ts); silence while JsSIP has muted the
 *   track. The SSRC is the sender's, stable for the whole call (re-INVITEs included).
 * - Receives every SRTP packet of the DTLS transport itself (`RTCDtlsTransport.onRtp`):
 *   werift's own RtpRouter only delivers SSRCs announced in the remote SDP (or RIDs) and
 *   silently drops the rest, while the gateway's consumer SSRC is not announced and changes
 *   when the far phone changes SSRC. A packet is this m-line's when its MID header extension
 *   names our mid, or when it carries no MID (we have a single audio m-line). It is decoded by
 *   payload type, as our own description numbers them (what a browser does; a payload type
 *   we never offered or answered is counted in `stats.unknownPtPackets` and dropped): opus to
 *   48 kHz (or 16 kHz) mono, PCMU/PCMA to 8 kHz, telephone-event to digits.
 *
 * - JsSIP's own paths work too: mute/hold disable `sender.track` (silence is sent, as a
 *   browser does), and `session.sendDTMF(tones, { transportType: 'RFC2833' })` reaches
 *   `sender.dtmf.insertDTMF`.
 *
 * Test API (besides the RTCPeerConnection surface): `connected` / `waitConnected()`,
 * `iceConnectionState`, `connectionState`, `dtlsState`, `dtlsRole`, `currentDirection`,
 * `sendCodec`, `ssrc`; received audio as `chunks`, `received` (Int16Array at `sampleRate`),
 * `audio({ since })`, `heardTone(freq, { since })`, `rms()`, `dominantFrequency()`,
 * `waitForAudio(ms, { since })`; `packetCount`, `ssrcsSeen`, `stats`; DTMF with
 * `sendDtmf(digits)`, `dtmfSent`, `dtmfReceived`, `waitForDtmf(digits)`; `describe()` for
 * assertion messages; `localSdps` / `remoteSdps` / `stateLog` / `errors` for diagnosis.
 * `weriftPeerFactory(options)` is the `peerConnectionFactory` for JsSipUa (its `peers`,
 * `last()`, `closeAll()`), `peerOf(call)` finds a call's peer, `holdCall` / `resumeCall` drive
 * JsSIP's hold()/unhold() and resolve once the answer is applied.
 *
 * Every wait is bounded (default 10 s). `close()` (JsSIP calls it when the call ends) stops
 * the timers, frees the codecs and closes werift's sockets; `closed` resolves when done.
 */
import { randomUUID } from 'node:crypto';
import sdpTransform from 'sdp-transform';
import {
  MediaStreamTrack as WeriftTrack,
  RTCPeerConnection as WeriftPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  useSdesMid,
  type RTCDtlsTransport,
  type RTCRtpCodecParameters as CodecParams,
  type RTCRtpTransceiver,
} from 'werift';
import { digitPackets, DtmfReceiver } from '../../server/audio/dtmf.js';
import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from '../../server/audio/g711.js';
import { OpusDecoder, OpusEncoder } from '../../server/audio/opus.js';
import { detectTone, dominantFrequency, ToneGenerator } from '../../server/audio/tone.js';
import {
  TimeoutError,
  within,
  type JsSipCall,
  type MediaStreamTrackLike,
  type PeerConnectionConfig,
  type PeerConnectionFactory,
  type RTCPeerConnectionLike,
  type SessionDescriptionLike,
} from './jssip-ua.js';
import { Latch } from './latch.js';
import type { RtpArrival } from './rtp-phone.js';

export const MID_EXT_URI = 'urn:ietf:params:rtp-hdrext:sdes:mid';
const DEFAULT_TIMEOUT_MS = 10_000;
const FRAME_MS = 20;

export type WeriftAudioCodec = 'opus' | 'PCMU' | 'PCMA';

export interface WeriftPeerOptions {
  /** the tone sent, Hz (default 440) */
  toneHz?: number;
  /** its peak amplitude (default 8000, about -12 dBFS) */
  amplitude?: number;
  /** audio codecs offered/accepted, in preference order (default opus, PCMU, PCMA) */
  codecs?: WeriftAudioCodec[];
  /** offer/accept telephone-event (default true) */
  telephoneEvent?: boolean;
  /**
   * dynamic payload types offered (default Chrome's: opus 111, telephone-event/48000 110,
   * telephone-event/8000 126; Firefox uses opus 109, telephone-event 101)
   */
  payloadTypes?: { opus?: number; telephoneEvent48k?: number; telephoneEvent8k?: number };
  /** rate received opus is decoded at (default 48000) */
  opusDecodeRate?: 48000 | 16000;
  /** leading audio heardTone() ignores, ms after the first packet of each SSRC (default 200) */
  ignoreStartMs?: number;
  /** send the tone at all (default true) */
  send?: boolean;
  /** a name for messages (default 'werift') */
  label?: string;
  /** default for every wait, ms (default 10 s) */
  timeoutMs?: number;
}

/** One decoded packet, as it arrived. */
export interface ReceivedChunk {
  /** Date.now() at arrival */
  at: number;
  ssrc: number;
  payloadType: number;
  rate: number;
  pcm: Int16Array;
}

/** One RTP packet as decrypted (SRTP) and accepted (its MID ours), in arrival order. */
export interface ReceivedRtpPacket extends RtpArrival {
  /** the first bytes of the payload (at most 16: enough for a stamp, see rtp-phone's payloadStamp) */
  payloadHead: Buffer;
}

/** How many packets `rtpPackets` keeps (10 minutes at 50 packets/s); later ones are only counted. */
const MAX_RECORDED_PACKETS = 30_000;

export interface WeriftPeerStats {
  packetsSent: number;
  dtmfPacketsSent: number;
  /** packets the sender refused (no codec, DTLS not up) are not counted in packetsSent */
  packetsReceived: number;
  bytesReceived: number;
  /** packets decoded into `received` */
  audioPacketsReceived: number;
  dtmfPacketsReceived: number;
  /** packets whose MID named another m-line */
  foreignMidPackets: number;
  /** packets with a payload type our own SDP does not map (or we cannot decode) */
  unknownPtPackets: number;
  decodeErrors: number;
  /** packets per SSRC seen, in order of first appearance */
  ssrcs: Map<number, number>;
  /** packets per payload type */
  payloadTypes: Map<number, number>;
}

type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

interface CodecEntry {
  name: string;
  rate: number;
  channels: number;
}

/** What JsSIP sees as an RTCRtpSender: the track it added (mute toggles `track.enabled`) and `dtmf`. */
export interface SenderShim {
  track: MediaStreamTrackLike | null;
  readonly dtmf: DtmfSenderShim;
  replaceTrack(t: MediaStreamTrackLike | null): Promise<void>;
  getParameters(): { encodings: { ssrc?: number }[] };
}

/** RTCDTMFSender's surface (JsSIP's RFC2833 transport calls insertDTMF). */
export interface DtmfSenderShim {
  readonly canInsertDTMF: boolean;
  readonly toneBuffer: string;
  ontonechange: ((ev: { tone: string }) => void) | null;
  insertDTMF(tones: string, duration?: number, interToneGap?: number): void;
}

interface PendingDigit {
  digit: string;
  durationMs: number;
  gapMs: number;
}

/** Browser-like codecs, with Chrome's payload types unless told otherwise. */
function codecParameters(codecs: WeriftAudioCodec[], telephoneEvent: boolean, pts: WeriftPeerOptions['payloadTypes'] = {}): RTCRtpCodecParameters[] {
  const out: RTCRtpCodecParameters[] = [];
  for (const c of codecs) {
    if (c === 'opus') out.push(new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: pts.opus ?? 111, parameters: 'minptime=10;useinbandfec=1' }));
    if (c === 'PCMU') out.push(new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, payloadType: 0 }));
    if (c === 'PCMA') out.push(new RTCRtpCodecParameters({ mimeType: 'audio/PCMA', clockRate: 8000, payloadType: 8 }));
  }
  if (telephoneEvent) {
    if (codecs.includes('opus')) out.push(new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 48000, payloadType: pts.telephoneEvent48k ?? 110, parameters: '0-16' }));
    out.push(new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, payloadType: pts.telephoneEvent8k ?? 126, parameters: '0-16' }));
  }
  return out;
}

/**
 * werift options of a browser on loopback: host candidates on 127.0.0.1 only (no STUN, no
 * other interface), BUNDLE, and the MID header extension browsers send.
 */
export const LOOPBACK_PEER = {
  headerExtensions: { audio: [useSdesMid()], video: [] },
  iceServers: [],
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceUseTcp: false,
  iceAdditionalHostAddresses: ['127.0.0.1'],
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  bundlePolicy: 'max-bundle' as const,
};

/**
 * werift writes `c=IN IP4 0.0.0.0` and `m=audio 9` whatever it gathered; a browser's final
 * description (what JsSIP sends once gathering is complete) names the default candidate there.
 * Also keeps only 127.x host candidates (there should be no other).
 */
export function browserLikeLocalSdp(sdp: string): string {
  const parsed = sdpTransform.parse(sdp);
  for (const m of parsed.media) {
    const cands = (m.candidates ?? []).filter((c) => /^127\./.test(c.ip) && c.transport.toLowerCase() === 'udp');
    m.candidates = cands;
    const first = cands[0];
    if (first && m.port === 9) {
      m.port = first.port;
      m.connection = { version: 4, ip: first.ip };
      if (m.rtcp) m.rtcp = { port: first.port, netType: 'IN', ipVer: 4, address: first.ip };
    }
  }
  const firstCand = parsed.media.flatMap((m) => m.candidates ?? [])[0];
  if (firstCand && parsed.origin) parsed.origin.address = firstCand.ip;
  return sdpTransform.write(parsed);
}

function readCodecMap(sdp: string | undefined): { map: Map<number, CodecEntry>; midExtId: number | null; mid: string | null; direction: Direction } {
  const map = new Map<number, CodecEntry>([
    [0, { name: 'pcmu', rate: 8000, channels: 1 }],
    [8, { name: 'pcma', rate: 8000, channels: 1 }],
  ]);
  if (!sdp) return { map, midExtId: null, mid: null, direction: 'sendrecv' };
  const parsed = sdpTransform.parse(sdp);
  const m = parsed.media.find((x) => x.type === 'audio' && x.port !== 0) ?? parsed.media.find((x) => x.type === 'audio');
  for (const r of m?.rtp ?? []) map.set(r.payload, { name: r.codec.toLowerCase(), rate: r.rate ?? 8000, channels: r.encoding ? Number(r.encoding) : 1 });
  const ext = (m?.ext ?? []).find((e) => e.uri === MID_EXT_URI);
  const direction = (m?.direction ?? (parsed as { direction?: Direction }).direction ?? 'sendrecv') as Direction;
  return { map, midExtId: ext ? ext.value : null, mid: m?.mid !== undefined ? String(m.mid) : null, direction };
}

/**
 * An RTCPeerConnection for JsSIP, backed by werift, with a tone generator as microphone and a
 * decoder + recorder as loudspeaker.
 */
export class WeriftPeer extends EventTarget implements RTCPeerConnectionLike {
  readonly id = randomUUID();
  readonly label: string;
  readonly toneHz: number;
  readonly pc: WeriftPeerConnection;
  readonly timeoutMs: number;
  /** what JsSIP gave as pcConfig (iceServers are ignored: loopback host candidates only) */
  readonly config: PeerConnectionConfig;

  /** decoded audio, packet by packet, in arrival order */
  readonly chunks: ReceivedChunk[] = [];
  /** every RTP packet received (decrypted, our MID), in arrival order, up to MAX_RECORDED_PACKETS */
  readonly rtpPackets: ReceivedRtpPacket[] = [];
  /** digits received as RFC 4733 events, in order */
  dtmfReceived = '';
  /** digits sent (each once its final packets went out) */
  dtmfSent = '';
  readonly stats: WeriftPeerStats = {
    packetsSent: 0,
    dtmfPacketsSent: 0,
    packetsReceived: 0,
    bytesReceived: 0,
    audioPacketsReceived: 0,
    dtmfPacketsReceived: 0,
    foreignMidPackets: 0,
    unknownPtPackets: 0,
    decodeErrors: 0,
    ssrcs: new Map(),
    payloadTypes: new Map(),
  };
  /** ICE/DTLS/signaling state changes, in order ('ice:checking', 'dtls:connected', 'conn:connected'...) */
  readonly stateLog: string[] = [];
  /** every description applied: remote as received; local as werift made it, in the form handed to JsSIP (JsSIP may still rewrite its direction on hold) */
  readonly localSdps: string[] = [];
  readonly remoteSdps: string[] = [];
  /** errors from the send loop and the receive path (never thrown into werift or JsSIP) */
  readonly errors: unknown[] = [];

  private readonly opts: Required<Omit<WeriftPeerOptions, 'label' | 'timeoutMs' | 'toneHz' | 'payloadTypes'>>;
  private transceiver: RTCRtpTransceiver | null = null;
  private readonly localTrack = new WeriftTrack({ kind: 'audio' });
  private senderShim: SenderShim | null = null;
  private readonly connectedL = new Latch<void>();
  private readonly closedL = new Latch<void>();
  private closing = false;
  private readonly watchedTransports = new WeakSet<RTCDtlsTransport>();
  private readonly unsubscribers: (() => void)[] = [];

  // receive side
  private remoteCodecs = readCodecMap(undefined);
  private localCodecs = readCodecMap(undefined);
  private localMid: string | null = null;
  private opusDecoder: OpusDecoder | null = null;
  private opusDecoderSsrc: number | null = null;
  private readonly dtmfReceivers = new Map<number, DtmfReceiver>();
  private readonly firstPacketAt = new Map<number, number>();
  private readonly audioWaiters = new Set<() => void>();

  // send side
  private timer: NodeJS.Timeout | null = null;
  private nextSendAt = 0;
  private seq = Math.floor(Math.random() * 0x10000);
  private timestamp = Math.floor(Math.random() * 0x1_0000_0000);
  private encoderFor: string | null = null;
  private opusEncoder: OpusEncoder | null = null;
  private tone: ToneGenerator | null = null;
  private readonly dtmfQueue: PendingDigit[] = [];
  private dtmfActive: { digit: string; packets: ReturnType<typeof digitPackets>; next: number; timestamp: number; gapSlots: number } | null = null;
  private dtmfShimBuffer = '';

  constructor(config: PeerConnectionConfig = {}, options: WeriftPeerOptions = {}) {
    super();
    this.config = config;
    this.label = options.label ?? 'werift';
    this.toneHz = options.toneHz ?? 440;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.opts = {
      amplitude: options.amplitude ?? 8000,
      codecs: options.codecs ?? ['opus', 'PCMU', 'PCMA'],
      telephoneEvent: options.telephoneEvent ?? true,
      opusDecodeRate: options.opusDecodeRate ?? 48000,
      ignoreStartMs: options.ignoreStartMs ?? 200,
      send: options.send ?? true,
    };
    this.pc = new WeriftPeerConnection({
      codecs: { audio: codecParameters(this.opts.codecs, this.opts.telephoneEvent, options.payloadTypes), video: [] },
      ...LOOPBACK_PEER,
    });
    this.watch(this.pc.iceConnectionStateChange.subscribe((s) => {
      this.stateLog.push(`ice:${s}`);
      this.fire('iceconnectionstatechange');
    }));
    this.watch(this.pc.iceGatheringStateChange.subscribe((s) => {
      this.stateLog.push(`gathering:${s}`);
      this.fire('icegatheringstatechange');
    }));
    this.watch(this.pc.signalingStateChange.subscribe((s) => {
      this.stateLog.push(`signaling:${s}`);
      this.fire('signalingstatechange');
    }));
    this.watch(this.pc.connectionStateChange.subscribe((s) => {
      this.stateLog.push(`conn:${s}`);
      this.fire('connectionstatechange');
      if (s === 'connected') {
        this.connectedL.resolve();
        this.startSending();
      } else if (s === 'failed') {
        this.connectedL.reject(new Error(`${this.label}: connection failed (${this.stateLog.join(' ')})`));
      }
    }));
    this.watch(this.pc.onIceCandidate.subscribe((c) => {
      // JsSIP waits for the null candidate (or gathering 'complete') before sending its SDP
      const candidate = c ? { candidate: `candidate:${c.candidate.replace(/^candidate:/, '')}`, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null } : null;
      this.fire('icecandidate', { candidate });
    }));
  }

  // -------------------------------------------------------------------------------------------
  // RTCPeerConnection surface (what JsSIP 3.13.8 uses)

  get localDescription(): SessionDescriptionLike | null {
    const d = this.pc.localDescription;
    return d ? { type: d.type as SessionDescriptionLike['type'], sdp: browserLikeLocalSdp(d.sdp) } : null;
  }

  get remoteDescription(): SessionDescriptionLike | null {
    const d = this.pc.remoteDescription;
    return d ? { type: d.type as SessionDescriptionLike['type'], sdp: d.sdp } : null;
  }

  get signalingState(): string {
    return this.pc.signalingState;
  }

  get iceGatheringState(): string {
    return this.pc.iceGatheringState;
  }

  get iceConnectionState(): string {
    return this.pc.iceConnectionState;
  }

  get connectionState(): string {
    return this.pc.connectionState;
  }

  /** the DTLS transport's state ('new', 'connecting', 'connected', 'failed', 'closed') */
  get dtlsState(): string {
    return this.transceiver?.dtlsTransport?.state ?? 'new';
  }

  /** our DTLS role once negotiated ('client' / 'server'), for diagnostics */
  get dtlsRole(): string | null {
    return (this.transceiver?.dtlsTransport?.role as string | undefined) ?? null;
  }

  /** resolves once ICE and DTLS are connected; rejects if the connection fails */
  get connected(): Promise<void> {
    return this.connectedL.promise;
  }

  /** resolves once close() has finished closing werift */
  get closed(): Promise<void> {
    return this.closedL.promise;
  }

  get isClosed(): boolean {
    return this.closing;
  }

  async createOffer(_options?: unknown): Promise<SessionDescriptionLike> {
    this.ensureTransceiver();
    const o = await this.pc.createOffer();
    return { type: 'offer', sdp: o.sdp };
  }

  async createAnswer(_options?: unknown): Promise<SessionDescriptionLike> {
    this.ensureTransceiver();
    const a = await this.pc.createAnswer();
    return { type: 'answer', sdp: a.sdp };
  }

  async setLocalDescription(desc?: SessionDescriptionLike): Promise<void> {
    this.assertOpen('setLocalDescription');
    this.ensureTransceiver();
    if (desc) await this.pc.setLocalDescription({ type: desc.type as 'offer' | 'answer', sdp: desc.sdp });
    else await this.pc.setLocalDescription();
    const local = this.pc.localDescription?.sdp;
    if (local) {
      this.localSdps.push(browserLikeLocalSdp(local));
      this.localCodecs = readCodecMap(local);
      this.localMid = this.localCodecs.mid;
    }
    this.afterNegotiation();
  }

  async setRemoteDescription(desc: SessionDescriptionLike): Promise<void> {
    this.assertOpen('setRemoteDescription');
    this.ensureTransceiver();
    this.remoteSdps.push(desc.sdp);
    await this.pc.setRemoteDescription({ type: desc.type as 'offer' | 'answer', sdp: desc.sdp });
    this.remoteCodecs = readCodecMap(desc.sdp);
    this.afterNegotiation();
  }

  addTrack(track: unknown, ..._streams: unknown[]): unknown {
    this.assertOpen('addTrack');
    this.ensureTransceiver();
    const shim = this.senderShim!;
    shim.track = track as MediaStreamTrackLike;
    return shim;
  }

  getSenders(): readonly unknown[] {
    return this.senderShim ? [this.senderShim] : [];
  }

  getReceivers(): readonly unknown[] {
    return this.transceiver ? [this.transceiver.receiver] : [];
  }

  getTransceivers(): readonly unknown[] {
    return this.transceiver ? [this.transceiver] : [];
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

  /** Stops media, frees the codecs and closes werift (asynchronously: await `closed`). */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.stopSending();
    for (const u of this.unsubscribers.splice(0)) u();
    this.connectedL.reject(new Error(`${this.label}: closed before connecting`));
    for (const w of [...this.audioWaiters]) w();
    this.opusEncoder?.destroy();
    this.opusEncoder = null;
    this.opusDecoder?.destroy();
    this.opusDecoder = null;
    void this.pc
      .close()
      .catch((e: unknown) => this.errors.push(e))
      .finally(() => this.closedL.resolve());
  }

  // -------------------------------------------------------------------------------------------
  // test API

  /** our sender's SSRC (stable for the call) */
  get ssrc(): number {
    return this.transceiver?.sender.ssrc ?? 0;
  }

  /** the codec werift sends with (null before negotiation) */
  get sendCodec(): string | null {
    return this.transceiver?.sender.codec?.name.toLowerCase() ?? null;
  }

  /** the negotiated direction of the audio m-line (null before an answer) */
  get currentDirection(): string | null {
    return this.transceiver?.currentDirection ?? null;
  }

  /** SSRCs seen on the audio m-line, in order of first appearance */
  get ssrcsSeen(): number[] {
    return [...this.stats.ssrcs.keys()];
  }

  /** packets received (audio + DTMF), all SSRCs */
  get packetCount(): number {
    return this.stats.packetsReceived;
  }

  /** the rate of the latest decoded audio (8000, 16000 or 48000; 0 before any) */
  get sampleRate(): number {
    return this.chunks.at(-1)?.rate ?? 0;
  }

  /** all decoded audio at the latest rate, concatenated (chunks at another rate are left out) */
  get received(): Int16Array {
    return this.audio().pcm;
  }

  /**
   * Decoded audio received at or after `since` (Date.now() ms; default: all), skipping the
   * first `ignoreStartMs` after each SSRC's first packet, at the latest chunk's rate.
   */
  audio(opts: { since?: number; ignoreStartMs?: number } = {}): { rate: number; pcm: Int16Array; packets: number } {
    const since = opts.since ?? 0;
    const ignore = opts.ignoreStartMs ?? 0;
    const rate = this.sampleRate;
    const picked = this.chunks.filter((c) => c.rate === rate && c.at >= since && c.at >= (this.firstPacketAt.get(c.ssrc) ?? 0) + ignore);
    const total = picked.reduce((n, c) => n + c.pcm.length, 0);
    const pcm = new Int16Array(total);
    let off = 0;
    for (const c of picked) {
      pcm.set(c.pcm, off);
      off += c.pcm.length;
    }
    return { rate, pcm, packets: picked.length };
  }

  /** Is `freq` (+- toleranceHz, default 15) the tone in what arrived (after `since`, minus the first ~200 ms)? */
  heardTone(freq: number, opts: { since?: number; toleranceHz?: number } = {}): boolean {
    const a = this.audio({ ...(opts.since !== undefined ? { since: opts.since } : {}), ignoreStartMs: this.opts.ignoreStartMs });
    if (a.pcm.length < a.rate / 10) return false;
    return detectTone(a.pcm, a.rate, freq, opts.toleranceHz ?? 15);
  }

  /** The strongest frequency in what arrived (default: the last second; NaN for none), for assertion messages. */
  dominantFrequency(opts: { since?: number } = {}): number {
    const a = this.audio({ since: opts.since ?? Date.now() - 1000, ignoreStartMs: this.opts.ignoreStartMs });
    return a.pcm.length > 0 ? dominantFrequency(a.pcm, a.rate, { max: Math.min(4000, a.rate / 2 - 50) }) : Number.NaN;
  }

  /** RMS level of what arrived at or after `since` (0 for silence or nothing). */
  rms(opts: { since?: number } = {}): number {
    const a = this.audio(opts.since !== undefined ? { since: opts.since } : {});
    let acc = 0;
    for (const v of a.pcm) acc += v * v;
    return a.pcm.length > 0 ? Math.sqrt(acc / a.pcm.length) : 0;
  }

  /** A one-line summary for assertion messages. */
  describe(): string {
    const s = this.stats;
    return (
      `${this.label}: conn ${this.connectionState} ice ${this.iceConnectionState} dtls ${this.dtlsState} (${this.dtlsRole ?? '-'}), ` +
      `dir ${this.currentDirection ?? '-'}, send ${this.sendCodec ?? '-'} ssrc ${this.ssrc}, sent ${s.packetsSent} (+${s.dtmfPacketsSent} dtmf), ` +
      `received ${s.packetsReceived} (audio ${s.audioPacketsReceived}, dtmf ${s.dtmfPacketsReceived}, foreign mid ${s.foreignMidPackets}, unknown pt ${s.unknownPtPackets}, decode errors ${s.decodeErrors}), ` +
      `ssrcs [${[...s.ssrcs].map(([k, v]) => `${k}:${v}`).join(' ')}], pts [${[...s.payloadTypes].map(([k, v]) => `${k}:${v}`).join(' ')}], ` +
      `last second: ${this.dominantFrequency().toFixed(0)} Hz rms ${this.rms({ since: Date.now() - 1000 }).toFixed(0)}, dtmf in '${this.dtmfReceived}'`
    );
  }

  /** Waits until ICE and DTLS are connected. */
  waitConnected(timeoutMs = this.timeoutMs): Promise<void> {
    return within(this.connected, timeoutMs, `${this.label}: ICE + DTLS connected (${this.stateLog.join(' ')})`);
  }

  /** Waits until `ms` of audio arrived at or after `since` (Date.now() ms). */
  async waitForAudio(ms: number, opts: { since?: number; timeoutMs?: number } = {}): Promise<void> {
    const since = opts.since ?? 0;
    const enough = (): boolean => {
      let got = 0;
      for (const c of this.chunks) if (c.at >= since) got += (c.pcm.length * 1000) / c.rate;
      return got >= ms;
    };
    await this.waitUntil(enough, opts.timeoutMs ?? this.timeoutMs, `${ms} ms of audio`);
  }

  /** Waits until the digits received end with `digits`. */
  async waitForDtmf(digits: string, timeoutMs = this.timeoutMs): Promise<void> {
    await this.waitUntil(() => this.dtmfReceived.endsWith(digits), timeoutMs, `DTMF '${digits}' (got '${this.dtmfReceived}')`);
  }

  /**
   * Sends the digits as RFC 4733 events on the negotiated telephone-event payload type (the
   * one at the send codec's clock rate), in place of audio while each lasts, like a browser's
   * RTCDTMFSender. Resolves once the last one's end packets are sent.
   */
  async sendDtmf(digits: string, opts: { durationMs?: number; gapMs?: number; timeoutMs?: number } = {}): Promise<void> {
    const target = this.dtmfSent + digits;
    for (const d of digits) this.dtmfQueue.push({ digit: d, durationMs: opts.durationMs ?? 100, gapMs: opts.gapMs ?? 70 });
    await this.waitUntil(() => this.dtmfSent === target, opts.timeoutMs ?? this.timeoutMs, `sending DTMF '${digits}'`);
  }

  // -------------------------------------------------------------------------------------------
  // internals: negotiation

  private ensureTransceiver(): void {
    if (this.transceiver) return;
    this.transceiver = this.pc.addTransceiver(this.localTrack, { direction: 'sendrecv' });
    const dtmfShim = this.makeDtmfShim();
    const shim: SenderShim = {
      track: null,
      dtmf: dtmfShim,
      replaceTrack: async (t) => {
        shim.track = t;
      },
      getParameters: () => ({ encodings: [{ ssrc: this.ssrc }] }),
    };
    this.senderShim = shim;
  }

  /** After each description: read the media ids, watch new DTLS transports. */
  private afterNegotiation(): void {
    const t = this.transceiver;
    if (!t) return;
    const transports = new Set<RTCDtlsTransport>();
    for (const d of this.pc.dtlsTransports) transports.add(d);
    try {
      if (t.dtlsTransport) transports.add(t.dtlsTransport);
    } catch {
      /* no transport yet */
    }
    for (const d of transports) {
      if (this.watchedTransports.has(d)) continue;
      this.watchedTransports.add(d);
      this.watch(d.onRtp.subscribe((rtp) => this.onRtp(rtp)));
      this.watch(d.onStateChange.subscribe((s) => this.stateLog.push(`dtls:${s}`)));
    }
    if (this.pc.connectionState === 'connected') this.startSending();
  }

  private watch(sub: { unSubscribe: () => void }): void {
    this.unsubscribers.push(sub.unSubscribe);
  }

  private assertOpen(what: string): void {
    if (this.closing) {
      const e = new Error(`${what}: peer connection closed`);
      e.name = 'InvalidStateError';
      throw e;
    }
  }

  /** Dispatches an event to JsSIP (`on<type>` and listeners) on a microtask, outside werift's own call stack. */
  private fire(type: string, props: Record<string, unknown> = {}): void {
    queueMicrotask(() => {
      if (this.closing && type !== 'iceconnectionstatechange' && type !== 'connectionstatechange') return;
      const ev = new Event(type);
      for (const [k, v] of Object.entries(props)) Object.defineProperty(ev, k, { value: v, enumerable: true });
      const handler = (this as unknown as Record<string, unknown>)[`on${type}`];
      try {
        if (typeof handler === 'function') (handler as (e: Event) => void).call(this, ev);
        this.dispatchEvent(ev);
      } catch (e) {
        this.errors.push(e);
      }
    });
  }

  private async waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return;
    let waiter: (() => void) | null = null;
    const p = new Promise<void>((resolve, reject) => {
      waiter = () => {
        if (cond()) resolve();
        else if (this.closing) reject(new Error(`${this.label}: closed while waiting for ${what}`));
      };
      this.audioWaiters.add(waiter);
    });
    const poll = setInterval(() => waiter?.(), 50);
    try {
      await within(p, timeoutMs, `${this.label}: ${what}`);
    } catch (e) {
      if (e instanceof TimeoutError) throw new TimeoutError(`${e.message}; ${this.describe()}`);
      throw e;
    } finally {
      clearInterval(poll);
      if (waiter) this.audioWaiters.delete(waiter);
    }
  }

  private notify(): void {
    for (const w of [...this.audioWaiters]) w();
  }

  // -------------------------------------------------------------------------------------------
  // internals: receiving

  private onRtp(rtp: RtpPacket): void {
    if (this.closing) return;
    try {
      const h = rtp.header;
      const midExtId = this.remoteCodecs.midExtId ?? this.localCodecs.midExtId;
      if (midExtId !== null) {
        const ext = h.extensions.find((e) => e.id === midExtId);
        if (ext) {
          const mid = ext.payload.toString('utf8');
          const ours = this.transceiver?.mid ?? this.localMid ?? this.remoteCodecs.mid;
          if (ours !== null && mid !== ours) {
            this.stats.foreignMidPackets++;
            return;
          }
        }
      }
      const s = this.stats;
      s.packetsReceived++;
      s.bytesReceived += rtp.payload.length;
      s.ssrcs.set(h.ssrc, (s.ssrcs.get(h.ssrc) ?? 0) + 1);
      s.payloadTypes.set(h.payloadType, (s.payloadTypes.get(h.payloadType) ?? 0) + 1);
      const now = Date.now();
      if (this.rtpPackets.length < MAX_RECORDED_PACKETS) {
        this.rtpPackets.push({
          at: now,
          ssrc: h.ssrc,
          payloadType: h.payloadType,
          sequenceNumber: h.sequenceNumber,
          timestamp: h.timestamp,
          marker: h.marker,
          payloadHead: Buffer.from(rtp.payload.subarray(0, 16)),
          payloadLength: rtp.payload.length,
        });
      }
      if (!this.firstPacketAt.has(h.ssrc)) this.firstPacketAt.set(h.ssrc, now);
      // a browser receives on the payload types of its own description (RFC 3264 §5.1: the
      // offer's numbers are what its author expects to receive; an answer mirrors them)
      const codec = this.localCodecs.map.get(h.payloadType);
      if (!codec) {
        s.unknownPtPackets++;
        return;
      }
      let pcm: Int16Array | null = null;
      let rate = codec.rate;
      switch (codec.name) {
        case 'telephone-event': {
          s.dtmfPacketsReceived++;
          let rx = this.dtmfReceivers.get(h.ssrc);
          if (!rx) {
            rx = new DtmfReceiver();
            this.dtmfReceivers.set(h.ssrc, rx);
          }
          for (const d of rx.push(h.timestamp, rtp.payload)) this.dtmfReceived += d.digit;
          this.notify();
          return;
        }
        case 'pcmu':
          pcm = decodeUlaw(rtp.payload);
          rate = 8000;
          break;
        case 'pcma':
          pcm = decodeAlaw(rtp.payload);
          rate = 8000;
          break;
        case 'opus': {
          if (!this.opusDecoder || this.opusDecoderSsrc !== h.ssrc) {
            this.opusDecoder?.destroy();
            this.opusDecoder = new OpusDecoder({ sampleRate: this.opts.opusDecodeRate, channels: 1 });
            this.opusDecoderSsrc = h.ssrc;
          }
          try {
            pcm = this.opusDecoder.decode(rtp.payload);
          } catch (e) {
            s.decodeErrors++;
            if (this.errors.length < 20) this.errors.push(e);
            return;
          }
          rate = this.opts.opusDecodeRate;
          break;
        }
        case 'cn':
          return;
        default:
          s.unknownPtPackets++;
          return;
      }
      s.audioPacketsReceived++;
      this.chunks.push({ at: now, ssrc: h.ssrc, payloadType: h.payloadType, rate, pcm });
      this.notify();
    } catch (e) {
      if (this.errors.length < 20) this.errors.push(e);
    }
  }

  // -------------------------------------------------------------------------------------------
  // internals: sending

  private startSending(): void {
    if (this.timer || this.closing || !this.opts.send) return;
    this.nextSendAt = Date.now();
    this.timer = setInterval(() => this.tick(), 5);
    this.timer.unref();
  }

  private stopSending(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Sends every 20 ms slot that is due (catching up after a late timer, up to 10 slots). */
  private tick(): void {
    const now = Date.now();
    if (now - this.nextSendAt > 10 * FRAME_MS) this.nextSendAt = now;
    while (this.nextSendAt <= now) {
      this.nextSendAt += FRAME_MS;
      try {
        this.sendSlot();
      } catch (e) {
        if (this.errors.length < 20) this.errors.push(e);
      }
    }
  }

  private canSend(): boolean {
    const t = this.transceiver;
    if (!t || t.stopped || !t.sender.codec) return false;
    if (t.sender.dtlsTransport?.state !== 'connected') return false;
    const dir = t.currentDirection;
    return dir === 'sendrecv' || dir === 'sendonly';
  }

  private sendSlot(): void {
    const t = this.transceiver!;
    const codec = t.sender.codec;
    const name = codec?.name.toLowerCase() ?? '';
    const clock = name === 'opus' ? 48000 : 8000;
    const samples = (clock * FRAME_MS) / 1000;
    const send = this.canSend();
    if (this.dtmfActive || (send && this.dtmfQueue.length > 0)) {
      if (this.sendDtmfSlot(clock, send)) {
        this.timestamp = (this.timestamp + samples) >>> 0;
        return;
      }
    }
    if (send && codec) {
      const payload = this.encodeFrame(name);
      if (payload) {
        const header = new RtpHeader({ payloadType: codec.payloadType, sequenceNumber: this.seq, timestamp: this.timestamp, marker: false });
        this.seq = (this.seq + 1) & 0xffff;
        void t.sender.sendRtp(new RtpPacket(header, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength))).catch((e: unknown) => {
          if (this.errors.length < 20) this.errors.push(e);
        });
        this.stats.packetsSent++;
      }
    }
    this.timestamp = (this.timestamp + samples) >>> 0;
  }

  /** One frame of the tone (silence while muted) in the send codec; null if we cannot encode it. */
  private encodeFrame(name: string): Uint8Array | null {
    if (name !== this.encoderFor) {
      this.opusEncoder?.destroy();
      this.opusEncoder = null;
      this.encoderFor = name;
      const rate = name === 'opus' ? 48000 : 8000;
      this.tone = new ToneGenerator(this.toneHz, rate, { amplitude: this.opts.amplitude, frameMs: FRAME_MS });
      if (name === 'opus') this.opusEncoder = new OpusEncoder({ sampleRate: 48000, channels: 1, application: 'voip' });
    }
    const frame = this.tone!.next();
    if (this.senderShim?.track && this.senderShim.track.enabled === false) frame.fill(0);
    switch (name) {
      case 'opus':
        return this.opusEncoder!.encode(frame);
      case 'pcmu':
        return encodeUlaw(frame);
      case 'pcma':
        return encodeAlaw(frame);
      default:
        return null;
    }
  }

  /** The telephone-event codec at `clock` werift negotiated, if any. */
  private telephoneEventCodec(clock: number): CodecParams | undefined {
    const codecs = this.transceiver?.codecs ?? [];
    const te = codecs.filter((c) => c.name.toLowerCase() === 'telephone-event');
    return te.find((c) => c.clockRate === clock) ?? te[0];
  }

  /**
   * Sends the DTMF packet of this slot (or waits out the gap after a digit); returns false when
   * the slot is free for audio. RFC 4733 §2.5.1: every packet of an event carries the event's
   * start timestamp; the duration grows; the end packet goes three times.
   */
  private sendDtmfSlot(clock: number, send: boolean): boolean {
    const t = this.transceiver!;
    if (!this.dtmfActive) {
      const next = this.dtmfQueue.shift();
      if (!next) return false;
      const te = this.telephoneEventCodec(clock);
      if (!te) {
        this.errors.push(new Error(`${this.label}: no telephone-event negotiated, digit '${next.digit}' dropped`));
        return false;
      }
      this.dtmfActive = {
        digit: next.digit,
        packets: digitPackets(next.digit, { clockRate: te.clockRate, durationMs: next.durationMs, intervalMs: FRAME_MS }),
        next: 0,
        timestamp: this.timestamp,
        gapSlots: Math.ceil(next.gapMs / FRAME_MS),
      };
      this.shimToneChange(next.digit);
    }
    const a = this.dtmfActive;
    if (a.next >= a.packets.length) {
      // the inter-digit gap: audio flows again
      if (--a.gapSlots <= 0) {
        this.dtmfActive = null;
        this.shimToneChange('');
      }
      return false;
    }
    const p = a.packets[a.next++]!;
    const te = this.telephoneEventCodec(clock);
    if (send && te) {
      const header = new RtpHeader({ payloadType: te.payloadType, sequenceNumber: this.seq, timestamp: a.timestamp, marker: p.marker });
      this.seq = (this.seq + 1) & 0xffff;
      // werift's RTCRtpSender.dispatchRtp (0.25.2) stamps every packet with `sender.codec`'s
      // payload type; it does so synchronously inside sendRtp(), so the telephone-event codec
      // is swapped in around the call and restored at once.
      const sender = t.sender;
      const primary = sender.codec;
      sender.codec = te;
      try {
        void sender.sendRtp(new RtpPacket(header, Buffer.from(p.payload))).catch((e: unknown) => {
          if (this.errors.length < 20) this.errors.push(e);
        });
      } finally {
        sender.codec = primary;
      }
      this.stats.dtmfPacketsSent++;
    }
    if (a.next >= a.packets.length) {
      this.dtmfSent += a.digit;
      this.notify();
    }
    return true;
  }

  private makeDtmfShim(): DtmfSenderShim {
    const self = this;
    return {
      get canInsertDTMF() {
        return !self.closing;
      },
      get toneBuffer() {
        return self.dtmfShimBuffer;
      },
      ontonechange: null,
      insertDTMF(tones: string, duration = 100, interToneGap = 70) {
        for (const d of tones) {
          if (d === ',') continue;
          self.dtmfQueue.push({ digit: d, durationMs: Math.max(40, Math.min(6000, duration)), gapMs: Math.max(30, interToneGap) });
        }
        self.dtmfShimBuffer += tones;
      },
    };
  }

  private shimToneChange(tone: string): void {
    if (tone !== '') this.dtmfShimBuffer = this.dtmfShimBuffer.slice(1);
    const cb = this.senderShim?.dtmf.ontonechange;
    if (cb) {
      try {
        cb({ tone });
      } catch (e) {
        this.errors.push(e);
      }
    }
  }
}

/** A PeerConnectionFactory building WeriftPeers; every peer it made is in `peers`. */
export interface WeriftPeerFactory extends PeerConnectionFactory {
  readonly peers: WeriftPeer[];
  /** the most recent peer (throws when none was made yet) */
  last(): WeriftPeer;
  /** closes every peer it made and waits for werift to finish (bounded) */
  closeAll(timeoutMs?: number): Promise<void>;
}

export function weriftPeerFactory(options: WeriftPeerOptions = {}): WeriftPeerFactory {
  const peers: WeriftPeer[] = [];
  const factory = ((config: PeerConnectionConfig) => {
    const p = new WeriftPeer(config, options);
    peers.push(p);
    return p;
  }) as unknown as WeriftPeerFactory;
  Object.defineProperty(factory, 'peers', { value: peers });
  factory.last = () => {
    const p = peers.at(-1);
    if (!p) throw new Error(`${options.label ?? 'werift'}: no peer connection was created yet`);
    return p;
  };
  factory.closeAll = async (timeoutMs = 5000) => {
    for (const p of peers) p.close();
    await within(Promise.all(peers.map((p) => p.closed)), timeoutMs, 'werift peers closed').catch(() => undefined);
  };
  return factory;
}

/** The WeriftPeer of a call (JsSIP builds it on call()/answer()). */
export function peerOf(call: JsSipCall): WeriftPeer {
  const pc = call.peerConnection;
  if (!(pc instanceof WeriftPeer)) throw new Error('the call has no WeriftPeer (was the UA given weriftPeerFactory()?)');
  return pc;
}

/**
 * Puts the call on hold through JsSIP (re-INVITE with a=sendonly) and resolves once the
 * answer is applied to the peer connection; rejects if JsSIP refuses or the call ends.
 */
export function holdCall(call: JsSipCall, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  return reOffer(call, 'hold', timeoutMs);
}

/** Takes the call off hold (re-INVITE with a=sendrecv), like holdCall. */
export function resumeCall(call: JsSipCall, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  return reOffer(call, 'unhold', timeoutMs);
}

function reOffer(call: JsSipCall, what: 'hold' | 'unhold', timeoutMs: number): Promise<void> {
  type Session = NodeJS.EventEmitter & {
    hold(o: object, done: () => void): boolean;
    unhold(o: object, done: () => void): boolean;
    isReadyToReOffer(): boolean;
    isOnHold(): { local: boolean; remote: boolean };
  };
  const session = call.session as unknown as Session;
  let onEnd = (): void => undefined;
  let retry: NodeJS.Timeout | null = null;
  const p = new Promise<void>((resolve, reject) => {
    onEnd = () => reject(new Error(`${call.ua.user}: call ended during ${what}`));
    session.once('ended', onEnd);
    session.once('failed', onEnd);
    // JsSIP refuses (returns false) while a previous offer/answer is still in progress:
    // try again shortly, as a user clicking again would; refusing for a wrong hold state is final
    const attempt = (): void => {
      retry = null;
      if (session[what]({}, () => resolve())) return;
      const held = session.isOnHold().local;
      if ((what === 'hold' && held) || (what === 'unhold' && !held) || session.isReadyToReOffer()) {
        reject(new Error(`${call.ua.user}: JsSIP refused ${what}() (local hold: ${held}, ready to re-offer: ${session.isReadyToReOffer()})`));
        return;
      }
      retry = setTimeout(attempt, 50);
    };
    attempt();
  });
  return within(p, timeoutMs, `${call.ua.user}: ${what} (re-INVITE answered and applied)`).finally(() => {
    if (retry) clearTimeout(retry);
    session.off('ended', onEnd);
    session.off('failed', onEnd);
  });
}
