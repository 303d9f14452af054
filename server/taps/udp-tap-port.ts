/**
 * A tap's media port inside its worker thread: the far end of the call's tap PlainTransport
 * in mediasoup (server/media/tap-port.ts). mediasoup sends it what each party sends (a
 * consumer per party, told apart by SSRC) and takes the RTP the tap injects, so no packet
 * passes through the main thread. RTCP that mediasoup sends along is ignored. Closing is
 * idempotent.
 *
 * Taps of a thread share UDP sockets, 8 to a socket (ThreadSocket): their mediasoup
 * transports send to it, and a packet's source port (the transport's own) says whose it is.
 * A shared socket reads a burst of packets per wake-up where a socket per tap costs an extra
 * read per packet (the one that finds nothing left) and an epoll entry per tap: about 1.5 us
 * less per packet received, measured; sends cost the same (no lookup: literalLookup).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import type { LegCodecs } from '../media/codecs.js';
import type { Side } from './dialect.js';
import type { MediaCounters, TapSource } from './tap-messages.js';
import type { TapMediaPort } from './tap-pipeline.js';

/** Where a port's mediasoup transport is, and the ports a tap socket may bind. */
export interface TapMediaAddress {
  ip: string;
  port: number;
  range: { min: number; max: number };
}

const RECV_BUFFER_BYTES = 1024 * 1024;

/**
 * Taps per socket. libuv reads at most 32 datagrams from one socket per turn of the event
 * loop: one socket for a whole thread capped its intake below what 100 taps receive (their
 * packets piled up in the socket and were dropped), a socket per tap costs an extra empty
 * read per packet. A few sockets of 8 taps each read their bursts whole.
 */
const PORTS_PER_SOCKET = 8;

/** This thread's media packets (the bench, and the thread's stats answer). */
export const mediaCounters: MediaCounters = { received: 0, strays: 0, unknownSsrc: 0, rtcp: 0, sent: 0 };

/**
 * dgram looks up every destination before sending, a tick later by default (dns.lookup),
 * which would make each send asynchronous and its buffer busy until then. Our destinations
 * are mediasoup's listen address, always an IP literal (checked at bind): no lookup at all.
 */
function literalLookup(address: string, _family: unknown, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  callback(null, address, address.includes(':') ? 6 : 4);
}

/** A socket of the thread on one local address, shared by up to PORTS_PER_SOCKET taps' ports. */
class ThreadSocket {
  /** per local address: the sockets, each with the count of ports given to it (counted before its bind completes) */
  private static readonly byIp = new Map<string, { sock: Promise<ThreadSocket>; users: number }[]>();
  private readonly ports = new Map<number, UdpTapPort>();
  /** socket errors (a send refused, ICMP unreachable reported back): transient on UDP, counted */
  errors = 0;
  lastError: string | null = null;

  private constructor(
    private readonly sock: dgram.Socket,
    readonly ip: string,
  ) {
    sock.on('message', (msg, rinfo) => {
      mediaCounters.received++;
      const port = this.ports.get(rinfo.port);
      if (port) port.onPacket(msg);
      else mediaCounters.strays++;
    });
    // UDP errors are per datagram (ENOBUFS, ECONNREFUSED from an ICMP unreachable): the
    // socket stays; a tap ends with its call, not with one lost packet
    sock.on('error', (e) => {
      this.errors++;
      this.lastError = e.message;
    });
    sock.unref();
  }

  /**
   * A socket of this thread on `media.ip` with room for one more port (bound when none has:
   * in the taps' port range). The port's remove() gives the room back.
   */
  static get(media: TapMediaAddress): Promise<ThreadSocket> {
    let list = ThreadSocket.byIp.get(media.ip);
    if (!list) ThreadSocket.byIp.set(media.ip, (list = []));
    let entry = list.find((e) => e.users < PORTS_PER_SOCKET);
    if (!entry) {
      const sock = ThreadSocket.bind(media);
      const e = { sock, users: 0 };
      entry = e;
      list.push(e);
      // (registered first: runs before any caller's await of the same promise resumes)
      sock.then(
        (t) => (t.room = e),
        () => list.splice(list.indexOf(e), 1),
      );
    }
    entry.users++;
    return entry.sock;
  }

