/**
 * Where audio taps meet a call's media: a DirectTransport on the call's router. It receives
 * the RTP each party sends (a consumer of that party's producer) and can inject RTP that a
 * party hears instead of the other party (a producer the party's leg then consumes; the tap
 * mixes the other party in when it should be heard too). Taps decode and encode; this file
 * only moves packets.
 */
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import type { Consumer, DirectTransport, Producer, Router } from 'mediasoup/types';
import { codecList, toCodecCapability, toRtpCodec, type LegCodecs } from './codecs.js';
import type { Side } from '../sip/dialog.js';

export interface TapPortEvents {
  /** an RTP packet a party sent (its own payload types: see codecs(side)) */
  rtp: [Side, Buffer];
  /** the port is closed (the call ended) */
  close: [];
}

export interface TapHost {
  /** the codecs a party speaks on this call, or null before the answer */
  codecs(side: Side): LegCodecs | null;
  /** the producer carrying what a party sends, or null */
  producer(side: Side): Producer | null;
  /** make a party hear this producer instead of the other party (null: back to normal) */
  override(side: Side, producer: Producer | null): Promise<void>;
}

export class TapPort extends EventEmitter<TapPortEvents> {
  private readonly listening = new Map<Side, Consumer>();
  private readonly injecting = new Map<Side, { producer: Producer; ssrc: number }>();
  private closed = false;

  private constructor(private readonly direct: DirectTransport, private readonly host: TapHost) {
    super();
  }

  static async open(router: Router, host: TapHost): Promise<TapPort> {
    const direct = await router.createDirectTransport({ maxMessageSize: 262_144 });
    return new TapPort(direct, host);
  }

  codecs(side: Side): LegCodecs | null {
    return this.host.codecs(side);
  }

  /** Starts (or follows, after an SSRC change) receiving what `side` sends. */
  async listen(side: Side): Promise<boolean> {
    if (this.closed) return false;
    const producer = this.host.producer(side);
    const codecs = this.host.codecs(side);
    if (!producer || producer.closed || !codecs) return false;
    const current = this.listening.get(side);
    if (current && !current.closed && current.producerId === producer.id) return true;
    current?.close();
    const consumer = await this.direct.consume({
      producerId: producer.id,
      rtpCapabilities: { codecs: codecList(codecs).map(toCodecCapability), headerExtensions: [] },
    });
    if (this.closed) {
      consumer.close();
      return false;
    }
    this.listening.set(side, consumer);
    consumer.on('rtp', (packet) => this.emit('rtp', side, packet));
    return true;
  }

  /**
   * From now on `side` hears what `send(side, ...)` injects (in its own codec and payload
   * types, see codecs(side)) instead of the other party.
   */
  async inject(side: Side): Promise<number> {
    const existing = this.injecting.get(side);
    if (existing) return existing.ssrc;
    const codecs = this.host.codecs(side);
    if (!codecs || this.closed) throw new Error(`no codec negotiated yet for the ${side}`);
    const ssrc = crypto.randomBytes(4).readUInt32BE(0) || 1;
    const producer = await this.direct.produce({
      kind: 'audio',
      rtpParameters: { codecs: codecList(codecs).map(toRtpCodec), encodings: [{ ssrc }], rtcp: { cname: 'tap', reducedSize: true } },
    });
    this.injecting.set(side, { producer, ssrc });
    await this.host.override(side, producer);
    return ssrc;
  }

  /** An RTP packet for `side` (its SSRC must be the one inject() returned). */
  send(side: Side, packet: Buffer): void {
    this.injecting.get(side)?.producer.send(packet);
  }

  /** `side` hears the other party again. */
  async uninject(side: Side): Promise<void> {
    const i = this.injecting.get(side);
    if (!i) return;
    this.injecting.delete(side);
    await this.host.override(side, null);
    i.producer.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const side of [...this.injecting.keys()]) void this.host.override(side, null).catch(() => {});
    this.injecting.clear();
    this.listening.clear();
    this.direct.close();
    this.emit('close');
    this.removeAllListeners();
  }
}
