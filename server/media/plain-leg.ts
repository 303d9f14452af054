/**
 * A desk phone's leg: plain RTP/AVP on a PlainTransport, latched to where the phone really
 * sends from (symmetric RTP behind NAT), and to nothing else (latch.ts: no RTP bleed).
 *
 * mediasoup routes RTP by SSRC and drops, silently, what no producer claims; phones do not
 * announce their SSRC and may change it (re-INVITE, a transfer behind the phone). So the
 * leg learns it: until the phone's source is known a plain UDP socket of ours holds the port
 * and weighs the first RTP packets (RtpLatch: the SDP's address at once, another source after
 * a few packets in sequence), then hands the port to a PlainTransport connected to that
 * source (from then on the worker drops anything from elsewhere), and a producer for that
 * SSRC. A new SSRC from the same source is adopted on the same transport, told by the
 * worker (MediaService hears its "no suitable Producer" warning); a phone whose traffic
 * stopped while other bytes arrive is learnt again with the sniffer. No JavaScript runs per
 * packet: only the packets of the learning phase pass through Node.
 *
 * With our patched worker (worker-features.ts: catchAllSsrc and earlyReplay) there is no
 * learning phase: the PlainTransport takes the port at once, its producer is made without an
 * SSRC (it claims the first one the transport hears) and it is connected to the SDP's address,
 * so only that address's packets are taken; those that came before the answer are replayed by
 * the worker, and the far leg is handed what arrived before it consumed. The phone's first
 * packet is relayed. A phone that sends from elsewhere (behind NAT) is seen by the watch (bytes
 * arrive, none claimed) and learnt with the sniffer as above, strict latching unchanged.
 */
import dgram from 'node:dgram';
import type { PlainTransport, Producer, ProducerScore, Router } from 'mediasoup/types';
import { codecList, toRtpCodec } from './codecs.js';
import { RtpLatch, type Latched, type Source } from './latch.js';
import { Leg, type LegStats, type LocalTransport } from './leg.js';
import type { RemoteMedia } from './sdp.js';
import { routerFeatures } from './worker-features.js';

export interface PlainLegOptions {
  listenIp: string;
  announcedAddress: string;
  /** even RTP port; RTCP on port + 1 unless rtcp-mux */
  port: number;
  /** ms to wait, once the call is answered, for the phone's first packet before sending to its SDP address anyway */
  latchTimeout: number;
  /** in-sequence packets of one SSRC needed from a source the SDP does not name before latching to it */
  latchPackets: number;
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
  private readonly latch: RtpLatch;
  /** checks of a leg that took the port without hearing the phone, until its traffic starts */
  private watch: NodeJS.Timeout | null = null;
  /** times the SSRC was learnt again, and how long the last take-over took (ms) */
  relearnCount = 0;
  lastLearnMs = 0;
  private learnStarted = 0;
  private building: Promise<void> | null = null;
  private producing: Promise<void> = Promise.resolve();
  /**
   * The patched worker's path (no sniffer, an SSRC-less producer), until the leg learns with
   * the sniffer after all (behind NAT, moved media, rtcp-mux): then the learnt path for good.
   */
  private direct: boolean;
  /** direct path: connect() was sent */
  private connected = false;
  /** the SSRC the current producer carries (null: an SSRC-less producer that has claimed none we know of) */
  private producerSsrc: number | null = null;

  private constructor(name: string, private readonly router: Router, private readonly opts: PlainLegOptions) {
    super(name, 'rtp');
    this.latch = new RtpLatch({ probation: Math.max(1, opts.latchPackets) });
    const f = routerFeatures(router);
    this.direct = f.catchAllSsrc && f.earlyReplay;
  }

  static async create(name: string, router: Router, opts: PlainLegOptions): Promise<PlainLeg> {
    const leg = new PlainLeg(name, router, opts);
    // a fresh port held by someone else is given up at once (the session takes another one):
    // waiting for it to free up cost a second per busy port, in front of the call's INVITE
    if (leg.direct) await leg.open();
    else await leg.sniff(false);
    return leg;
  }

  /**
   * Direct path: the PlainTransport takes the port now, not connected (the worker keeps what
   * arrives until connect()). RTP/AVP phones do not mux RTCP: it gets port + 1, as our SDP says.
   */
  private async open(): Promise<void> {
    this.learnStarted = Date.now();
    this.plain = await this.bindTransport(false);
  }

  /** A PlainTransport on the leg's port (and port + 1 for RTCP unless muxed), not connected; null if the leg closed meanwhile. */
  private async bindTransport(mux: boolean): Promise<PlainTransport | null> {
    const listen = { protocol: 'udp' as const, ip: this.opts.listenIp, announcedAddress: this.opts.announcedAddress };
    const plain = await this.router.createPlainTransport({
      listenInfo: { ...listen, port: this.opts.port },
      ...(mux ? {} : { rtcpListenInfo: { ...listen, port: this.opts.port + 1 } }),
      rtcpMux: mux,
      comedia: false,
    });
    if (!this.closed) return plain;
    plain.close();
    return null;
  }

