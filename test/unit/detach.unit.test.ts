/** server/sip/detach: copies keep the text and nothing else (equality is all a user sees). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { detach } from '../../server/sip/detach.js';

describe('detach', () => {
  it('returns the same text for slices, concatenations, short and empty strings', () => {
    const message = 'REGISTER sip:127.0.0.1 SIP/2.0\r\nCall-ID: 1-4242@127.0.0.1\r\n' + 'x'.repeat(500);
    const slice = message.slice(41, 57);
    assert.equal(detach(slice), '1-4242@127.0.0.1');
    const key = `${message.slice(0, 20)}|127.0.0.1:5061|REGISTER`;
    assert.equal(detach(key), key);
    assert.equal(detach('short'), 'short');
    assert.equal(detach(''), '');
    assert.equal(detach('sip:alice@example.com;transport=ws ünïcode'), 'sip:alice@example.com;transport=ws ünïcode');
  });
});
