/**
 * Where a phone leg latches (server/media/latch.ts) and which RTP ports it gets
 * (server/media/port-allocator.ts): the rules against RTP bleed, without sockets.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RtpLatch } from '../../server/media/latch.js';
import { PortAllocator } from '../../server/media/port-allocator.js';

function rtp(ssrc: number, seq: number): Buffer {
  const b = Buffer.alloc(172);
  b[0] = 0x80;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ssrc, 8);
  return b;
}

const phone = { address: '192.0.2.10', port: 4000 };
const outsider = { address: '198.51.100.7', port: 5000 };

describe('RtpLatch', () => {
  test('a packet from the SDP address latches at once, with that packet', () => {
    const l = new RtpLatch({ probation: 4 });
    l.expect(phone.address);
    const got = l.packet(rtp(11, 100), phone);
    assert.deepEqual(got, { ...phone, ssrc: 11, why: 'sdp', packets: 1 });
  });

  test('a few stray packets from elsewhere never latch; the phone still does', () => {
    const l = new RtpLatch({ probation: 4 });
    l.expect(phone.address);
    for (let i = 0; i < 3; i++) assert.equal(l.packet(rtp(99, 7 + i), outsider), null);
    const got = l.packet(rtp(11, 100), phone);
    assert.equal(got?.address, phone.address);
    assert.match(l.ignored.join(), /198\.51\.100\.7:5000 \(3 packets\)/);
  });

  test('behind NAT (the SDP names another address): latches after `probation` packets in sequence', () => {
    const l = new RtpLatch({ probation: 4 });
    l.expect('10.0.0.5');
    assert.equal(l.packet(rtp(5, 1), phone), null);
    assert.equal(l.packet(rtp(5, 2), phone), null);
    assert.equal(l.packet(rtp(5, 3), phone), null);
    const got = l.packet(rtp(5, 4), phone);
    assert.equal(got?.why, 'probation');
    assert.equal(got?.packets, 4);
  });

  test('out of sequence, another SSRC, or wrapping: the run counts as it should', () => {
    const l = new RtpLatch({ probation: 3 });
    assert.equal(l.packet(rtp(5, 1), outsider), null);
    assert.equal(l.packet(rtp(5, 3), outsider), null); // a gap restarts the run
    assert.equal(l.packet(rtp(6, 4), outsider), null); // so does another SSRC
    assert.equal(l.packet(rtp(6, 0xffff), outsider), null);
    assert.equal(l.packet(rtp(6, 0), outsider), null); // 65535 -> 0 is in sequence
    assert.equal(l.packet(rtp(6, 1), outsider)?.why, 'probation');
  });

  test('packets before the SDP: the SDP, when it comes, latches the source it names', () => {
    const l = new RtpLatch({ probation: 4 });
    assert.equal(l.packet(rtp(3, 10), outsider), null);
    assert.equal(l.packet(rtp(11, 50), phone), null);
    const got = l.expect(phone.address);
    assert.equal(got?.address, phone.address);
    assert.equal(got?.packets, 1);
  });

  test('learning again trusts the source latched before', () => {
    const l = new RtpLatch({ probation: 4 });
    l.restart(phone);
    assert.equal(l.packet(rtp(77, 1), phone)?.why, 'previous');
  });

  test('bounded: the sources tracked', () => {
    const l = new RtpLatch({ probation: 1000, maxSources: 4 });
    for (let i = 0; i < 100; i++) l.packet(rtp(1, 0), { address: `203.0.113.${i}`, port: 1000 });
    assert.equal(l.expect('203.0.113.0'), null); // forgotten: only the last 4 sources are kept
    assert.equal(l.expect('203.0.113.99')?.packets, 1);
  });
});

describe('PortAllocator', () => {
  test('even ports of the range, drawn at random, not in order', () => {
    const a = new PortAllocator(20000, 29999);
    const ports = Array.from({ length: 40 }, () => a.allocate()!);
    for (const p of ports) assert.ok(p % 2 === 0 && p >= 20000 && p <= 29998, String(p));
    assert.equal(new Set(ports).size, ports.length);
    const steps = ports.slice(1).map((p, i) => p - ports[i]!);
    assert.ok(steps.filter((d) => d === 2).length < 5, `ports handed out in sequence: ${ports.join(',')}`);
    assert.notEqual(ports[0], 20000);
  });

  test('fills the whole range, then says so; a released port is given again', () => {
    const a = new PortAllocator(30001, 30011); // even ports 30002..30010 with odd neighbours
    const got = new Set<number>();
    for (let i = 0; i < 5; i++) got.add(a.allocate()!);
    assert.deepEqual([...got].sort(), [30002, 30004, 30006, 30008, 30010]);
    assert.equal(a.allocate(), null);
    a.release(30006);
    assert.equal(a.allocate(), 30006);
    assert.equal(a.inUse, 5);
  });
});
