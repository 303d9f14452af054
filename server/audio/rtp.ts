/**
 * Minimal RTP (RFC 3550 §5.1) header parsing and building, zero-copy: a parsed packet's
 * payload and extension data are subarrays of the input buffer.
 *
 *   0                   1                   2                   3
 *  |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 *  |                           timestamp                           |
 *  |           synchronization source (SSRC) identifier            |
 *  |            contributing source (CSRC) identifiers (CC x 32)   |
 *  | extension: profile (16) | length in 32-bit words (16) | data  |  (if X, §5.3.1)
 *  | payload ...                          | padding, last byte = count (if P) |
 */

import { getRandomValues } from 'node:crypto';

export interface RtpHeader {
  /** Always 2 for packets parseRtp accepts. */
  version: number;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  /** CSRC identifiers (empty unless CC > 0). */
  csrcs: number[];
  /** Header extension (§5.3.1): the 16-bit profile field, e.g. 0xBEDE for RFC 8285 one-byte. */
  extensionProfile: number;
  /** Extension body (without its 4-byte header), a view into the packet; empty when none. */
  extensionData: Uint8Array;
  /** Offset of the payload in the packet. */
  payloadOffset: number;
  /** Payload length (padding excluded). */
  payloadLength: number;
  /** Number of padding bytes at the end (0 without P). */
  paddingLength: number;
}

export interface RtpPacket extends RtpHeader {
  /** The payload, a view into the parsed buffer (no copy). */
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const NO_CSRCS: number[] = [];

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * RTP or RTCP? RFC 5761 §4: with rtcp-mux, the second byte of RTCP is 192-223 (the packet
 * types SR 200, RR 201, SDES, BYE, APP... with what would be the marker bit set), which RTP
 * payload types 64-95 would collide with; those are not used for RTP.
 */
export function isRtcp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0]! >> 6 === 2 && buf[1]! >= 192 && buf[1]! <= 223;
}

/**
 * Parse an RTP packet; undefined if it is not one (too short, version not 2, lengths that
 * do not fit). Pass `into` to reuse an object on the hot path (its csrcs array is replaced).
 */
export function parseRtp(buf: Uint8Array, into?: RtpPacket): RtpPacket | undefined {
  const len = buf.length;
  if (len < 12) return undefined;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  if (b0 >> 6 !== 2) return undefined;
  const padding = (b0 & 0x20) !== 0;
  const extension = (b0 & 0x10) !== 0;
  const cc = b0 & 0x0f;
  let off = 12 + 4 * cc;
  if (off > len) return undefined;
  let csrcs = NO_CSRCS;
  if (cc > 0) {
    csrcs = new Array<number>(cc);
    for (let i = 0; i < cc; i++) csrcs[i] = u32(buf, 12 + 4 * i);
  }
  let extensionProfile = 0;
  let extensionData: Uint8Array = EMPTY;
  if (extension) {
    if (off + 4 > len) return undefined;
    extensionProfile = (buf[off]! << 8) | buf[off + 1]!;
    const words = (buf[off + 2]! << 8) | buf[off + 3]!;
    const end = off + 4 + 4 * words;
    if (end > len) return undefined;
    extensionData = buf.subarray(off + 4, end);
    off = end;
  }
  let paddingLength = 0;
  if (padding) {
    // §5.1: the last octet counts the padding octets, itself included.
    paddingLength = buf[len - 1]!;
    if (paddingLength === 0 || off + paddingLength > len) return undefined;
  }
  const payloadLength = len - off - paddingLength;
  const p = into ?? ({} as RtpPacket);
  p.version = 2;
  p.padding = padding;
  p.extension = extension;
  p.csrcCount = cc;
  p.marker = (b1 & 0x80) !== 0;
  p.payloadType = b1 & 0x7f;
  p.sequenceNumber = (buf[2]! << 8) | buf[3]!;
  p.timestamp = u32(buf, 4);
  p.ssrc = u32(buf, 8);
  p.csrcs = csrcs;
  p.extensionProfile = extensionProfile;
  p.extensionData = extensionData;
  p.payloadOffset = off;
  p.payloadLength = payloadLength;
  p.paddingLength = paddingLength;
  p.payload = buf.subarray(off, off + payloadLength);
  return p;
}

export interface RtpBuildOptions {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker?: boolean;
  csrcs?: readonly number[];
  /** Header extension: profile and body (the body is zero-padded to a multiple of 4). */
  extension?: { profile: number; data: Uint8Array };
  /** Padding bytes to append (1-255), e.g. for SRTP block alignment; default none. */
  padding?: number;
}

/** Size of the packet serializeRtp will build. */
export function rtpPacketSize(opts: RtpBuildOptions, payloadLength: number): number {
  const cc = opts.csrcs?.length ?? 0;
  const ext = opts.extension ? 4 + 4 * Math.ceil(opts.extension.data.length / 4) : 0;
  return 12 + 4 * cc + ext + payloadLength + (opts.padding ?? 0);
}

/**
 * Build a packet: header + payload (+ padding). Writes into `out` when given (it must be
 * at least rtpPacketSize long; the returned Buffer is a view of the written part).
 */
