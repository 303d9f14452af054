/**
 * The gateway ends calls whose media is gone, cleanly (BYE to both phones): a party that
 * stops sending RTP for media.timeout seconds (rtpengine's --timeout), and a mediasoup worker
 * that dies (replaced; the next call works).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { registeredPair, type RtpPhone } from '../helpers/rtp-phone.js';

describe('calls whose media is gone', () => {
  let gw: Gateway;
  let alice: RtpPhone;
  let bob: RtpPhone;

  before(async () => {
    gw = await startTestGateway({ media: { timeout: 2, checkInterval: 200, minPort: 45000, maxPort: 45999 } });
    ({ alice, bob } = await registeredPair(`127.0.0.1:${gw.ports.udp}`));
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await gw?.close();
  });

  test('a phone that stops sending RTP: after the timeout both phones get a BYE', async () => {
    const call = alice.call('bob');
    await call.answered;
    const incoming = await bob.nextIncoming();
    await waitFor('audio both ways', () => incoming.heardTone(440) && call.heardTone(880));
    const ended = new Promise<string>((resolve) => gw.calls.once('ended', (c) => resolve(c.endReason ?? '')));
    call.stopSending();
    const reason = await ended;
    assert.match(reason, /no RTP from caller for 2 s/);
    const [a, b] = await Promise.all([call.waitEnded(5000), incoming.waitEnded(5000)]);
    assert.equal(a.by, 'remote');
    assert.equal(b.by, 'remote');
    assert.equal(gw.media!.size, 0, 'the call\'s media is freed');
  });

  test('a mediasoup worker dies: its call ends with BYE both ways, a new worker takes the next call', async () => {
    const call = alice.call('bob');
    await call.answered;
    const incoming = await bob.nextIncoming();
    await waitFor('audio', () => incoming.heardTone(440));
    const [pid] = gw.media!.pool.pids;
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await Promise.all([call.waitEnded(5000), incoming.waitEnded(5000)]);
    await waitFor('a replacement worker', () => gw.media!.pool.pids.length === 1 && gw.media!.pool.pids[0] !== pid);
    const again = alice.call('bob');
    await again.answered;
    const incoming2 = await bob.nextIncoming();
    await waitFor('audio on the new worker', () => incoming2.heardTone(440) && again.heardTone(880));
    await again.hangup();
  });
});