  /** this socket's entry in byIp (its count of ports) */
  private room: { users: number } | null = null;

  /**
   * A port of the taps' range, never an ephemeral one: those may be RTP ports a call's leg
   * later takes over by number.
   */
  private static async bind(media: TapMediaAddress): Promise<ThreadSocket> {
    const { min, max } = media.range;
    if (net.isIP(media.ip) === 0) throw new Error(`not an IP address: ${media.ip}`);
    for (let attempt = 0; ; attempt++) {
      const sock = dgram.createSocket({ type: media.ip.includes(':') ? 'udp6' : 'udp4', lookup: literalLookup });
      const port = min + Math.floor(Math.random() * (max - min + 1));
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.bind(port, media.ip, () => {
            sock.off('error', reject);
            resolve();
          });
        });
        // the packets of 8 taps wait here while the thread is busy: room for a few seconds
        // of them (the kernel caps it at net.core.rmem_max)
        try {
          sock.setRecvBufferSize(RECV_BUFFER_BYTES);
        } catch {
          // the system's default then
        }
        return new ThreadSocket(sock, media.ip);
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

  add(mediaPort: number, port: UdpTapPort): void {
    this.ports.set(mediaPort, port);
  }

  /** A port closed: its room in this socket is free again (the socket stays for the next). */
  remove(mediaPort: number, port: UdpTapPort): void {
    if (this.ports.get(mediaPort) === port) this.ports.delete(mediaPort);
    if (this.room && this.room.users > 0) this.room.users--;
  }

  /** To a transport; sent before this returns (see literalLookup), so callers may reuse `packet`. */
  send(packet: Buffer, mediaPort: number): void {
    mediaCounters.sent++;
    this.sock.send(packet, mediaPort, this.ip);
  }
}

export interface UdpTapPortEvents {
  rtp: [Side, Buffer];
  close: [];
}

export class UdpTapPort extends EventEmitter<UdpTapPortEvents> implements TapMediaPort {
  /** packets whose SSRC is no party's (yet): dropped */
  unknown = 0;
  private readonly sources: Record<Side, TapSource | null>;
  private closed = false;

  private constructor(
    private readonly sock: ThreadSocket,
    private readonly mediaPort: number,
    sources: Record<Side, TapSource | null>,
    private readonly injectFn: (side: Side) => Promise<number>,
  ) {
    super();
    this.sources = { ...sources };
    sock.add(mediaPort, this);
  }

  /** The port towards mediasoup's transport at `media` (its packets are ours from now on). */
  static async open(media: TapMediaAddress, sources: Record<Side, TapSource | null>, inject: (side: Side) => Promise<number>): Promise<UdpTapPort> {
    return new UdpTapPort(await ThreadSocket.get(media), media.port, sources, inject);
  }

  /** The thread's socket's port: where mediasoup's transport sends. */
  get localPort(): number {
    return this.sock.localPort;
  }

  /** the thread socket's errors (shared by its taps) */
  get errors(): number {
    return this.sock.errors;
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
    this.sock.send(packet, this.mediaPort);
  }

  /** A datagram from our transport (ThreadSocket). */
  onPacket(msg: Buffer): void {
    if (this.closed || msg.length < 12 || msg[0]! >> 6 !== 2) return;
    const pt = msg[1]!;
    if (pt >= 192 && pt <= 223) {
      mediaCounters.rtcp++;
      return; // RTCP (RFC 5761 §4): SR/RR from mediasoup
    }
    const ssrc = msg.readUInt32BE(8);
    const side: Side | null = this.sources.caller?.ssrc === ssrc ? 'caller' : this.sources.callee?.ssrc === ssrc ? 'callee' : null;
    if (side === null) {
      this.unknown++;
      mediaCounters.unknownSsrc++;
      return;
    }
    this.emit('rtp', side, msg);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.remove(this.mediaPort, this);
    this.emit('close');
    this.removeAllListeners();
  }
}
