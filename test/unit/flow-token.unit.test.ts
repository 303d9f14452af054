import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { FlowTokens } from '../../server/proxy/flow-token.js';

const tokens = new FlowTokens(randomBytes(32));

test('forged, altered or foreign tokens name nothing', () => {
  const udp = tokens.mint({ transport: 'udp', address: '203.0.113.50', port: 61000 })!;
  // today's unsigned form of "127.0.0.2 5060", as an attacker would write it
  const forged = 'u' + Buffer.from('127.0.0.2 5060').toString('base64url');
  assert.equal(tokens.read(forged, 'udp'), null);
  assert.equal(tokens.read(forged + '.AAAAAAAAAAAAAAAA', 'udp'), null);
  // the address part swapped, the MAC kept
  const [, mac] = udp.split('.');
  assert.equal(tokens.read(forged + '.' + mac, 'udp'), null);
  // minted under another install's secret
  const other = new FlowTokens(randomBytes(32)).mint({ transport: 'udp', address: '203.0.113.50', port: 61000 })!;
  assert.equal(tokens.read(other, 'udp'), null);
  for (const junk of ['', 'w', 'w.', 'wabc', '.'.repeat(20), 'x'.repeat(300)]) assert.equal(tokens.read(junk, 'ws'), null);
});

test('the same secret reads tokens minted before a restart (registrations and dialogs survive)', () => {
  const key = randomBytes(32);
  const before = new FlowTokens(key).mint({ transport: 'udp', address: '192.0.2.9', port: 40000 })!;
  assert.deepEqual(new FlowTokens(Buffer.from(key)).read(before, 'udp'), { transport: 'udp', address: '192.0.2.9', port: 40000 });
});
