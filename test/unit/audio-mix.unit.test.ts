import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { deinterleaveStereo, downmixStereo, interleaveStereo, mixMono } from '../../server/audio/mix.js';
import { goertzelPower, sine } from '../../server/audio/tone.js';

describe('mixing', () => {
  it('sums two signals sample by sample', () => {
    assert.deepEqual(mixMono(Int16Array.of(1, -2, 300), Int16Array.of(10, 20, -300)), Int16Array.of(11, 18, 0));
  });

  it('clips at the int16 limits instead of wrapping around', () => {
    const out = mixMono(Int16Array.of(30000, -30000, 32767, -32768), Int16Array.of(30000, -30000, 1, -1));
    assert.deepEqual(out, Int16Array.of(32767, -32768, 32767, -32768));
  });

  it('mixes in place and into a caller buffer; mixes the shorter length', () => {
    const a = Int16Array.of(1, 2, 3);
    assert.equal(mixMono(a, Int16Array.of(1, 1, 1), a), a);
    assert.deepEqual(a, Int16Array.of(2, 3, 4));
    assert.equal(mixMono(Int16Array.of(1, 2, 3), Int16Array.of(1)).length, 1);
    assert.throws(() => mixMono(a, a, new Int16Array(2)), RangeError);
  });

  it('keeps both parties audible in the mix', () => {
    const caller = sine(440, 8000, 200, 6000);
    const callee = sine(1000, 8000, 200, 6000);
    const mixed = mixMono(caller, callee);
    const p440 = goertzelPower(mixed, 8000, 440);
    const p1000 = goertzelPower(mixed, 8000, 1000);
    assert.ok(Math.abs(p440 / p1000 - 1) < 0.05);
    assert.ok(p440 > 100 * goertzelPower(mixed, 8000, 700));
  });

  it('interleaves left/right as L R L R and splits them back', () => {
    const left = Int16Array.of(1, 2, 3);
    const right = Int16Array.of(-1, -2, -3);
    const st = interleaveStereo(left, right);
    assert.deepEqual(st, Int16Array.of(1, -1, 2, -2, 3, -3));
    const back = deinterleaveStereo(st);
    assert.deepEqual(back.left, left);
    assert.deepEqual(back.right, right);
    const out = new Int16Array(6);
    assert.equal(interleaveStereo(left, right, out), out);
  });

  it('downmixes stereo to mono by averaging, without overflow', () => {
    assert.deepEqual(downmixStereo(Int16Array.of(32767, 32767, -32768, -32768, 100, -100)), Int16Array.of(32767, -32768, 0));
  });
});
