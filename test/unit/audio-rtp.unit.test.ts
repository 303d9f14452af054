import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { isRtcp, parseRtp, RtpPacketizer, rtpPacketSize, serializeRtp, type RtpPacket } from '../../server/audio/rtp.js';

describe('RTP header (RFC 3550 §5.1)', () => {
  it('parses a hand-written PCMU packet', () => {
    const wire = Buffer.from('80 80 1f 40 00 00 03 20 de ad be ef ff ff ff ff'.replace(/ /g, ''), 'hex');
    const p = parseRtp(wire)!;
    assert.equal(p.version, 2);
    assert.equal(p.marker, true);
    assert.equal(p.payloadType, 0);
    assert.equal(p.sequenceNumber, 8000);
    assert.equal(p.timestamp, 800);
    assert.equal(p.ssrc, 0xdeadbeef);
    assert.equal(p.payloadOffset, 12);
    assert.deepEqual([...p.payload], [0xff, 0xff, 0xff, 0xff]);
  });

  it('round-trips every field, with CSRCs, an extension and padding', () => {
    const payload = Buffer.from('hello opus payload');
    const opts = {
      payloadType: 111,
      sequenceNumber: 65535,
      timestamp: 0xfffffff0,
      ssrc: 0x80000001,
      marker: true,
      csrcs: [1, 0xffffffff, 42],
      extension: { profile: 0xbede, data: Uint8Array.of(0x10, 0xaa, 0x21, 0xbb, 0xcc) },
      padding: 4,
    };
    const wire = serializeRtp(opts, payload);
    assert.equal(wire.length, rtpPacketSize(opts, payload.length));
    assert.equal(wire.length, 12 + 12 + 4 + 8 + payload.length + 4);
    const p = parseRtp(wire)!;
    assert.equal(p.padding, true);
    assert.equal(p.extension, true);
    assert.equal(p.csrcCount, 3);
    assert.equal(p.marker, true);
    assert.equal(p.payloadType, 111);
    assert.equal(p.sequenceNumber, 65535);
    assert.equal(p.timestamp, 0xfffffff0);
    assert.equal(p.ssrc, 0x80000001);
    assert.deepEqual(p.csrcs, [1, 0xffffffff, 42]);
    assert.equal(p.extensionProfile, 0xbede);
    // The extension body is padded to whole 32-bit words.
    assert.deepEqual([...p.extensionData], [0x10, 0xaa, 0x21, 0xbb, 0xcc, 0, 0, 0]);
    assert.equal(p.paddingLength, 4);
    assert.equal(p.payloadLength, payload.length);
    assert.deepEqual(Buffer.from(p.payload), payload);
  });

  it('returns the payload as a view of the packet (no copy)', () => {
    const wire = serializeRtp({ payloadType: 8, sequenceNumber: 1, timestamp: 2, ssrc: 3 }, Buffer.alloc(160, 0xd5));
    const p = parseRtp(wire)!;
    assert.equal(p.payload.buffer, wire.buffer);
    assert.equal(p.payload.byteOffset, wire.byteOffset + 12);
    wire[12] = 0x55;
    assert.equal(p.payload[0], 0x55);
  });

  it('reuses a caller object on the hot path', () => {
    const into = {} as RtpPacket;
    const a = serializeRtp({ payloadType: 0, sequenceNumber: 1, timestamp: 160, ssrc: 9 }, Buffer.alloc(4));
    const b = serializeRtp({ payloadType: 0, sequenceNumber: 2, timestamp: 320, ssrc: 9, csrcs: [5] }, Buffer.alloc(4));
    assert.equal(parseRtp(a, into), into);
    assert.equal(into.sequenceNumber, 1);
    assert.deepEqual(into.csrcs, []);
    parseRtp(b, into);
    assert.equal(into.sequenceNumber, 2);
    assert.deepEqual(into.csrcs, [5]);
  });

  it('rejects what is not a well-formed RTP packet', () => {
    const ok = serializeRtp({ payloadType: 0, sequenceNumber: 1, timestamp: 1, ssrc: 1 }, Buffer.alloc(8));
    assert.equal(parseRtp(ok.subarray(0, 11)), undefined, 'too short');
    const v1 = Buffer.from(ok);
    v1[0] = 0x40;
    assert.equal(parseRtp(v1), undefined, 'version 1');
    const cc = Buffer.from(ok);
    cc[0] = 0x8f; // 15 CSRCs do not fit
    assert.equal(parseRtp(cc), undefined, 'CSRCs past the end');
    const ext = serializeRtp(
      { payloadType: 0, sequenceNumber: 1, timestamp: 1, ssrc: 1, extension: { profile: 1, data: new Uint8Array(4) } },
      Buffer.alloc(0),
    );
    ext.writeUInt16BE(100, 14); // extension claims 100 words
    assert.equal(parseRtp(ext), undefined, 'extension past the end');
    const pad = Buffer.from(ok);
    pad[0] |= 0x20;
    pad[pad.length - 1] = 0;
    assert.equal(parseRtp(pad), undefined, 'zero padding count');
    pad[pad.length - 1] = 200;
    assert.equal(parseRtp(pad), undefined, 'padding longer than the packet');
  });

  it('tells RTCP from RTP on a muxed port (RFC 5761 §4)', () => {
    assert.equal(isRtcp(Buffer.from('80c80006', 'hex')), true); // SR
    assert.equal(isRtcp(Buffer.from('81c90007', 'hex')), true); // RR
    assert.equal(isRtcp(Buffer.from('80000001', 'hex')), false); // PCMU
    assert.equal(isRtcp(Buffer.from('80e50001', 'hex')), false); // PT 101 with marker
  });
});

