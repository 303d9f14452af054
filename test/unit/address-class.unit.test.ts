import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CidrError, CidrSet, isInternalAddress, isPrivateAddress } from '../../server/net/address-class.js';

test('private sources are exactly loopback, RFC 1918, RFC 4193 and link-local', () => {
  for (const a of ['127.0.0.1', '::1', '10.1.2.3', '172.31.255.1', '192.168.0.10', 'fd12::1', '169.254.1.1', 'fe80::1', '::ffff:192.168.1.1']) {
    assert.equal(isPrivateAddress(a), true, a);
  }
  for (const a of ['198.18.0.1', '172.32.0.1', '8.8.8.8', '2001:db8::1', '100.64.0.1', 'example.com', '']) {
    assert.equal(isPrivateAddress(a), false, a);
  }
});

test('internal addresses include metadata endpoints, CGNAT, unspecified and multicast', () => {
  for (const a of ['169.254.169.254', 'fd00:ec2::254', '0.0.0.0', '::', '100.64.1.1', '224.0.0.1', '::ffff:127.0.0.1']) {
    assert.equal(isInternalAddress(a), true, a);
  }
  assert.equal(isInternalAddress('198.18.0.5'), false);
});

test('a CIDR set matches its ranges and single addresses, and names what it cannot read', () => {
  const s = new CidrSet(['198.18.0.0/15', '2001:db8::/32', '203.0.113.7']);
  assert.equal(s.has('198.19.255.255'), true);
  assert.equal(s.has('198.20.0.0'), false);
  assert.equal(s.has('2001:db8::42'), true);
  assert.equal(s.has('203.0.113.7'), true);
  assert.equal(s.has('203.0.113.8'), false);
  assert.throws(() => new CidrSet(['10.0.0.0/33']), CidrError);
  assert.throws(() => new CidrSet(['office']), /not an IP address/);
  assert.throws(() => new CidrSet(['10.0.0.0/x']), CidrError);
});
