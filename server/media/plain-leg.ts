/**
 * A desk phone's leg: plain RTP/AVP on a PlainTransport, latched to where the phone really
 * sends from (symmetric RTP behind NAT).
 *
 * mediasoup routes RTP by SSRC and drops, silently, what no producer claims; phones do not
 * announce their SSRC and may change it (re-INVITE, a transfer behind the phone). So the
 * leg learns it: until the SSRC is known a plain UDP socket of ours holds the port and reads
 * the first RTP packet (its SSRC and source address), then hands the port to a PlainTransport
 * connected to that source, and a producer for that SSRC. A later change shows as bytes the
 * transport receives while its producer counts none; the leg then learns again. No
 * JavaScript runs per packet: only the first packet of each SSRC passes through Node.
 */
import dgram from 'node:dgram';
import type { PlainTransport, Router } from 'mediasoup/types';
import { codecList, toRtpCodec } from './codecs.js';
import { Leg, type LegStats, type LocalTransport } from './leg.js';
import type { RemoteMedia } from './sdp.js';

export interface PlainLegOptions {
  listenIp: string;
  announcedAddress: string;
  /** even RTP port; RTCP on port + 1 unless rtcp-mux */
  port: number;
  /** ms to wait for the phone's first packet before sending to its SDP address anyway */
  latchTimeout: number;
}

interface Learnt {
  ssrc: number;
  address: string;
  port: number;
  at: number;
}

export class PlainLeg extends Leg {
  private plain: PlainTransport | null = null;
  private sniffer: dgram.Socket | null = null;
  private learnt: Learnt | null = null;
  private fallback: NodeJS.Timeout | null = null;
  /** counters at the last check, to see unclaimed RTP */
  private lastBytes = 0;
  private lastClaimed = 0;
  private lastSent = 0;
  private relearning = false;
  /** times the SSRC was learnt again, and how long the last take-over took (ms) */
  relearnCount = 0;
  lastLearnMs = 0;
  private learnStarted = 0;
  private building: Promise<void> | null = null;
  private producing: Promise<void> = Promise.resolve();

  private constructor(name: string, private readonly router: Router, private readonly opts: PlainLegOptions) {
    super(name, 'rtp');
  }

  static async create(name: string, router: Router, opts: PlainLegOptions): Promise<PlainLeg> {
    const leg = new PlainLeg(name, router, opts);
    await leg.sniff();
    return leg;
  }

  get transport(): PlainTransport | null {
    return this.plain;
  }

  private get rtcpMux(): boolean {
    return this.remote?.rtcpMux ?? false;
  }

  local(): LocalTransport {
    return {
      kind: 'rtp',
      address: this.opts.announcedAddress,
      port: this.opts.port,
      rtcpPort: this.rtcpMux ? null : this.opts.port + 1,
      rtcpMux: this.rtcpMux,
      ice: null,
      fingerprints: [],
    };
  }

  setupFor(): null {
    return null;
  }

