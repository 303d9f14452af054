/**
 * What the media bridge leaves behind: nothing. An offer it cannot carry, or one the callee
 * refuses, ends in 488 with no mediasoup object left; 200 calls set up and torn down leave
 * no transport or RTP port in use once media.teardownLinger has passed, and their router
 * closes once it has been idle for media.routerIdleTimeout.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import { freeUdpPort, startTestGateway, waitFor, waitUntilBound } from '../helpers/gateway.js';
import { registerWithSipp, sipp } from '../helpers/sipp.js';

describe('media resources over a call\'s life', () => {
  let gw: Gateway;
  let target: string;

  before(async () => {
    gw = await startTestGateway({ media: { workers: 1, minPort: 46000, maxPort: 46999, routerIdleTimeout: 1 } });
    target = `127.0.0.1:${gw.ports.udp}`;
  });
  after(() => gw.close());

  async function mediaObjects(): Promise<{ routers: number; transports: number; ports: number }> {
    const dump = await gw.media!.pool.dump();
    return {
      routers: dump.reduce((n, w) => n + w.routers, 0),
      transports: dump.reduce((n, w) => n + w.transports, 0),
      ports: gw.media!.portsInUse,
    };
  }

  test('an offer with only codecs the gateway cannot carry gets 488 and leaves nothing', async () => {
    assert.equal((await registerWithSipp(target, 'alice', 'pw-alice', await freeUdpPort())).code, 0);
    const r = await sipp({ scenario: 'uac-488.xml', target, service: 'alice', vars: { pt: 3, rtpmap: 'GSM/8000' } }).done;
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(await mediaObjects(), { routers: 0, transports: 0, ports: 0 });
  });

  test('a callee lacking the offered codec answers 488: forwarded, and nothing left', async () => {
    const uasPort = await freeUdpPort();
    const uas = sipp({ scenario: 'uas-488.xml', port: uasPort });
    await waitUntilBound(uasPort);
    assert.equal((await registerWithSipp(target, 'bob', 'pw-bob', uasPort)).code, 0);
    const r = await sipp({ scenario: 'uac-488.xml', target, service: 'bob', vars: { pt: 111, rtpmap: 'opus/48000/2' } }).done;
    assert.equal(r.code, 0, r.output);
    assert.equal((await uas.done).code, 0);
    await waitFor('media freed', async () => (await mediaObjects()).routers === 0);
    assert.deepEqual(await mediaObjects(), { routers: 0, transports: 0, ports: 0 });
  });

  test('200 calls set up and torn down leave no transport behind; their idle router closes', async () => {
    const uasPort = await freeUdpPort();
    const uas = sipp({ scenario: 'uas.xml', port: uasPort, calls: 200, timeoutS: 60 });
    await waitUntilBound(uasPort);
    assert.equal((await registerWithSipp(target, 'uas', 'pw-uas', uasPort)).code, 0);
    const uac = await sipp({ scenario: 'uac.xml', target, service: 'uas', calls: 200, rate: 50, holdMs: 100, timeoutS: 60 }).done;
    const callee = await uas.done;
    assert.equal(uac.code, 0, uac.output.slice(-3000));
    assert.equal(callee.code, 0, callee.output.slice(-3000));
    assert.equal(uac.successful, 200);
    await waitFor('every call over', () => gw.calls.size === 0);
    // the last calls' media relay for media.teardownLinger (1 s) after their BYE, then go
    await waitFor('the lingering media closed', () => gw.media!.lingeringCount === 0, 5000);
    const left = await mediaObjects();
    assert.deepEqual({ transports: left.transports, ports: left.ports }, { transports: 0, ports: 0 });
    // the calls shared one router (same numbering), kept for the next call for a second
    assert.ok(left.routers <= 1, `${left.routers} routers left`);
    await waitFor('the idle router closed', async () => (await mediaObjects()).routers === 0, 5000);
  });
});
