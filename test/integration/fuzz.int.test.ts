/**
 * Garbage in, service on: 10,000 random mutations of valid messages over UDP and 10,000 over
 * a WebSocket, then the gateway must still answer OPTIONS, challenge a REGISTER and route a
 * call. The mutations are seeded: a failure names its seed and can be replayed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import type { Gateway } from '../../server/gateway.js';
import { projectRoot } from '../../server/paths.js';
import { startTestGateway } from '../helpers/gateway.js';
import { request, UdpSipClient } from '../helpers/sip-client.js';

const SEED = Number(process.env.FUZZ_SEED ?? 4475);
const COUNT = Number(process.env.FUZZ_COUNT ?? 10_000);

/** mulberry32: small, fast, seedable */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EVIL = [
  '', ';', ';;;', ',', ',,,', '<', '>', '<<>>', '"', '"\\', '%', '%zz', '%00', '\0', '\r', '\n', '\r\n\r\n', ' ',
  '-1', '0', '4294967296', '99999999999999999999999', 'NaN', 'sip:', 'sip:@', 'sip:a@[::1', '<sip:x@y>;tag=',
  'SIP/2.0/UDP', 'SIP/2.0/UDP 256.256.256.256:99999', 'z9hG4bK', '\xff\xfe', 'é'.repeat(50), 'A'.repeat(5000),
];

function corpus(): Buffer[] {
  const dir = path.join(projectRoot, 'test', 'fixtures', 'rfc4475');
  const exp = JSON.parse(fs.readFileSync(path.join(dir, 'expectations.json'), 'utf8')) as Record<string, { expect: string }>;
  const files = Object.entries(exp).filter(([, e]) => e.expect === 'process').map(([n]) => fs.readFileSync(path.join(dir, `${n}.dat`)));
  const own = [
    'REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKfz1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: fz-reg@127.0.0.1\r\nCSeq: 2 REGISTER\r\nContact: <sip:alice@127.0.0.1:5999>;expires=60\r\nAuthorization: Digest username="alice", realm="127.0.0.1", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:127.0.0.1", response="00000000000000000000000000000000", qop=auth, nc=00000001, cnonce="x"\r\nContent-Length: 0\r\n\r\n',
    'INVITE sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKfz2;rport\r\nMax-Forwards: 70\r\nFrom: "Fuzz" <sip:fuzz@127.0.0.1>;tag=f2\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: fz-inv@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:fuzz@127.0.0.1:5999>\r\nContent-Type: application/sdp\r\nContent-Length: 83\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n',
    'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKfz3\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: fz-res@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
    'BYE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bKfz4\r\nRoute: <sip:127.0.0.1;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: fz-bye@127.0.0.1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n',
  ].map((s) => Buffer.from(s, 'latin1'));
  return [...files, ...own];
}

function mutate(base: Buffer, r: () => number): Buffer {
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
  let b = Buffer.from(base);
  const rounds = 1 + Math.floor(r() * 4);
  for (let i = 0; i < rounds; i++) {
    const at = Math.floor(r() * b.length);
    switch (Math.floor(r() * 9)) {
      case 0: // flip bytes
        for (let k = 0; k < 1 + r() * 8; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
        break;
      case 1: // delete a span
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + Math.floor(r() * 40)))]);
        break;
      case 2: // duplicate a span
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + Math.floor(r() * 80)), b.subarray(at)]);
        break;
      case 3: // insert something nasty
        b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(EVIL), 'latin1'), b.subarray(at)]);
        break;
      case 4: { // replace a header value
        const lines = b.toString('latin1').split('\r\n');
        const li = 1 + Math.floor(r() * Math.max(1, lines.length - 2));
        const colon = lines[li]?.indexOf(':') ?? -1;
        if (colon > 0) lines[li] = lines[li]!.slice(0, colon + 1) + ' ' + pick(EVIL);
        b = Buffer.from(lines.join('\r\n'), 'latin1');
        break;
      }
      case 5: // truncate
        b = b.subarray(0, at);
        break;
      case 6: { // swap two lines
        const lines = b.toString('latin1').split('\r\n');
        const x = Math.floor(r() * lines.length);
        const y = Math.floor(r() * lines.length);
        [lines[x], lines[y]] = [lines[y]!, lines[x]!];
        b = Buffer.from(lines.join('\r\n'), 'latin1');
        break;
      }
      case 7: // line ends
        b = Buffer.from(b.toString('latin1').replace(/\r\n/g, pick(['\n', '\r', '\r\r\n', '\n\r'])), 'latin1');
        break;
      case 8: // Content-Length lies
        b = Buffer.from(b.toString('latin1').replace(/(Content-Length|l)\s*:\s*\d+/i, `Content-Length: ${pick(['-5', '0', '99999', '1e3', ' 7 7', '18446744073709551616'])}`), 'latin1');
        break;
    }
  }
  return b.subarray(0, 60_000);
}

describe('random mutations over UDP and WebSocket', () => {
  let gw: Gateway;
  let client: UdpSipClient;

  before(async () => {
    gw = await startTestGateway({ sip: { domains: ['example.com'] } });
    client = await UdpSipClient.open();
  });
  after(async () => {
    client.close();
    await gw.close();
  });

  async function ping(): Promise<number> {
    const o = request('OPTIONS', `sip:127.0.0.1:${gw.ports.udp}`, client);
    client.send(o.text, gw.ports.udp!);
    return (await client.finalResponse(o.callId, 'OPTIONS', 30_000)).status;
  }

  test(`${COUNT} mutations over UDP (seed ${SEED})`, async () => {
    const base = corpus();
    const r = rng(SEED);
    for (let i = 0; i < COUNT; i++) {
      client.send(mutate(base[i % base.length]!, r), gw.ports.udp!);
      // let the gateway drain its socket now and then, and check it still answers
      if (i % 250 === 249) await new Promise((res) => setTimeout(res, 5));
      if (i % 2500 === 2499) assert.equal(await ping(), 200, `gateway answers after ${i + 1} mutations`);
    }
    assert.equal(await ping(), 200);
    assert.ok(gw.stack.counters.malformed > COUNT / 10, `most garbage was seen as garbage (${gw.stack.counters.malformed})`);
  });

  test(`${COUNT} mutations over WebSocket (seed ${SEED + 1})`, async () => {
    const base = corpus();
    const r = rng(SEED + 1);
    const open = (): Promise<WebSocket> => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${gw.ports.http}/sip`, 'sip');
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
    let ws = await open();
    let reopened = 0;
    for (let i = 0; i < COUNT; i++) {
      if (ws.readyState !== WebSocket.OPEN) {
        ws = await open();
        reopened++;
      }
      ws.send(mutate(base[i % base.length]!, r));
      if (i % 250 === 249) await new Promise((res) => setTimeout(res, 5));
    }
    ws.close();
    // a fresh connection is served: REGISTER gets its challenge
    const fresh = await open();
    const answer = new Promise<string>((resolve) => fresh.once('message', (d) => resolve(d.toString())));
    fresh.send('REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS abc.invalid;branch=z9hG4bKws1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=w1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: ws-after-fuzz\r\nCSeq: 1 REGISTER\r\nContact: <sip:x@abc.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n');
    assert.match(await answer, /^SIP\/2\.0 401 /);
    fresh.close();
    assert.equal(await ping(), 200);
    assert.ok(reopened < COUNT / 100, `garbage does not cost the client its connection (reopened ${reopened} times)`);
  });
});