  /**
   * Holds the RTP port with a socket of ours until the first RTP packet says who sends. After
   * a PlainTransport closed, the worker releases the port a moment later: binding is retried.
   */
  private async sniff(): Promise<void> {
    this.learnStarted = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.bindSniffer();
        return;
      } catch (e) {
        if (this.closed) return;
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 200) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  private bindSniffer(): Promise<void> {
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    sock.on('message', (msg, rinfo) => {
      // RTP version 2, and not RTCP (payload types 200-204 when muxed, RFC 5761 §4)
      if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! >= 200 && msg[1]! <= 204)) return;
      if (this.sniffer !== sock) return;
      this.learnt = { ssrc: msg.readUInt32BE(8), address: rinfo.address, port: rinfo.port, at: Date.now() };
      this.takeOver().catch((e: unknown) => this.emit('failed', `could not take over the RTP port: ${(e as Error).message}`));
    });
    return new Promise((resolve, reject) => {
      sock.once('error', (e) => {
        sock.close();
        reject(e);
      });
      sock.bind(this.opts.port, this.opts.listenIp, () => {
        sock.removeAllListeners('error');
        sock.on('error', () => {});
        // the leg may have closed while the port was being bound: nobody would own it
        if (this.closed) {
          sock.close();
          resolve();
          return;
        }
        this.sniffer = sock;
        resolve();
      });
    });
  }

  private closeSniffer(): Promise<void> {
    const sock = this.sniffer;
    this.sniffer = null;
    if (!sock) return Promise.resolve();
    return new Promise((resolve) => {
      try {
        sock.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  /** The sniffer has what it needs (or waited long enough): the PlainTransport takes the port. */
  private takeOver(): Promise<void> {
    if (this.building) return this.building;
    this.building = this.build().finally(() => {
      this.building = null;
    });
    return this.building;
  }

  private async build(): Promise<void> {
    if (this.closed || this.plain) return;
    if (this.fallback) clearTimeout(this.fallback);
    this.fallback = null;
    await this.closeSniffer();
    if (this.closed) return;
    const mux = this.rtcpMux;
    const plain = await this.router.createPlainTransport({
      listenInfo: { protocol: 'udp', ip: this.opts.listenIp, announcedAddress: this.opts.announcedAddress, port: this.opts.port },
      ...(mux ? {} : { rtcpListenInfo: { protocol: 'udp' as const, ip: this.opts.listenIp, announcedAddress: this.opts.announcedAddress, port: this.opts.port + 1 } }),
      rtcpMux: mux,
      comedia: false,
    });
    if (this.closed) {
      plain.close();
      return;
    }
    this.plain = plain;
    // Where to send: where the phone sends from (latching), else what its SDP says.
    const r = this.remote;
    const address = this.learnt?.address ?? r?.address;
    const port = this.learnt?.port ?? r?.port;
    if (address && port && address !== '0.0.0.0') {
      const rtcpPort = mux ? undefined : this.learnt ? this.learnt.port + 1 : (r?.rtcpPort ?? port + 1);
      await plain.connect({ ip: address, port, ...(rtcpPort !== undefined ? { rtcpPort } : {}) });
    }
    this.lastBytes = 0;
    this.lastClaimed = 0;
    if (this.learnt) this.lastLearnMs = Date.now() - this.learnStarted;
    this.emit('ready');
    await this.produce();
  }

  async setRemote(remote: RemoteMedia): Promise<void> {
    const before = this.remote;
    this.remote = remote;
    if (this.plain && before && !this.relearning) {
      // the phone moved its media (a re-INVITE to another port or host): follow it
      const moved = remote.address !== '0.0.0.0' && (remote.address !== before.address || remote.port !== before.port);
      if (moved && !(this.learnt && this.learnt.address === remote.address && this.learnt.port === remote.port)) await this.relearn();
      return;
    }
    if (!this.plain && !this.fallback && remote.address !== '0.0.0.0' && remote.port !== 0) {
      // a phone that sends nothing (recvonly, on hold) must still hear us
      this.fallback = setTimeout(() => {
        this.fallback = null;
        if (!this.plain && !this.closed) this.takeOver().catch((e: unknown) => this.emit('failed', `could not open the RTP port: ${(e as Error).message}`));
      }, this.opts.latchTimeout);
    }
  }

  /**
   * Creates the producer for the learnt SSRC. The first packet (takeOver) and the answer may
   * both ask at once: calls run one after the other, each checking again what is there.
   */
  produce(): Promise<void> {
    const run = this.producing.then(() => this.produceNow());
    this.producing = run.catch(() => {});
    return run;
  }

  private async produceNow(): Promise<void> {
    if (!this.plain || !this.codecs || !this.learnt || this.closed) return;
    if (this.producer && !this.producer.closed && this.producer.rtpParameters.encodings?.[0]?.ssrc === this.learnt.ssrc) return;
    this.producer?.close();
    this.producer = null;
    this.producer = await this.plain.produce({
      kind: 'audio',
      rtpParameters: {
        codecs: codecList(this.codecs).map(toRtpCodec),
        encodings: [{ ssrc: this.learnt.ssrc }],
        rtcp: { cname: `${this.name}-${this.learnt.ssrc}`, reducedSize: false },
      },
    });
    this.emit('producer');
  }

  /** Gives the port back to a sniffer and learns the SSRC (and source) again. */
  async relearn(): Promise<void> {
    if (this.relearning || this.closed) return;
    this.relearning = true;
    this.relearnCount++;
    try {
      this.producer?.close();
      this.producer = null;
      this.consumer = null;
      this.consuming = null;
      this.plain?.close();
      this.plain = null;
      this.learnt = null;
      await this.sniff();
    } finally {
      this.relearning = false;
    }
  }

  /**
   * Called every check interval (one stats request to the worker): RTP the transport received
   * that no producer claimed means a new SSRC (or a first one, after the fallback): learn it.
   * bytesReceived counts every packet (RTCP too), rtpBytesReceived only the claimed RTP.
   */
  async poll(): Promise<{ bytesReceived: number; bytesSent: number }> {
    const plain = this.plain;
    if (!plain || this.relearning || this.closed) return { bytesReceived: this.lastBytes, bytesSent: this.lastSent };
    const [t] = await plain.getStats();
    const all = t?.bytesReceived ?? 0;
    const claimed = t?.rtpBytesReceived ?? 0;
    const unclaimed = all - this.lastBytes - (claimed - this.lastClaimed);
    this.lastBytes = all;
    this.lastClaimed = claimed;
    // a few hundred bytes of RTCP may arrive in an interval; RTP of a new SSRC is far more
    this.lastSent = t?.bytesSent ?? this.lastSent;
    if (unclaimed > 600 && unclaimed > (all - claimed) / 100) await this.relearn();
    return { bytesReceived: all, bytesSent: this.lastSent };
  }

  async stats(): Promise<LegStats> {
    const plain = this.plain;
    const [t] = plain ? await plain.getStats() : [];
    const p = this.producer ? await this.producer.getStats() : [];
    const produced = p.reduce((n, s) => n + s.byteCount, 0);
    return {
      kind: 'rtp',
      codec: this.codecs?.media.name ?? null,
      localPort: this.opts.port,
      remote: plain?.tuple.remoteIp ? `${plain.tuple.remoteIp}:${plain.tuple.remotePort}` : this.learnt ? `${this.learnt.address}:${this.learnt.port}` : null,
      packetsReceived: p.reduce((n, s) => n + s.packetCount, 0),
      packetsLost: p.reduce((n, s) => n + (s.packetsLost ?? 0), 0),
      bytesReceived: t?.bytesReceived ?? 0,
      packetsSent: 0,
      bytesSent: t?.bytesSent ?? 0,
      unclaimedBytes: Math.max(0, (t?.bytesReceived ?? 0) - produced),
      ssrc: this.learnt?.ssrc ?? null,
      state: plain ? 'relaying' : 'learning',
    };
  }

  override close(): void {
    if (this.fallback) clearTimeout(this.fallback);
    void this.closeSniffer();
    super.close();
    this.plain?.close();
    this.plain = null;
  }
}
