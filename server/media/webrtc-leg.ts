/**
 * A browser's leg: a WebRtcTransport (ICE-lite, DTLS-SRTP, rtcp-mux, one BUNDLEd audio
 * m-line) on the announced address. What the browser sends is routed by its MID header
 * extension (and its a=ssrc when it gives one), so its SSRC need not be known in advance.
 */
import type { Router, WebRtcTransport } from 'mediasoup/types';
import { codecList, toRtpCodec } from './codecs.js';
import { Leg, type LegStats, type LocalTransport } from './leg.js';
import { MID_EXT, MID_EXT_ID, type RemoteMedia } from './sdp.js';

export interface WebRtcLegOptions {
  listenIp: string;
  announcedAddress: string;
  port: number;
}

export class WebRtcLeg extends Leg {
  private connected = false;
  private dtlsState = 'new';

  private constructor(name: string, readonly webrtc: WebRtcTransport, private readonly opts: WebRtcLegOptions) {
    super(name, 'webrtc');
    webrtc.on('dtlsstatechange', (state) => {
      this.dtlsState = state;
      if (state === 'failed') this.emit('failed', 'DTLS handshake failed');
      if (state === 'connected') this.emit('ready');
    });
  }

  static async create(name: string, router: Router, opts: WebRtcLegOptions): Promise<WebRtcLeg> {
    const webrtc = await router.createWebRtcTransport({
      listenInfos: [{ protocol: 'udp', ip: opts.listenIp, announcedAddress: opts.announcedAddress, port: opts.port }],
      enableUdp: true,
      enableTcp: false,
      initialAvailableOutgoingBitrate: 300_000,
    });
    return new WebRtcLeg(name, webrtc, opts);
  }

  get transport(): WebRtcTransport {
    return this.webrtc;
  }

  local(): LocalTransport {
    const t = this.webrtc;
    return {
      kind: 'webrtc',
      address: this.opts.announcedAddress,
      port: this.opts.port,
      rtcpPort: null,
      rtcpMux: true,
      ice: {
        ufrag: t.iceParameters.usernameFragment,
        pwd: t.iceParameters.password,
        candidates: t.iceCandidates.map((c) => ({
          foundation: c.foundation,
          priority: c.priority,
          ip: c.address ?? c.ip,
          port: c.port,
          protocol: c.protocol,
          type: 'host' as const,
        })),
      },
      fingerprints: t.dtlsParameters.fingerprints.filter((f) => f.algorithm === 'sha-256').map((f) => ({ algorithm: f.algorithm, value: f.value })),
    };
  }

  /**
   * We offer actpass and answer passive (rtpengine's DTLS=passive): the browser then opens
   * the DTLS connection, after its ICE checks reach us.
   */
  setupFor(offering: boolean): 'actpass' | 'active' | 'passive' {
    if (offering) return 'actpass';
    return this.remote?.setup === 'passive' ? 'active' : 'passive';
  }

  async setRemote(remote: RemoteMedia): Promise<void> {
    const first = this.remote === null;
    this.remote = remote;
    if (remote.mid !== null) this.mid = remote.mid;
    // only mediasoup's own id for MID can be used (see MID_EXT_ID)
    this.midExtId = remote.midExtId === MID_EXT_ID ? MID_EXT_ID : null;
    if (this.connected || remote.fingerprints.length === 0) return;
    // the party's DTLS role: active -> it is the client; passive -> the server; actpass
    // (it offered, we answered passive) -> it will be the client
    const role = remote.setup === 'passive' ? 'server' : 'client';
    this.connected = true;
    await this.webrtc.connect({ dtlsParameters: { role, fingerprints: remote.fingerprints.map((f) => ({ algorithm: f.algorithm as 'sha-256', value: f.value })) } });
    if (first) this.emit('ready');
  }

  async produce(): Promise<void> {
    if (!this.codecs || !this.remote || this.closed) return;
    this.producer?.close();
    this.producer = null;
    const remote = this.remote;
    this.producer = await this.webrtc.produce({
      kind: 'audio',
      rtpParameters: {
        ...(remote.mid !== null && this.midExtId !== null ? { mid: remote.mid } : {}),
        codecs: codecList(this.codecs).map(toRtpCodec),
        headerExtensions: this.midExtId !== null ? [{ uri: MID_EXT, id: this.midExtId }] : [],
        encodings: [remote.ssrc !== null ? { ssrc: remote.ssrc } : {}],
        rtcp: { cname: remote.cname ?? `${this.name}-cname`, reducedSize: true },
      },
    });
    this.emit('producer');
  }

  async poll(): Promise<{ bytesReceived: number; bytesSent: number }> {
    const [t] = await this.webrtc.getStats();
    return { bytesReceived: t?.bytesReceived ?? 0, bytesSent: t?.bytesSent ?? 0 };
  }

  async stats(): Promise<LegStats> {
    const [t] = await this.webrtc.getStats();
    const p = this.producer ? await this.producer.getStats() : [];
    return {
      kind: 'webrtc',
      codec: this.codecs?.media.name ?? null,
      localPort: this.opts.port,
      remote: t?.iceSelectedTuple ? `${t.iceSelectedTuple.remoteIp}:${t.iceSelectedTuple.remotePort}` : null,
      packetsReceived: p.reduce((n, s) => n + s.packetCount, 0),
      packetsLost: p.reduce((n, s) => n + (s.packetsLost ?? 0), 0),
      bytesReceived: t?.bytesReceived ?? 0,
      packetsSent: 0,
      bytesSent: t?.bytesSent ?? 0,
      unclaimedBytes: 0,
      ssrc: this.remote?.ssrc ?? null,
      state: `ice ${t?.iceState ?? '?'}, dtls ${this.dtlsState}`,
    };
  }

  override close(): void {
    super.close();
    this.webrtc.close();
  }
}
