/**
 * One party of a call as the bridge holds it: a mediasoup transport on our side, the
 * producer carrying what the party sends, the consumer carrying what it receives.
 */
import { EventEmitter } from 'node:events';
import type { Consumer, Producer, RtpCapabilities, Transport } from 'mediasoup/types';
import { codecList, toCodecCapability, type LegCodecs } from './codecs.js';
import { MID_EXT, type Fingerprint, type IceCandidate, type LegKind, type RemoteMedia } from './sdp.js';

/** Our side of a leg, as the SDP we send to the party describes it. */
export interface LocalTransport {
  kind: LegKind;
  address: string;
  port: number;
  rtcpPort: number | null;
  rtcpMux: boolean;
  ice: { ufrag: string; pwd: string; candidates: IceCandidate[] } | null;
  fingerprints: Fingerprint[];
}

export interface LegStats {
  kind: LegKind;
  codec: string | null;
  localPort: number;
  remote: string | null;
  packetsReceived: number;
  /** lost on the way from the party to us (RTP sequence gaps) */
  packetsLost: number;
  bytesReceived: number;
  packetsSent: number;
  bytesSent: number;
  /** RTP arriving that no producer claimed (an SSRC we have not learnt yet) */
  unclaimedBytes: number;
  ssrc: number | null;
  state: string;
}

export interface LegEvents {
  /** the producer changed (first created, re-learnt SSRC): consumers of it must follow */
  producer: [];
  /** the transport can send now (connected, latched): it may consume */
  ready: [];
  /** media failed on this leg for good (DTLS failure, transport closed under us) */
  failed: [string];
  /** something refused or odd on this leg, for the log (once per occurrence, not per packet) */
  warning: [string];
}

export abstract class Leg extends EventEmitter<LegEvents> {
  remote: RemoteMedia | null = null;
  /** codecs this party speaks on this call, with its payload types */
  codecs: LegCodecs | null = null;
  producer: Producer | null = null;
  consumer: Consumer | null = null;
  /** producer id the consumer is for */
  consuming: string | null = null;
  protected closed = false;
  /**
   * Since when the party has sent nothing, as the periodic checks saw its counters (null:
   * sending). mediasoup 3.19 reports inactivity only for simulcast streams, so we count.
   */
  quietSince: number | null = Date.now();
  /** a=mid we use towards this party, and the id of the MID header extension */
  mid = '0';
  midExtId: number | null = null;

  constructor(readonly name: string, readonly kind: LegKind) {
    super();
  }

  abstract local(): LocalTransport;
  /** the transport that carries this leg now, or null while an SSRC is being learnt */
  abstract get transport(): Transport | null;
  /** Applies the party's description (connects the transport the first time). */
  abstract setRemote(remote: RemoteMedia): Promise<void>;
  /** Creates (or re-creates) the producer for what the party sends, with these codecs. */
  abstract produce(): Promise<void>;
  abstract stats(): Promise<LegStats>;

  /** The periodic check: one stats request; a phone leg re-learns a changed SSRC here. */
  abstract poll(): Promise<{ bytesReceived: number; bytesSent: number }>;
  /** DTLS role we write in the SDP we send (webrtc legs) */
  abstract setupFor(offering: boolean): 'actpass' | 'active' | 'passive' | null;

  /** Sends a producer of the other party to this one (replacing the previous consumer). */
  async consume(producer: Producer): Promise<void> {
    const transport = this.transport;
    if (!transport || !this.codecs || this.closed) return;
    if (this.consuming === producer.id && this.consumer && !this.consumer.closed) return;
    this.consumer?.close();
    this.consumer = null;
    this.consuming = producer.id;
    const consumer = await transport.consume(this.consumeOptions(producer));
    if (this.closed || this.consuming !== producer.id) {
      consumer.close();
      return;
    }
    this.consumer = consumer;
    consumer.on('producerclose', () => {
      if (this.consumer === consumer) {
        this.consumer = null;
        this.consuming = null;
      }
    });
  }

  /** What a consumer of `producer` on this leg is asked for: this party's codecs and MID. */
  consumeOptions(producer: Producer): { producerId: string; rtpCapabilities: RtpCapabilities; mid?: string } {
    const rtpCapabilities: RtpCapabilities = {
      codecs: codecList(this.codecs!).map(toCodecCapability),
      headerExtensions: this.kind === 'webrtc' && this.midExtId !== null
        ? [{ kind: 'audio', uri: MID_EXT, preferredId: this.midExtId, direction: 'sendrecv' }]
        : [],
    };
    return { producerId: producer.id, rtpCapabilities, ...(this.kind === 'webrtc' ? { mid: this.mid } : {}) };
  }

  /** The SSRC our consumer sends with (for a=ssrc), once it exists. */
  get consumerSsrc(): number | null {
    return this.consumer?.rtpParameters.encodings?.[0]?.ssrc ?? null;
  }

  /**
   * Ends the leg. Its producer and consumer live on its transport, which the subclass closes
   * right after: they go with it in the same request (the far leg's consumer of our producer
   * is closed by the worker), so they are not closed one by one (two requests fewer per leg).
   */
  close(): void {
    this.closed = true;
    this.consumer = null;
    this.producer = null;
    this.removeAllListeners();
  }
}
