/**
 * A tap's media port inside its worker thread: one UDP socket on loopback, the far end of
 * the call's tap PlainTransport in mediasoup (server/media/tap-port.ts). mediasoup sends it
 * what each party sends (a consumer per party, told apart by SSRC) and takes the RTP the tap
 * injects, so no packet passes through the main thread. RTCP that mediasoup sends along is
 * ignored. Closing is idempotent.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { LegCodecs } from '../media/codecs.js';
import type { Side } from './dialect.js';
import type { TapSource } from './tap-messages.js';
import type { TapMediaPort } from './tap-pipeline.js';

export interface UdpTapPortEvents {
  rtp: [Side, Buffer];
  close: [];
}

export class UdpTapPort extends EventEmitter<UdpTapPortEvents> implements TapMediaPort {
  /** packets whose SSRC is no party's (yet): dropped */
  unknown = 0;
  /** socket errors (a send refused, ICMP unreachable reported back): transient on UDP, counted */
  errors = 0;
  lastError: string | null = null;
  private readonly sources: Record<Side, TapSource | null>;
  private closed = false;

  private constructor(
    private readonly sock: dgram.Socket,
    sources: Record<Side, TapSource | null>,
    private readonly injectFn: (side: Side) => Promise<number>,
  ) {
    super();
    this.sources = { ...sources };
    sock.on('message', (msg) => this.onPacket(msg));
    // UDP errors are per datagram (ENOBUFS, ECONNREFUSED from an ICMP unreachable): the
    // port stays; the tap ends with the call, not with one lost packet
    sock.on('error', (e) => {
      this.errors++;
      this.lastError = e.message;
    });
  }

  /**
   * Binds a socket on mediasoup's side of loopback and connects it to mediasoup's port: a
   * connected socket sends at once, in the call (an address given per send goes through a
   * lookup first, a tick later, when the caller has already reused its packet buffer), and
   * hears from nobody else.
   */
  static async open(media: { ip: string; port: number; range: { min: number; max: number } }, sources: Record<Side, TapSource | null>, inject: (side: Side) => Promise<number>): Promise<UdpTapPort> {
    // a port of the taps' range, never an ephemeral one: those may be RTP ports a call's leg
    // later takes over by number
    const { min, max } = media.range;
    for (let attempt = 0; ; attempt++) {
      const sock = dgram.createSocket(media.ip.includes(':') ? 'udp6' : 'udp4');
      const port = min + Math.floor(Math.random() * (max - min + 1));
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.bind(port, media.ip, () => {
            sock.connect(media.port, media.ip, () => {
              sock.off('error', reject);
              resolve();
            });
          });
        });
        return new UdpTapPort(sock, sources, inject);
      } catch (e) {
        try {
          sock.close();
        } catch {
          // a failed bind may have closed it already
        }
        if ((e as { code?: string }).code !== 'EADDRINUSE' || attempt >= 50) throw e;
      }
    }
  }

  get localPort(): number {
    return this.sock.address().port;
  }

  setSource(side: Side, source: TapSource | null): void {
    this.sources[side] = source;
  }

  codecs(side: Side): LegCodecs | null {
    return this.sources[side]?.codecs ?? null;
  }

  inject(side: Side): Promise<number> {
    return this.injectFn(side);
  }

  send(_side: Side, packet: Buffer): void {
    if (this.closed) return;
    this.sock.send(packet);
  }

  private onPacket(msg: Buffer): void {
    if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
    const pt = msg[1]!;
    if (pt >= 192 && pt <= 223) return; // RTCP (RFC 5761 §4): SR/RR from mediasoup
    const ssrc = msg.readUInt32BE(8);
    const side: Side | null = this.sources.caller?.ssrc === ssrc ? 'caller' : this.sources.callee?.ssrc === ssrc ? 'callee' : null;
    if (side === null) {
      this.unknown++;
      return;
    }
    this.emit('rtp', side, msg);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.sock.close();
    } catch {
      // already closed
    }
    this.emit('close');
    this.removeAllListeners();
  }
}