describe('RtpPacketizer', () => {
  it('numbers consecutive packets and advances the timestamp per frame, with wrap-around', () => {
    const tx = new RtpPacketizer({ payloadType: 0, clockRate: 8000, ssrc: 1234, sequenceNumber: 65534, timestamp: 0xffffff00 });
    const packets = [0, 1, 2].map((i) => parseRtp(tx.next(Buffer.alloc(160), { marker: i === 0 }))!);
    assert.deepEqual(
      packets.map((p) => p.sequenceNumber),
      [65534, 65535, 0],
    );
    assert.deepEqual(
      packets.map((p) => p.timestamp),
      [0xffffff00, 0xffffffa0, 0x40],
    );
    assert.deepEqual(
      packets.map((p) => p.marker),
      [true, false, false],
    );
    assert.ok(packets.every((p) => p.ssrc === 1234 && p.payloadType === 0 && p.payloadLength === 160));
  });

  it('keeps the timestamp for explicit ones and skips over silence', () => {
    const tx = new RtpPacketizer({ payloadType: 111, clockRate: 48000, sequenceNumber: 10, timestamp: 1000 });
    assert.equal(tx.samplesPerPacket, 960);
    tx.next(Buffer.alloc(3));
    const ev = parseRtp(tx.packetAt(Buffer.alloc(4), { timestamp: 1960, payloadType: 101, marker: true }))!;
    assert.equal(ev.payloadType, 101);
    assert.equal(ev.sequenceNumber, 11);
    assert.equal(tx.timestamp, 1960);
    tx.skip(960 * 5);
    const after = parseRtp(tx.next(Buffer.alloc(3)))!;
    assert.equal(after.sequenceNumber, 12);
    assert.equal(after.timestamp, 1960 + 4800);
  });

  it('starts from random SSRC, sequence and timestamp by default', () => {
    const a = new RtpPacketizer({ payloadType: 0, clockRate: 8000 });
    const b = new RtpPacketizer({ payloadType: 0, clockRate: 8000 });
    assert.notDeepEqual([a.ssrc, a.sequenceNumber, a.timestamp], [b.ssrc, b.sequenceNumber, b.timestamp]);
  });
});
