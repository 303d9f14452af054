/**
 * RFC 4475 torture messages sent to the running gateway over UDP, each judged by the
 * treatment the RFC names (test/fixtures/rfc4475/expectations.json). A message that must be
 * discarded is shown discarded by an OPTIONS sent right after it: the gateway handles
 * datagrams in order, so its answer arriving first means the torture message got none.
 * Like any UAC, the client ACKs each non-2xx final response to an INVITE (RFC 3261 §17.1.1.3):
 * unacknowledged, the gateway retransmits it (Timer G, §17.2.1), and a retransmission landing
 * in a later message's window would be counted as that message's answer.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import type { SipResponse } from '../../server/sip/message.js';
import { projectRoot } from '../../server/paths.js';
import { startTestGateway } from '../helpers/gateway.js';
import { request, UdpSipClient } from '../helpers/sip-client.js';

interface Expectation {
  section: string;
  title: string;
  kind: 'request' | 'response';
  expect: 'process' | 'reject' | 'discard';
  status?: number;
  allowed?: (number | 'process')[];
}

const dir = path.join(projectRoot, 'test', 'fixtures', 'rfc4475');
const expectations = JSON.parse(fs.readFileSync(path.join(dir, 'expectations.json'), 'utf8')) as Record<string, Expectation>;

describe('RFC 4475 torture messages over UDP', () => {
  let gw: Gateway;
  let client: UdpSipClient;

  before(async () => {
    // the messages are addressed to example.com: make it our domain
    gw = await startTestGateway({ sip: { domains: ['example.com'] } });
    client = await UdpSipClient.open();
  });
  after(async () => {
    client.close();
    await gw.close();
  });

  /** INVITE answers already acknowledged (Call-ID and CSeq) */
  const acked = new Set<string>();

  /**
   * ACKs (hop by hop, on the INVITE's branch) every non-2xx final answer to an INVITE not ACKed
   * yet. The gateway's server transaction takes the ACK by its Via branch (§17.2.3), so the
   * answer's To URI serves as Request-URI (the torture INVITE's own may be what was broken).
   */
  function ackFailedInvites(): void {
    for (const m of client.received) {
      if (m.isRequest() || m.status < 300) continue;
      const cseq = /^\s*(\d+)\s+INVITE\s*$/.exec(m.get('cseq') ?? '');
      const key = `${m.get('call-id')} ${cseq?.[1]}`;
      if (!cseq || acked.has(key)) continue;
      acked.add(key);
      const to = m.get('to') ?? '';
      const uri = /<([^>]+)>/.exec(to)?.[1] ?? to.split(';')[0]!.trim();
      const ack = [`ACK ${uri} SIP/2.0`, `Via: ${m.getAll('via')[0]}`, `From: ${m.get('from')}`, `To: ${to}`, `Call-ID: ${m.get('call-id')}`, `CSeq: ${cseq[1]} ACK`, 'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n');
      client.send(ack, gw.ports.udp!);
    }
  }

  /** Sends raw bytes, then an OPTIONS; returns the responses that came before the OPTIONS' answer. */
  async function exchange(bytes: Buffer): Promise<SipResponse[]> {
    const before = client.received.length;
    client.send(bytes, gw.ports.udp!);
    const probe = request('OPTIONS', `sip:127.0.0.1:${gw.ports.udp}`, client);
    client.send(probe.text, gw.ports.udp!);
    const answer = await client.finalResponse(probe.callId, 'OPTIONS');
    const idx = client.received.indexOf(answer);
    ackFailedInvites();
    return client.received.slice(before, idx).filter((m): m is SipResponse => !m.isRequest() && m.get('call-id') !== probe.callId);
  }

  for (const [name, exp] of Object.entries(expectations)) {
    test(`${name} (§${exp.section} ${exp.title}): ${exp.expect}${exp.status ? ' ' + exp.status : ''}`, async () => {
      const responses = (await exchange(fs.readFileSync(path.join(dir, `${name}.dat`)))).filter((r) => r.status >= 200);
      const allowed = (exp.allowed ?? []).filter((a): a is number => typeof a === 'number');
      const tolerant = (exp.allowed ?? []).includes('process');
      if (exp.expect === 'discard') {
        assert.deepEqual(responses.map((r) => r.status), [], 'nothing is sent back');
        return;
      }
      assert.equal(responses.length, 1, `exactly one final response (got ${responses.map((r) => `${r.status} (${r.get('call-id')}, ${r.get('cseq')})`).join(', ') || 'none'})`);
      const status = responses[0]!.status;
      if (exp.expect === 'reject') {
        assert.ok(status === exp.status || allowed.includes(status) || (tolerant && status !== 500), `got ${status}, want ${exp.status}`);
      } else {
        assert.ok((status !== 400 && status < 500) || allowed.includes(status), `processed normally, got ${status}`);
      }
    });
  }

  test('the gateway still registers and answers after all of them', async () => {
    const o = request('OPTIONS', `sip:127.0.0.1:${gw.ports.udp}`, client);
    client.send(o.text, gw.ports.udp!);
    assert.equal((await client.finalResponse(o.callId, 'OPTIONS')).status, 200);
  });
});
