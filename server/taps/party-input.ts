/**
 * What one party of the call sends, as the tap hears it: RTP packets from the media layer
 * decoded (by payload type) into linear PCM at the codec's rate, held in a small jitter
 * FIFO and taken out 20 ms at a time by the shared clock.
 *
 * Packets arrive on the sender's clock, the taps run on ours: the FIFO starts playing once
 * it holds `prefill` frames (40 ms), an underrun plays what is there and zeros and waits for
 * the prefill again, and a backlog beyond `maxFrames` (a burst after a stall, or clock drift)
 * is trimmed from the oldest end back to the prefill. Telephone-events (RFC 4733) go to
 * DtmfReceiver; their packets are also handed on raw (relayed when the tap speaks to the
 * other party instead of the media layer).
 */
import { DtmfReceiver } from '../audio/dtmf.js';
import { parseRtp, type RtpPacket } from '../audio/rtp.js';
import type { LegCodecs } from '../media/codecs.js';
import { codecKind, createDecoder, MAX_DECODED, type NativeRate, type PacketDecoder } from './rtp-codecs.js';

/** Payload types of the router's codecs (server/media/codecs.ts ROUTER_CODECS), as a fallback. */
const ROUTER_PTS: Record<number, 'pcmu' | 'pcma' | 'g722' | 'opus' | 'dtmf'> = { 0: 'pcmu', 8: 'pcma', 9: 'g722', 111: 'opus', 101: 'dtmf' };

const FIFO_SECONDS = 0.5;

export interface PartyInputEvents {
  digit(digit: string, durationMs: number): void;
  /** a telephone-event packet as received (payload, its RTP timestamp, marker) */
  event(payload: Uint8Array, timestamp: number, marker: boolean): void;
  /** the codec (and so the rate) changed */
  rate(rate: NativeRate): void;
}

export class PartyInput {
  rate: NativeRate = 8000;
  packets = 0;
  /** packets whose payload type maps to nothing we decode */
  unknown = 0;
  underruns = 0;
  /** samples trimmed from a backlog */
  trimmed = 0;
  private decoder: PacketDecoder | null = null;
  private codecsRef: LegCodecs | null = null;
  private readonly pts = new Map<number, 'pcmu' | 'pcma' | 'g722' | 'opus' | 'dtmf'>();
  private readonly scratch = new Int16Array(MAX_DECODED);
  private readonly rtp = {} as RtpPacket;
  private readonly dtmf = new DtmfReceiver();
  private fifo = new Int16Array(16000 * FIFO_SECONDS);
  private head = 0;
  private len = 0;
  private playing = false;

  constructor(
    private readonly codecs: () => LegCodecs | null,
    private readonly on: PartyInputEvents,
    private readonly prefillFrames = 2,
    private readonly maxFrames = 6,
  ) {}

  /** samples waiting in the FIFO */
  get buffered(): number {
    return this.len;
  }

  private refreshPts(): void {
    const c = this.codecs();
    if (c === this.codecsRef) return;
    this.codecsRef = c;
    this.pts.clear();
    for (const [pt, kind] of Object.entries(ROUTER_PTS)) this.pts.set(Number(pt), kind);
    if (c) {
      const k = codecKind(c.media);
      if (k) this.pts.set(c.media.pt, k);
      if (c.dtmf) this.pts.set(c.dtmf.pt, 'dtmf');
    }
  }

  /** One RTP packet from the media layer. */
  push(buf: Buffer): void {
    const p = parseRtp(buf, this.rtp);
    if (!p) return;
    this.packets++;
    this.refreshPts();
    const kind = this.pts.get(p.payloadType);
    if (kind === undefined) {
      this.unknown++;
      return;
    }
    if (kind === 'dtmf') {
      this.on.event(p.payload, p.timestamp, p.marker);
      for (const d of this.dtmf.push(p.timestamp, p.payload)) this.on.digit(d.digit, Math.round(d.duration / 8));
      return;
    }
    if (!this.decoder || this.decoder.kind !== kind) {
      this.decoder?.destroy();
      this.decoder = createDecoder(kind);
      if (this.decoder.rate !== this.rate) {
        this.rate = this.decoder.rate;
        this.head = 0;
        this.len = 0;
        this.playing = false;
        this.on.rate(this.rate);
      }
    }
    const n = this.decoder.decode(p.payload, this.scratch);
    if (n > 0) this.write(this.scratch, n);
  }

  private write(src: Int16Array, n: number): void {
    const cap = this.fifo.length;
    if (n > cap) return;
    if (this.len + n > cap) {
      // a runaway backlog (the clock stopped pulling): keep the newest
      const drop = this.len + n - cap;
      this.head = (this.head + drop) % cap;
      this.len -= drop;
      this.trimmed += drop;
    }
    let at = (this.head + this.len) % cap;
    const first = Math.min(n, cap - at);
    this.fifo.set(first === n ? src.subarray(0, n) : src.subarray(0, first), at);
    if (first < n) this.fifo.set(src.subarray(first, n), 0);
    at = 0;
    this.len += n;
  }

  /**
   * The next 20 ms (`out.length` = rate / 50 samples) into `out`. Returns whether it holds
   * audio the party sent (false: all zeros, nothing arrived or still prefilling).
   */
  pull(out: Int16Array): boolean {
    const n = out.length;
    if (!this.playing) {
      if (this.len >= this.prefillFrames * n) this.playing = true;
      else {
        out.fill(0);
        return false;
      }
    }
    const cap = this.fifo.length;
    if (this.len > this.maxFrames * n) {
      const drop = this.len - this.prefillFrames * n;
      this.head = (this.head + drop) % cap;
      this.len -= drop;
      this.trimmed += drop;
    }
    const take = Math.min(n, this.len);
    const first = Math.min(take, cap - this.head);
    out.set(this.fifo.subarray(this.head, this.head + first), 0);
    if (first < take) out.set(this.fifo.subarray(0, take - first), first);
    this.head = (this.head + take) % cap;
    this.len -= take;
    if (take < n) {
      out.fill(0, take);
      this.underruns++;
      this.playing = false;
    }
    return take > 0;
  }

  /** Report a digit still in progress (its end packets never came). */
  flushDtmf(): void {
    for (const d of this.dtmf.flush()) this.on.digit(d.digit, Math.round(d.duration / 8));
  }

  destroy(): void {
    this.decoder?.destroy();
    this.decoder = null;
  }
}