export function serializeRtp(opts: RtpBuildOptions, payload: Uint8Array, out?: Buffer): Buffer {
  const cc = opts.csrcs?.length ?? 0;
  if (cc > 15) throw new RangeError('at most 15 CSRCs');
  const pad = opts.padding ?? 0;
  if (pad < 0 || pad > 255) throw new RangeError('padding must be 0-255 bytes');
  const size = rtpPacketSize(opts, payload.length);
  const b = out === undefined ? Buffer.allocUnsafe(size) : out.subarray(0, size);
  if (b.length < size) throw new RangeError(`out holds ${b.length} bytes, need ${size}`);
  b[0] = 0x80 | (pad > 0 ? 0x20 : 0) | (opts.extension ? 0x10 : 0) | cc;
  b[1] = (opts.marker ? 0x80 : 0) | (opts.payloadType & 0x7f);
  b.writeUInt16BE(opts.sequenceNumber & 0xffff, 2);
  b.writeUInt32BE(opts.timestamp >>> 0, 4);
  b.writeUInt32BE(opts.ssrc >>> 0, 8);
  let off = 12;
  for (let i = 0; i < cc; i++, off += 4) b.writeUInt32BE(opts.csrcs![i]! >>> 0, off);
  if (opts.extension) {
    const data = opts.extension.data;
    const words = Math.ceil(data.length / 4);
    b.writeUInt16BE(opts.extension.profile & 0xffff, off);
    b.writeUInt16BE(words, off + 2);
    b.set(data, off + 4);
    b.fill(0, off + 4 + data.length, off + 4 + 4 * words);
    off += 4 + 4 * words;
  }
  b.set(payload, off);
  off += payload.length;
  if (pad > 0) {
    b.fill(0, off, off + pad - 1);
    b[off + pad - 1] = pad;
  }
  return b;
}

export interface RtpPacketizerOptions {
  payloadType: number;
  /** RTP clock rate (8000 for PCMU/PCMA/G.722, 48000 for Opus). */
  clockRate: number;
  /** Timestamp units per packet (default 20 ms worth). */
  samplesPerPacket?: number;
  /** Initial values; random by default as RFC 3550 §5.1 recommends. */
  ssrc?: number;
  sequenceNumber?: number;
  timestamp?: number;
}

/**
 * Sequence/timestamp/SSRC state of one outgoing stream. The sequence number advances by
 * one per packet; the timestamp by the samples each packet covers, and also across silence
 * that is not sent (skip), so the receiver's playout stays in time (§5.1).
 */
export class RtpPacketizer {
  payloadType: number;
  readonly clockRate: number;
  readonly samplesPerPacket: number;
  ssrc: number;
  /** Sequence number of the next packet. */
  sequenceNumber: number;
  /** Timestamp of the next packet. */
  timestamp: number;

  constructor(opts: RtpPacketizerOptions) {
    const rnd = new Uint32Array(3);
    getRandomValues(rnd);
    this.payloadType = opts.payloadType;
    this.clockRate = opts.clockRate;
    this.samplesPerPacket = opts.samplesPerPacket ?? Math.round(opts.clockRate / 50);
    this.ssrc = (opts.ssrc ?? rnd[0]!) >>> 0;
    this.sequenceNumber = (opts.sequenceNumber ?? rnd[1]!) & 0xffff;
    this.timestamp = (opts.timestamp ?? rnd[2]!) >>> 0;
  }

  /**
   * The next packet for `payload`, then advance: sequence by 1, timestamp by `samples`
   * (default samplesPerPacket). Set `marker` on the first packet after silence (RFC 3551 §4.1).
   */
  next(payload: Uint8Array, opts: { marker?: boolean; samples?: number; payloadType?: number; out?: Buffer } = {}): Buffer {
    const pkt = serializeRtp(
      {
        payloadType: opts.payloadType ?? this.payloadType,
        sequenceNumber: this.sequenceNumber,
        timestamp: this.timestamp,
        ssrc: this.ssrc,
        marker: opts.marker ?? false,
      },
      payload,
      opts.out,
    );
    this.sequenceNumber = (this.sequenceNumber + 1) & 0xffff;
    this.timestamp = (this.timestamp + (opts.samples ?? this.samplesPerPacket)) >>> 0;
    return pkt;
  }

  /**
   * A packet with an explicit timestamp that does not advance the timestamp (telephone-event
   * updates and end retransmissions share the event's start timestamp, RFC 4733 §2.5.1);
   * it still takes the next sequence number.
   */
  packetAt(payload: Uint8Array, opts: { timestamp: number; marker?: boolean; payloadType?: number; out?: Buffer }): Buffer {
    const pkt = serializeRtp(
      {
        payloadType: opts.payloadType ?? this.payloadType,
        sequenceNumber: this.sequenceNumber,
        timestamp: opts.timestamp,
        ssrc: this.ssrc,
        marker: opts.marker ?? false,
      },
      payload,
      opts.out,
    );
    this.sequenceNumber = (this.sequenceNumber + 1) & 0xffff;
    return pkt;
  }

  /** Advance the timestamp over `samples` not sent (silence suppression, DTX). */
  skip(samples: number): void {
    this.timestamp = (this.timestamp + samples) >>> 0;
  }
}
