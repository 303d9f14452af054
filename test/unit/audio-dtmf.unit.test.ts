import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  decodeTelephoneEvent,
  digitPackets,
  digitToEvent,
  DtmfReceiver,
  encodeTelephoneEvent,
  eventToDigit,
} from '../../server/audio/dtmf.js';
import { parseRtp, RtpPacketizer } from '../../server/audio/rtp.js';

describe('RFC 4733 telephone-event', () => {
  it('encodes the payload layout of §2.3', () => {
    const p = encodeTelephoneEvent({ event: 5, end: true, volume: 10, duration: 800 });
    assert.deepEqual([...p], [0x05, 0x8a, 0x03, 0x20]);
    assert.deepEqual(decodeTelephoneEvent(Uint8Array.of(0x0b, 0x0a, 0x00, 0xa0)), {
      event: 11,
      end: false,
      volume: 10,
      duration: 160,
    });
    assert.equal(decodeTelephoneEvent(Uint8Array.of(1, 2, 3)), undefined);
    assert.throws(() => encodeTelephoneEvent({ event: 1, end: false, volume: 10, duration: 70000 }), RangeError);
  });

  it('maps the 16 DTMF keys to event codes 0-15 and back', () => {
    const keys = '0123456789*#ABCD';
    [...keys].forEach((k, i) => {
      assert.equal(digitToEvent(k), i);
      assert.equal(eventToDigit(i), k);
    });
    assert.equal(digitToEvent('d'), 15);
    assert.equal(eventToDigit(16), undefined);
    assert.throws(() => digitToEvent('E'), RangeError);
    assert.throws(() => digitToEvent('12'), RangeError);
  });

  it('builds the usual packet sequence for one digit', () => {
    const packets = digitPackets('7', { durationMs: 100, clockRate: 8000, intervalMs: 20 });
    const events = packets.map((p) => decodeTelephoneEvent(p.payload)!);
    assert.ok(events.every((e) => e.event === 7 && e.volume === 10));
    assert.deepEqual(
      packets.map((p) => p.marker),
      packets.map((_, i) => i === 0),
    );
    const updates = events.filter((e) => !e.end);
    const ends = events.filter((e) => e.end);
    assert.ok(updates.length >= 1);
    for (let i = 1; i < updates.length; i++) assert.ok(updates[i]!.duration > updates[i - 1]!.duration);
    assert.equal(ends.length, 3);
    assert.ok(ends.every((e) => e.duration === 800));
    assert.ok(events.slice(-3).every((e) => e.end));
    // Durations scale with the clock rate (48000 with Opus).
    const opus = digitPackets('1', { clockRate: 48000 }).map((p) => decodeTelephoneEvent(p.payload)!);
    assert.equal(opus.at(-1)!.duration, 4800);
  });

  it('digits sent as RTP come out once each, in order', () => {
    const tx = new RtpPacketizer({ payloadType: 101, clockRate: 8000 });
    const rx = new DtmfReceiver();
    const got: string[] = [];
    for (const digit of '123#*A') {
      const ts = tx.timestamp;
      for (const p of digitPackets(digit)) {
        const wire = tx.packetAt(p.payload, { timestamp: ts, marker: p.marker });
        const pkt = parseRtp(wire)!;
        assert.equal(pkt.payloadType, 101);
        got.push(...rx.push(pkt.timestamp, pkt.payload).map((d) => d.digit));
      }
      tx.skip(8000 / 10); // the audio stream moves on
    }
    assert.equal(got.join(''), '123#*A');
  });

  it('reports a digit whose end packets were all lost when the next one starts', () => {
    const rx = new DtmfReceiver();
    const five = digitPackets('5').filter((p) => !p.end);
    const got: string[] = [];
    for (const p of five) got.push(...rx.push(1000, p.payload).map((d) => d.digit));
    assert.equal(got.length, 0, "nothing before the event ends");
    for (const p of digitPackets('6')) got.push(...rx.push(3000, p.payload).map((d) => d.digit));
    assert.deepEqual(got, ['5', '6']);
    assert.deepEqual(rx.flush(), []);
    const rx2 = new DtmfReceiver();
    rx2.push(0, five[0]!.payload);
    assert.deepEqual(
      rx2.flush().map((d) => d.digit),
      ['5'],
    );
  });
});
