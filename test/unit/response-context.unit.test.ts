/** chooseBest in server/proxy/response-context.ts: the final response a proxy forwards (RFC 3261 §16.7 step 6). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { chooseBest } from '../../server/proxy/response-context.js';
import { SipResponse } from '../../server/sip/message.js';
import { reasonPhrase } from '../../server/sip/reply.js';

function res(status: number): SipResponse {
  return new SipResponse(status, reasonPhrase(status), []);
}

function best(...statuses: number[]): number {
  return chooseBest(statuses.map(res)).status;
}

describe('chooseBest', () => {
  it('a single final response is the answer', () => {
    assert.equal(best(404), 404);
  });

  it('any 6xx wins, whatever else came (§16.7 step 6)', () => {
    assert.equal(best(200, 603), 603);
    assert.equal(best(302, 486, 600, 503), 600);
    assert.equal(best(486, 604), 604);
  });

  it('otherwise the lowest class', () => {
    assert.equal(best(503, 486), 486);
    assert.equal(best(486, 302), 302);
    assert.equal(best(500, 408, 301), 301);
    assert.equal(best(502, 500), 502, 'same class: the first');
  });

  it('in 4xx, 401, 407, 415, 420 and 484 are preferred (§16.7 step 6)', () => {
    for (const preferred of [401, 407, 415, 420, 484]) {
      assert.equal(best(404, preferred, 486), preferred, String(preferred));
      assert.equal(best(preferred, 480), preferred, String(preferred));
    }
    assert.equal(best(407, 401), 401, 'in the RFC\'s order');
  });

  it("a phone's own answer beats our failure to reach another phone", () => {
    assert.equal(best(408, 486), 486);
    assert.equal(best(486, 408), 486);
    assert.equal(best(503, 486), 486);
    assert.equal(best(408, 503, 404), 404);
    assert.equal(best(408, 480), 480);
    assert.equal(best(503, 500), 500);
  });

  it('between two answers of the same rank, the first one received', () => {
    const a = res(486);
    const b = res(486);
    assert.equal(chooseBest([a, b]), a);
  });
});
