import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DialogSet } from '../../server/proxy/dialog-set.js';

test('a dialog is known by its Call-ID and both tags, from either side', () => {
  const d = new DialogSet({ max: 10 });
  d.add('call-1', 'caller-tag', 'callee-tag', 1000);
  assert.equal(d.has('call-1', 'caller-tag', 'callee-tag', 0), true);
  assert.equal(d.has('call-1', 'callee-tag', 'caller-tag', 0), true, 'a BYE from the callee');
  assert.equal(d.has('call-1', 'caller-tag', 'forged', 0), false, 'a forged To tag');
  assert.equal(d.has('call-1', 'forged', 'callee-tag', 0), false, 'a forged From tag');
  assert.equal(d.has('call-2', 'caller-tag', 'callee-tag', 0), false, 'another Call-ID');
  assert.equal(d.has('call-1', 'caller-tag', null, 0), false);
  d.delete('call-1', 'callee-tag', 'caller-tag');
  assert.equal(d.has('call-1', 'caller-tag', 'callee-tag', 0), false);
});

test('dialogs expire, refresh to the later expiry, and the set is bounded', () => {
  const d = new DialogSet({ max: 3 });
  d.add('a', '1', '2', 100);
  d.add('a', '1', '2', 50);
  assert.equal(d.has('a', '1', '2', 99), true, 'the later expiry is kept');
  assert.equal(d.has('a', '1', '2', 100), false, 'expired');
  assert.equal(d.size, 0, 'an expired dialog is forgotten when asked for');
  d.add('b', '1', '2', 1000);
  d.add('c', '1', '2', 1000);
  d.add('d', '1', '2', 1000);
  d.has('b', '1', '2', 0); // b used: c is now the least recently used
  d.add('e', '1', '2', 1000);
  assert.equal(d.size, 3);
  assert.equal(d.evicted, 1);
  assert.equal(d.has('c', '1', '2', 0), false);
  assert.equal(d.has('b', '1', '2', 0), true);
  d.add('f', '1', '2', 10);
  assert.equal(d.sweep(20), 1);
});