  /**
   * Direct path: connects the transport to the SDP's address (once; sent right after the
   * producer, so the packets it replays find it). The watch then looks for a phone that sends
   * from elsewhere.
   */
  private connectDirect(): Promise<void> {
    const plain = this.plain;
    const r = this.remote;
    if (!this.direct || this.connected || !plain || !r || r.address === '0.0.0.0' || r.port === 0) return Promise.resolve();
    this.connected = true;
    return plain.connect({ ip: r.address, port: r.port, rtcpPort: r.rtcpPort ?? r.port + 1 }).then(() => {
      if (this.closed || this.plain !== plain) return;
      this.lastLearnMs = Date.now() - this.learnStarted;
      this.emit('ready');
      this.watchStart();
    });
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
   * a PlainTransport closed, the worker releases the port a moment later: binding is retried
   * (`retry`; a new leg's port is not retried).
   */
  private async sniff(retry = true): Promise<void> {
    this.learnStarted = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.bindSniffer();
        return;
      } catch (e) {
        if (this.closed) return;
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !retry || attempt >= 200) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  private bindSniffer(): Promise<void> {
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    sock.on('message', (msg, rinfo) => {
      // RTP version 2, and not RTCP (payload types 200-204 when muxed, RFC 5761 §4)
      if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! >= 200 && msg[1]! <= 204)) return;
      if (this.sniffer !== sock || this.learnt) return;
      const latched = this.latch.packet(msg, { address: rinfo.address, port: rinfo.port });
      if (latched) this.latched(latched);
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

  /** The latch chose a source: the PlainTransport takes the port, connected to it. */
  private latched(l: Latched): void {
    this.learnt = { ssrc: l.ssrc, address: l.address, port: l.port, at: Date.now() };
    if (this.latch.ignored.length) {
      this.emit('warning', `RTP ignored while learning where the phone sends from: ${this.latch.ignored.join(', ')}; latched to ${l.address}:${l.port} (${l.why === 'sdp' ? 'the SDP\'s address' : l.why === 'previous' ? 'its source before' : `${this.opts.latchPackets} packets in sequence`})`);
    }
    this.takeOver().catch((e: unknown) => this.emit('failed', `could not take over the RTP port: ${(e as Error).message}`));
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
    const plain = await this.bindTransport(mux);
    if (!plain) return;
    this.plain = plain;
    // Where to send: where the phone sends from (latching), else what its SDP says.
    const r = this.remote;
    const address = this.learnt?.address ?? r?.address;
    const port = this.learnt?.port ?? r?.port;
    this.lastBytes = 0;
    this.lastClaimed = 0;
    if (this.learnt) this.lastLearnMs = Date.now() - this.learnStarted;
    // connect, produce and the far leg's consume go out together (the worker takes them in
    // order): the port is unclaimed for as short a time as can be
    let connecting: Promise<void> = Promise.resolve();
    if (address && port && address !== '0.0.0.0') {
      const rtcpPort = mux ? undefined : this.learnt ? this.learnt.port + 1 : (r?.rtcpPort ?? port + 1);
      connecting = plain.connect({ ip: address, port, ...(rtcpPort !== undefined ? { rtcpPort } : {}) });
    }
    const producing = this.produce();
    this.emit('ready');
    await Promise.all([connecting, producing]);
    if (!this.learnt) this.watchStart();
  }

  /**
   * The port was taken without hearing the phone (it had sent nothing when the call was
   * answered): check a few times, at growing intervals, whether it sends now from somewhere
   * its transport does not take (behind NAT), until its traffic starts.
   */
  private watchStart(): void {
    // heard already (the producer's first score came before connect() returned): nothing to watch
    if (this.learnt || this.closed) return;
    if (this.watch) clearTimeout(this.watch);
    // the direct path sends to the SDP's address until a phone behind NAT is found: look at
    // 100 ms already (about five of its packets, more than the 600 bytes of RTCP tolerated)
    const delays = this.direct ? [100, 200, 400, 800, 1600, 3200] : [200, 400, 800, 1600, 3200];
    const next = (i: number): void => {
      if (i >= delays.length || this.closed) return;
      this.watch = setTimeout(() => {
        this.watch = null;
        if (this.closed || this.learnt || !this.plain) return;
        this.watchTick().then(() => next(i + 1), () => next(i + 1));
      }, delays[i]);
      this.watch.unref();
    };
    next(0);
  }

  /**
   * One look of the watch. Direct path: if the SSRC-less producer has a stream although its
   * first score notification was missed, that stream's SSRC is the one learnt and the watch
   * ends. Otherwise the periodic check's rule (poll): RTP from elsewhere and none claimed
   * (behind NAT, or a phone that took the port unheard) is learnt again.
   */
  private async watchTick(): Promise<void> {
    const producer = this.producer;
    if (this.direct && producer && this.producerSsrc === null) {
      const [s] = await producer.getStats();
      if (s && this.producer === producer && this.claimed(s.ssrc)) return;
    }
    await this.poll();
  }

  async setRemote(remote: RemoteMedia): Promise<void> {
    const before = this.remote;
    this.remote = remote;
    if (this.direct && !this.connected && !this.relearning) {
      // our transport does not mux RTCP: a phone that does is learnt the other way
      if (remote.rtcpMux && this.plain) {
        this.direct = false;
        await this.relearn();
        return;
      }
      // connected once the producer exists (produce()), so that what the worker kept finds it
      if (this.producer) await this.connectDirect();
      return;
    }
    if (this.plain && before && !this.relearning) {
      // the phone moved its media (a re-INVITE to another port or host): follow it
      const moved = remote.address !== '0.0.0.0' && (remote.address !== before.address || remote.port !== before.port);
      if (moved && !(this.learnt && this.learnt.address === remote.address && this.learnt.port === remote.port)) await this.relearn();
      return;
    }
    if (!this.plain && !this.learnt) {
      // the first packets may have come before the SDP that names their source
      const latched = this.latch.expect(remote.address);
      if (latched) this.latched(latched);
    }
  }

  /**
   * A phone that sends nothing (recvonly, on hold) must still hear us: once the call is
   * answered (the leg has codecs), the port goes to the transport after latchTimeout even if
   * nothing was heard, connected to the SDP's address.
   */
  private armFallback(): void {
    const remote = this.remote;
    if (this.plain || this.fallback || this.closed || !remote || remote.address === '0.0.0.0' || remote.port === 0) return;
    this.fallback = setTimeout(() => {
      this.fallback = null;
      if (!this.plain && !this.closed) this.takeOver().catch((e: unknown) => this.emit('failed', `could not open the RTP port: ${(e as Error).message}`));
    }, this.opts.latchTimeout);
  }

  /**
   * Creates the producer for the learnt SSRC. The first packet (takeOver) and the answer may
   * both ask at once: calls run one after the other, each checking again what is there.
   */
  produce(): Promise<void> {
    if (!this.plain) this.armFallback();
    const run = this.producing.then(() => this.produceNow());
    this.producing = run.catch(() => {});
    return run;
  }

  private async produceNow(): Promise<void> {
    const plain = this.plain;
    if (!plain || !this.codecs || this.closed) return;
    const ssrc = this.learnt?.ssrc ?? null;
    // the learnt path needs the SSRC; the direct one makes an SSRC-less producer
    if (ssrc === null && !this.direct) return;
    if (this.producer && !this.producer.closed && this.producerSsrc === ssrc) return;
    this.producer?.close();
    this.producer = null;
    this.producerSsrc = ssrc;
    const producing = plain.produce({
      kind: 'audio',
      rtpParameters: {
        codecs: codecList(this.codecs).map(toRtpCodec),
        encodings: [ssrc === null ? {} : { ssrc }],
        rtcp: { cname: `${this.name}-${ssrc ?? 'first'}`, reducedSize: false },
      },
    });
    // sent right behind the produce request: the worker replays what it kept into the producer
    const [producer] = await Promise.all([producing, this.connectDirect()]);
    if (this.closed || this.plain !== plain) {
      producer.close();
      return;
    }
    this.producer = producer;
    if (ssrc === null) this.hearFirstSsrc(producer);
    this.emit('producer');
  }

  /**
   * Direct path: the producer's first 'score' notification comes when its stream is made, i.e.
   * when it claimed the phone's SSRC: the SSRC and source are then learnt without asking the
   * worker (the watch's stats request stays as the fallback, e.g. when that notification came
   * before the producer's object existed here).
   */
  private hearFirstSsrc(producer: Producer): void {
    const onScore = (scores: ProducerScore[]): void => {
      const first = scores[0];
      if (first && this.producer === producer && this.claimed(first.ssrc)) producer.off('score', onScore);
    };
    producer.on('score', onScore);
  }

  /**
   * Direct path: the SSRC-less producer claimed `ssrc`. The transport was connected to the
   * SDP's address, so only that address's packets can have been claimed: the phone is heard
   * where its SDP said, and the watch has nothing left to look for (a busy server keeps no
   * timer per leg: most legs end here, before its first look). False if nothing was learnt.
   */
  private claimed(ssrc: number): boolean {
    const r = this.remote;
    if (this.learnt || this.producerSsrc !== null || !this.connected || !r) return false;
    this.producerSsrc = ssrc;
    this.learnt = { ssrc, address: r.address, port: r.port, at: Date.now() };
    if (this.watch) clearTimeout(this.watch);
    this.watch = null;
    return true;
  }

  /** Gives the port back to a sniffer and learns the SSRC (and source) again. */
  async relearn(): Promise<void> {
    if (this.relearning || this.closed) return;
    this.relearning = true;
    this.relearnCount++;
    // learnt with the sniffer from now on (the direct path's transport cannot reconnect)
    this.direct = false;
    this.producerSsrc = null;
    try {
      this.producer?.close();
      this.producer = null;
      this.consumer = null;
      this.consuming = null;
      const plain = this.plain;
      this.plain?.close();
      this.plain = null;
      const before: Source | null = this.learnt ?? (plain?.tuple.remoteIp ? { address: plain.tuple.remoteIp, port: plain.tuple.remotePort! } : null);
      this.learnt = null;
      this.latch.restart(before);
      this.latch.expect(this.remote?.address ?? null);
      await this.sniff();
    } finally {
      this.relearning = false;
    }
  }

  /**
   * The periodic check (one stats request to the worker): RTP arriving that no producer
   * claims while the phone's own traffic stopped means it now sends from elsewhere (a NAT
   * rebinding, a phone that took the port unheard): learn again. Bytes from elsewhere while
   * the phone's traffic goes on are strays, which change nothing. bytesReceived counts every
   * packet (RTCP and strays too), rtpBytesReceived only the claimed RTP.
   */
  async poll(): Promise<{ bytesReceived: number; bytesSent: number }> {
    const { unclaimed, claimed, all } = await this.counters();
    // a few hundred bytes of RTCP may arrive in an interval; RTP from elsewhere is far more
    if (unclaimed > 600 && claimed === 0 && !this.relearning && !this.closed && this.plain) await this.relearn();
    return { bytesReceived: all, bytesSent: this.lastSent };
  }

  /** Bytes the transport received since the last reading: claimed RTP, and what nobody claimed. */
  async counters(): Promise<{ unclaimed: number; claimed: number; all: number }> {
    const plain = this.plain;
    if (!plain || this.relearning || this.closed) return { unclaimed: 0, claimed: 0, all: this.lastBytes };
    const [t] = await plain.getStats();
    const all = t?.bytesReceived ?? 0;
    const claimedTotal = t?.rtpBytesReceived ?? 0;
    const claimed = claimedTotal - this.lastClaimed;
    const unclaimed = all - this.lastBytes - claimed;
    this.lastBytes = all;
    this.lastClaimed = claimedTotal;
    this.lastSent = t?.bytesSent ?? this.lastSent;
    return { unclaimed, claimed, all };
  }

  /** The port this leg relays on (its RTP port; RTCP the next one without rtcp-mux). */
  get localPort(): number {
    return this.opts.port;
  }

  /**
   * The worker saw RTP arrive at this leg from an address it does not take (our patched
   * worker says so at once): a phone that moved (a NAT rebinding), or a stray. Two readings
   * 200 ms apart and the periodic check's rule (poll): RTP from elsewhere while the phone's
   * own stopped is the phone, learnt again; strays while it still sends change nothing.
   * MediaService asks at most once a second per leg, however many such packets come.
   */
  async checkSource(): Promise<void> {
    if (this.closed || this.relearning || !this.plain) return;
    await this.counters();
    await new Promise((r) => setTimeout(r, 200));
    await this.poll();
  }

  /** The SSRC learnt (or adopted) last: its producer exists or is being made. */
  get learntSsrc(): number | null {
    return this.learnt?.ssrc ?? null;
  }

  /** Whether this leg relays now (its transport took the port), for the SSRC-change checks. */
  get relaying(): boolean {
    return this.plain !== null && !this.relearning && !this.closed;
  }

  /**
   * The phone sends a new SSRC from the source we latched to (the worker said so): a producer
   * for it on the same transport, and the far leg follows (the 'producer' event).
   */
  async adopt(ssrc: number): Promise<void> {
    if (!this.plain || this.closed || this.relearning) return;
    const source = this.learnt ?? (this.plain.tuple.remoteIp ? { address: this.plain.tuple.remoteIp, port: this.plain.tuple.remotePort!, ssrc, at: Date.now() } : null);
    if (!source) return;
    this.relearnCount++;
    this.learnt = { ...source, ssrc, at: Date.now() };
    await this.produce();
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
    if (this.watch) clearTimeout(this.watch);
    void this.closeSniffer();
    super.close();
    this.plain?.close();
    this.plain = null;
  }
}
