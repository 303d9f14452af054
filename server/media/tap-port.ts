/**
 * Where audio taps meet a call's media: a PlainTransport on the call's router whose far end
 * is a UDP socket of the tap's worker thread (server/taps/udp-tap-port.ts), so RTP never
 * passes through the main thread. It sends that socket the RTP each party sends (a consumer
 * of that party's producer, told apart by its SSRC) and takes RTP the tap injects, which a
 * party hears instead of the other party (a producer the party's leg then consumes; the tap
 * mixes the other party in when it should be heard too). This file only sets up and tears
 * down; taps decode and encode in their thread.
 */
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import type { Consumer, PlainTransport, Producer, Router } from 'mediasoup/types';
import { codecList, toCodecCapability, toRtpCodec, type LegCodecs } from './codecs.js';
import type { Side } from '../sip/dialog.js';

/** What the tap's thread must know of a party's stream. */
export interface TapPortSource {
  codecs: LegCodecs | null;
  /** SSRC of what mediasoup sends for this party (its consumer's), null when not listening */
  ssrc: number | null;
}

export interface TapPortEvents {
  /** what a party sends changed (first listen, a new producer after an SSRC change, codecs) */
  source: [Side, TapPortSource];
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
  /**
   * Ports tap transports may bind: outside the calls' RTP range, whose ports the legs take
   * over by number (a tap on one of them would make a later call fail to bind it). Set once
   * at start-up from the media config (keepOutOf); the default suits its default range.
   */
  static portRange: { min: number; max: number } = { min: 50000, max: 59999 };

  /** Tap transports stay out of the calls' RTP ports [min, max]. */
  static keepOutOf(min: number, max: number): void {
    TapPort.portRange = max <= 64000 ? { min: max + 1, max: Math.min(65535, max + 10000) } : { min: Math.max(1024, min - 10000), max: min - 1 };
  }

  private readonly listening = new Map<Side, Consumer>();
  private readonly injecting = new Map<Side, { producer: Producer; ssrc: number }>();
  private readonly lastCodecs = new Map<Side, LegCodecs | null>();
  private closed = false;

  private constructor(private readonly plain: PlainTransport, private readonly host: TapHost) {
    super();
  }

  /** A transport on loopback (the tap's thread is in this process). */
  static async open(router: Router, host: TapHost, ip = '127.0.0.1'): Promise<TapPort> {
    const plain = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip, portRange: TapPort.portRange }, rtcpMux: true, comedia: false });
    return new TapPort(plain, host);
  }

  /** mediasoup's end (where the tap's thread sends what it injects) and the ports its end may take. */
  get local(): { ip: string; port: number; range: { min: number; max: number } } {
    return { ip: this.plain.tuple.localAddress, port: this.plain.tuple.localPort, range: TapPort.portRange };
  }

  /** The tap's thread bound its socket: mediasoup sends there (and takes RTP only from there). */
  async connect(ip: string, port: number): Promise<void> {
    if (this.closed) return;
    await this.plain.connect({ ip, port });
  }

  codecs(side: Side): LegCodecs | null {
    return this.host.codecs(side);
  }

  source(side: Side): TapPortSource {
    const c = this.listening.get(side);
    return { codecs: this.host.codecs(side), ssrc: c && !c.closed ? (c.rtpParameters.encodings?.[0]?.ssrc ?? null) : null };
  }

  /** Starts (or follows, after an SSRC change) receiving what `side` sends. */
  async listen(side: Side): Promise<boolean> {
    if (this.closed) return false;
    const producer = this.host.producer(side);
    const codecs = this.host.codecs(side);
    if (!producer || producer.closed || !codecs) return false;
    const current = this.listening.get(side);
    if (current && !current.closed && current.producerId === producer.id) {
      if (this.lastCodecs.get(side) !== codecs) this.announce(side);
      return true;
    }
    current?.close();
    const consumer = await this.plain.consume({
      producerId: producer.id,
      rtpCapabilities: { codecs: codecList(codecs).map(toCodecCapability), headerExtensions: [] },
    });
    if (this.closed) {
      consumer.close();
      return false;
    }
    this.listening.set(side, consumer);
    this.announce(side);
    return true;
  }

  private announce(side: Side): void {
    const s = this.source(side);
    this.lastCodecs.set(side, s.codecs);
    this.emit('source', side, s);
  }

  /**
   * From now on `side` hears what the tap's thread injects (in its own codec and payload
   * types, see codecs(side)) instead of the other party. Resolves with the SSRC to send with.
   */
  async inject(side: Side): Promise<number> {
    const existing = this.injecting.get(side);
    if (existing) return existing.ssrc;
    const codecs = this.host.codecs(side);
    if (!codecs || this.closed) throw new Error(`no codec negotiated yet for the ${side}`);
    const ssrc = crypto.randomBytes(4).readUInt32BE(0) || 1;
    const producer = await this.plain.produce({
      kind: 'audio',
      rtpParameters: { codecs: codecList(codecs).map(toRtpCodec), encodings: [{ ssrc }], rtcp: { cname: 'tap', reducedSize: true } },
    });
    this.injecting.set(side, { producer, ssrc });
    try {
      await this.host.override(side, producer);
    } catch (e) {
      // the party must not be left hearing a tap that does not play (a worker too busy, the
      // call's producer gone): it hears the other party again
      this.injecting.delete(side);
      producer.close();
      await this.host.override(side, null).catch(() => {});
      throw e;
    }
    return ssrc;
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
    this.plain.close();
    this.emit('close');
    this.removeAllListeners();
  }
}
