/**
 * server/sip/transaction: the RFC 3261 §17 state machines (with RFC 6026's Accepted state)
 * behind a fake Sender that records what would go on the wire. Timers are real but short
 * (T1 = 20 ms, T2 = 80 ms, T4 = 100 ms); the tests count messages and read states, they do
 * not measure durations. One test takes a response over a real loopback socket (a datagram
 * waiting while the event loop is busy).
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';

import { parseMessage } from '../../server/sip/parser.js';
import { SipRequest, SipResponse, type SipMessageAny } from '../../server/sip/message.js';
import { makeResponse } from '../../server/sip/reply.js';
import { TransactionLayer } from '../../server/sip/transaction/transaction-layer.js';
import { Timers, type TimerConfig } from '../../server/sip/transaction/timers.js';
import { InviteServerTransaction, NonInviteServerTransaction, type ServerTransaction } from '../../server/sip/transaction/server-transaction.js';
import type { ClientTransaction, ClientTxUser } from '../../server/sip/transaction/client-transaction.js';
import type { Destination, Sender } from '../../server/sip/transport/types.js';

const UDP: Destination = { transport: 'udp', address: '192.0.2.1', port: 5060 };
const WS: Destination = { transport: 'ws', address: '192.0.2.9', port: 50000, flowId: 'flow-1' };

class FakeSender implements Sender {
  readonly sent: { msg: SipMessageAny; buf: Buffer; dest: Destination }[] = [];
  accept = true;

  send(buf: Buffer, dest: Destination): boolean {
    const r = parseMessage(buf);
    if (r.kind !== 'message') throw new Error('the layer sent something unparsable');
    this.sent.push({ msg: r.message, buf, dest });
    return this.accept;
  }

  responses(status?: number): SipResponse[] {
    return this.sent.map((s) => s.msg).filter((m): m is SipResponse => m instanceof SipResponse && (status === undefined || m.status === status));
  }

  requests(method?: string): SipRequest[] {
    return this.sent.map((s) => s.msg).filter((m): m is SipRequest => m instanceof SipRequest && (method === undefined || m.method === method));
  }
}

/** The transaction user: records what the layer emits for it. */
class RecordingTU {
  readonly requests: { req: SipRequest; tx: ServerTransaction | null }[] = [];
  readonly cancels: { cancel: SipRequest; tx: ServerTransaction; invite: InviteServerTransaction | null }[] = [];
  readonly stray: SipResponse[] = [];

  onRequest(req: SipRequest, tx: ServerTransaction | null): void {
    this.requests.push({ req, tx });
  }

  onCancel(cancel: SipRequest, tx: ServerTransaction, invite: InviteServerTransaction | null): void {
    this.cancels.push({ cancel, tx, invite });
  }

  onStrayResponse(res: SipResponse): void {
    this.stray.push(res);
  }
}

class RecordingClientUser implements ClientTxUser {
  readonly responses: SipResponse[] = [];
  timeouts = 0;
  transportErrors = 0;

  onResponse(res: SipResponse): void {
    this.responses.push(res);
  }

  onTimeout(): void {
    this.timeouts++;
  }

  onTransportError(): void {
    this.transportErrors++;
  }
}

const layers: TransactionLayer[] = [];

function setup(cfg: Partial<TimerConfig> = {}): { layer: TransactionLayer; sender: FakeSender; tu: RecordingTU } {
  const sender = new FakeSender();
  const layer = new TransactionLayer(new Timers({ t1: 20, t2: 80, t4: 100, inviteTimeout: 1000, ...cfg }), sender);
  const tu = new RecordingTU();
  layer.on('request', (req, tx) => tu.onRequest(req, tx));
  layer.on('cancel', (cancel, tx, invite) => tu.onCancel(cancel, tx, invite));
  layer.on('stray', (res) => tu.onStrayResponse(res));
  layers.push(layer);
  return { layer, sender, tu };
}

afterEach(() => {
  for (const l of layers.splice(0)) l.close();
});

function request(method: string, opts: { branch?: string; cseq?: number; cseqMethod?: string; toTag?: string; transport?: string } = {}): SipRequest {
  const lines = [
    `${method} sip:bob@example.com SIP/2.0`,
    `Via: SIP/2.0/${opts.transport ?? 'UDP'} 192.0.2.1:5060;branch=${opts.branch ?? 'z9hG4bK-' + method.toLowerCase()};rport`,
    'Max-Forwards: 70',
    'From: <sip:alice@example.com>;tag=a1',
    `To: <sip:bob@example.com>${opts.toTag ? ';tag=' + opts.toTag : ''}`,
    'Call-ID: tx-test@192.0.2.1',
    `CSeq: ${opts.cseq ?? 1} ${opts.cseqMethod ?? method}`,
    'Contact: <sip:alice@192.0.2.1:5060>',
  ];
  const r = parseMessage(Buffer.from(lines.join('\r\n') + '\r\n\r\n'));
  if (r.kind !== 'message' || !(r.message instanceof SipRequest)) throw new Error('bad test request');
  return r.message;
}

/** A fresh copy, as a retransmission arrives: parsed again from the same bytes. */
function again(req: SipRequest): SipRequest {
  const r = parseMessage(req.toBuffer());
  if (r.kind !== 'message' || !(r.message instanceof SipRequest)) throw new Error('bad retransmission');
  return r.message;
}

/** A response as it would come back from the far end (parsed from bytes). */
function responseTo(req: SipRequest, status: number, toTag = 'b1'): SipResponse {
  const r = parseMessage(makeResponse(req, status, { toTag }).toBuffer());
  if (r.kind !== 'message' || !(r.message instanceof SipResponse)) throw new Error('bad test response');
  return r.message;
}

describe('non-INVITE server transaction (§17.2.2)', () => {
  it('Trying absorbs retransmissions; the TU sees the request once', () => {
    const { layer, sender, tu } = setup();
    const req = request('OPTIONS');
    layer.receiveRequest(req, UDP);
    layer.receiveRequest(again(req), UDP);
    layer.receiveRequest(again(req), UDP);
    assert.equal(tu.requests.length, 1);
    assert.ok(tu.requests[0]!.tx instanceof NonInviteServerTransaction);
    assert.equal(tu.requests[0]!.tx.state, 'trying');
    assert.equal(sender.sent.length, 0, 'nothing sent: no 100 for non-INVITE');
  });

  it('Proceeding resends the last provisional on each retransmission', () => {
    const { layer, sender, tu } = setup();
    const req = request('REGISTER');
    layer.receiveRequest(req, UDP);
    const tx = tu.requests[0]!.tx!;
    tx.respond(makeResponse(req, 100));
    assert.equal(tx.state, 'proceeding');
    layer.receiveRequest(again(req), UDP);
    layer.receiveRequest(again(req), UDP);
    assert.deepEqual(sender.responses().map((r) => r.status), [100, 100, 100]);
    assert.ok(sender.sent.every((s) => s.dest === UDP));
    assert.equal(tu.requests.length, 1);
  });

  it('Completed (UDP): the final response is resent for retransmissions, without the TU', () => {
    const { layer, sender, tu } = setup();
    const req = request('REGISTER');
    layer.receiveRequest(req, UDP);
    const tx = tu.requests[0]!.tx!;
    tx.respond(makeResponse(req, 200, { toTag: 'z' }));
    assert.equal(layer.stats.lingering, 1);
    assert.equal(layer.stats.server, 0);
    layer.receiveRequest(again(req), UDP);
    layer.receiveRequest(again(req), UDP);
    const finals = sender.responses(200);
    assert.equal(finals.length, 3);
    assert.ok(finals.every((r) => r.toTag() === 'z'), 'the very same response, same To tag');
    assert.ok(sender.sent[1]!.buf.equals(sender.sent[0]!.buf));
    assert.equal(tu.requests.length, 1);
  });

  it('a stateless final response (a digest challenge) is kept for T4 only, then a retransmission is a new request (RFC 3261 §8.2.7)', async () => {
    const { layer, sender, tu } = setup();
    const req = request('REGISTER');
    layer.receiveRequest(req, UDP);
    const challenge = makeResponse(req, 401, { headers: [['WWW-Authenticate', 'Digest realm="a", nonce="1"']] });
    challenge.stateless = true;
    tu.requests[0]!.tx!.respond(challenge);
    assert.deepEqual(layer.stats, { server: 0, client: 0, lingering: 1 });
    layer.receiveRequest(again(req), UDP);
    assert.equal(tu.requests.length, 1, 'a copy that crossed the challenge gets the very same one');
    assert.ok(sender.sent[1]!.buf.equals(sender.sent[0]!.buf));
    await sleep(250); // past 2 x T4 (100 ms): forgotten
    assert.equal(layer.stats.lingering, 0);
    layer.receiveRequest(again(req), UDP);
    assert.equal(tu.requests.length, 2, 'a late copy reaches the TU, which challenges it afresh');
    tu.requests[1]!.tx!.respond(makeResponse(req, 200, { toTag: 'z' }));
    await sleep(250); // a 200 keeps its Timer J (64 x T1 = 1.28 s here)
    layer.receiveRequest(again(req), UDP);
    assert.equal(tu.requests.length, 2);
    assert.deepEqual(sender.responses().map((r) => r.status), [401, 401, 200, 200]);
  });

  it('the TU cannot send a second final response', () => {
    const { layer, sender, tu } = setup();
    const req = request('OPTIONS');
    layer.receiveRequest(req, UDP);
    const tx = tu.requests[0]!.tx!;
    tx.respond(makeResponse(req, 200));
    tx.respond(makeResponse(req, 500));
    assert.deepEqual(sender.responses().map((r) => r.status), [200]);
  });

  it('over a reliable transport nothing lingers: a later copy is a new request (Timer J = 0)', () => {
    const { layer, tu } = setup();
    const req = request('OPTIONS', { transport: 'WS' });
    layer.receiveRequest(req, WS);
    tu.requests[0]!.tx!.respond(makeResponse(req, 200));
    assert.equal(layer.stats.lingering, 0);
    layer.receiveRequest(again(req), WS);
    assert.equal(tu.requests.length, 2);
  });

  it('requests with different branches are different transactions', () => {
    const { layer, tu } = setup();
    layer.receiveRequest(request('OPTIONS', { branch: 'z9hG4bK-1' }), UDP);
    layer.receiveRequest(request('OPTIONS', { branch: 'z9hG4bK-2' }), UDP);
    assert.equal(tu.requests.length, 2);
    assert.equal(layer.stats.server, 2);
  });

  it('RFC 2543 requests (no magic cookie) match on Call-ID, CSeq, From tag, Request-URI and Via', () => {
    const { layer, tu } = setup();
    const req = request('OPTIONS', { branch: '390skdjuw' });
    layer.receiveRequest(req, UDP);
    layer.receiveRequest(again(req), UDP);
    assert.equal(tu.requests.length, 1);
    layer.receiveRequest(request('OPTIONS', { branch: '390skdjuw', cseq: 2 }), UDP);
    assert.equal(tu.requests.length, 2);
  });

  it('a failed send terminates the transaction (§17.2.4)', () => {
    const { layer, sender, tu } = setup();
    const req = request('OPTIONS');
    layer.receiveRequest(req, UDP);
    sender.accept = false;
    const tx = tu.requests[0]!.tx!;
    tx.respond(makeResponse(req, 200));
    assert.equal(tx.state, 'terminated');
    assert.equal(layer.stats.server, 0);
    assert.equal(layer.stats.lingering, 0);
  });

  it('a failed send of a provisional terminates it too, and nothing more is sent', () => {
    const { layer, sender, tu } = setup();
    const req = request('REGISTER', { transport: 'WS' });
    layer.receiveRequest(req, WS);
    const tx = tu.requests[0]!.tx!;
    sender.accept = false; // the WebSocket closed while the registrar was busy
    tx.respond(makeResponse(req, 100));
    assert.equal(tx.state, 'terminated');
    tx.respond(makeResponse(req, 200));
    assert.equal(sender.sent.length, 1, 'no final after the transaction ended');
  });
});

describe('INVITE server transaction (§17.2.1, RFC 6026)', () => {
  it('sends 100 Trying at once, then hands the INVITE to the TU in Proceeding', () => {
    const { layer, sender, tu } = setup();
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    const [trying] = sender.responses();
    assert.equal(trying?.status, 100);
    assert.equal(trying?.toTag(), null);
    assert.deepEqual(trying?.cseq(), { seq: 1, method: 'INVITE' });
    assert.equal(trying?.via().params.get('branch'), 'z9hG4bK-invite');
    assert.equal(tu.requests.length, 1);
    const tx = tu.requests[0]!.tx;
    assert.ok(tx instanceof InviteServerTransaction);
    assert.equal(tx.state, 'proceeding');
  });

  it('a retransmitted INVITE gets the last provisional again, not the TU', () => {
    const { layer, sender, tu } = setup();
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    layer.receiveRequest(again(inv), UDP);
    tu.requests[0]!.tx!.respond(makeResponse(inv, 180, { toTag: 't' }));
    layer.receiveRequest(again(inv), UDP);
    assert.deepEqual(sender.responses().map((r) => r.status), [100, 100, 180, 180]);
    assert.equal(tu.requests.length, 1);
  });

  it('a 4xx over UDP is retransmitted (Timer G) until the ACK, then no more (Confirmed)', async () => {
    const { layer, sender, tu } = setup();
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    const tx = tu.requests[0]!.tx!;
    const busy = makeResponse(inv, 486, { toTag: 'busy' });
    tx.respond(busy);
    assert.equal(tx.state, 'completed');
    await sleep(170); // Timer G at T1, 2*T1, 4*T1 (20, 60, 140 ms)
    const before = sender.responses(486).length;
    assert.ok(before >= 3, `the 486 and at least two retransmissions, got ${before}`);
    // the ACK for a non-2xx carries the INVITE's branch (§17.1.1.3)
    const ack = request('ACK', { branch: 'z9hG4bK-invite', toTag: 'busy' });
    layer.receiveRequest(ack, UDP);
    assert.equal(tx.state, 'confirmed');
    assert.equal(tu.requests.length, 1, 'that ACK belongs to the transaction, not the TU');
    layer.receiveRequest(again(ack), UDP); // Confirmed absorbs ACK retransmissions (until Timer I)
    assert.equal(tu.requests.length, 1);
    await sleep(200);
    assert.equal(sender.responses(486).length, before, 'no retransmission after the ACK');
    assert.equal(tx.state, 'terminated', 'Timer I (T4) ended it');
  });

  it('a retransmitted INVITE in Completed gets the final response again', () => {
    const { layer, sender, tu } = setup();
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    tu.requests[0]!.tx!.respond(makeResponse(inv, 404));
    layer.receiveRequest(again(inv), UDP);
    assert.deepEqual(sender.responses().map((r) => r.status), [100, 404, 404]);
  });

  it('a 4xx over a reliable transport is not retransmitted', async () => {
    const { layer, sender, tu } = setup();
    const inv = request('INVITE', { transport: 'WS' });
    layer.receiveRequest(inv, WS);
    tu.requests[0]!.tx!.respond(makeResponse(inv, 486));
    await sleep(150);
    assert.deepEqual(sender.responses().map((r) => r.status), [100, 486]);
  });

  it('Timer H: a final response never acknowledged ends the transaction and says so', async () => {
    const { layer, tu } = setup({ t1: 5 }); // H = 64*T1 = 320 ms
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    const tx = tu.requests[0]!.tx as InviteServerTransaction;
    let timedOut = 0;
    tx.onAckTimeout = () => timedOut++;
    tx.respond(makeResponse(inv, 480));
    await sleep(450);
    assert.equal(timedOut, 1);
    assert.equal(tx.state, 'terminated');
    assert.equal(layer.stats.server, 0);
  });

  it('a 2xx moves it to Accepted: INVITE retransmissions are absorbed, 2xx retransmissions from the TU go out', () => {
    const { layer, sender, tu } = setup();
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    const tx = tu.requests[0]!.tx!;
    const ok = makeResponse(inv, 200, { toTag: 'ok' });
    tx.respond(ok);
    assert.equal(tx.state, 'accepted');
    layer.receiveRequest(again(inv), UDP);
    assert.deepEqual(sender.responses().map((r) => r.status), [100, 200]);
    assert.equal(tu.requests.length, 1);
    tx.respond(ok); // the TU (UAS core) retransmits its 2xx itself
    assert.deepEqual(sender.responses().map((r) => r.status), [100, 200, 200]);
    tx.respond(makeResponse(inv, 486)); // but no other final
    assert.equal(sender.responses().length, 3);
  });

  it('the ACK for a 2xx is not part of the transaction: it reaches the TU with no transaction', () => {
    const { layer, tu } = setup();
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    const tx = tu.requests[0]!.tx!;
    tx.respond(makeResponse(inv, 200, { toTag: 'ok' }));
    // a 2xx ACK is a new transaction: a new branch (§13.2.2.4)
    layer.receiveRequest(request('ACK', { branch: 'z9hG4bK-ack2xx', toTag: 'ok' }), UDP);
    assert.equal(tu.requests.length, 2);
    assert.equal(tu.requests[1]!.req.method, 'ACK');
    assert.equal(tu.requests[1]!.tx, null);
    assert.equal(tx.state, 'accepted');
    // even one that reuses the INVITE's branch goes to the TU once the INVITE is accepted
    layer.receiveRequest(request('ACK', { branch: 'z9hG4bK-invite', toTag: 'ok' }), UDP);
    assert.equal(tu.requests.length, 3);
    assert.equal(tu.requests[2]!.tx, null);
  });

  it('a CANCEL gets its own transaction and is matched to the INVITE it cancels (§9.2)', () => {
    const { layer, tu } = setup();
    const inv = request('INVITE', { branch: 'z9hG4bK-c1' });
    layer.receiveRequest(inv, UDP);
    const cancel = request('CANCEL', { branch: 'z9hG4bK-c1' });
    layer.receiveRequest(cancel, UDP);
    assert.equal(tu.cancels.length, 1);
    const c = tu.cancels[0]!;
    assert.equal(c.cancel.method, 'CANCEL');
    assert.ok(c.tx instanceof NonInviteServerTransaction);
    assert.equal(c.invite, tu.requests[0]!.tx);
    assert.equal(tu.requests.length, 1, 'the CANCEL does not reach onRequest');
    // a CANCEL retransmission is absorbed by its own transaction
    layer.receiveRequest(again(cancel), UDP);
    assert.equal(tu.cancels.length, 1);
  });

  it('a CANCEL for no known INVITE comes with no INVITE transaction (the TU answers 481)', () => {
    const { layer, tu } = setup();
    layer.receiveRequest(request('CANCEL', { branch: 'z9hG4bK-nothing' }), UDP);
    assert.equal(tu.cancels.length, 1);
    assert.equal(tu.cancels[0]!.invite, null);
  });
});

describe('INVITE client transaction (§17.1.1)', () => {
  it('retransmits over UDP while Calling (Timer A), stops on a provisional', async () => {
    const { layer, sender } = setup();
    const user = new RecordingClientUser();
    const inv = request('INVITE', { branch: 'z9hG4bK-out1' });
    const tx = layer.request(inv, UDP, user);
    assert.equal(tx.state, 'calling');
    assert.equal(sender.requests('INVITE').length, 1, 'sent at once');
    await sleep(170); // Timer A at 20, 60, 140 ms
    const sent = sender.requests('INVITE').length;
    assert.ok(sent >= 3, `the INVITE and at least two retransmissions, got ${sent}`);
    assert.ok(sender.requests('INVITE').every((r) => r.via().params.get('branch') === 'z9hG4bK-out1'));
    layer.receiveResponse(responseTo(inv, 180));
    assert.equal(tx.state, 'proceeding');
    assert.deepEqual(user.responses.map((r) => r.status), [180]);
    await sleep(200);
    assert.equal(sender.requests('INVITE').length, sent, 'no retransmission in Proceeding');
  });

  it('a 180 that arrived while the event loop was stalled stops Timer A: no spurious copy of the INVITE', async () => {
    const { layer, sender } = setup();
    const user = new RecordingClientUser();
    // the far end's answer comes over a real socket: it waits in the kernel while the loop is busy
    const ours = dgram.createSocket('udp4');
    const far = dgram.createSocket('udp4');
    try {
      await new Promise<void>((r) => ours.bind(0, '127.0.0.1', () => r()));
      await new Promise<void>((r) => far.bind(0, '127.0.0.1', () => r()));
      ours.on('message', (buf) => {
        const m = parseMessage(buf);
        if (m.kind === 'message' && m.message instanceof SipResponse) layer.receiveResponse(m.message);
      });
      const inv = request('INVITE', { branch: 'z9hG4bK-stall' });
      const tx = layer.request(inv, UDP, user);
      far.send(responseTo(inv, 180).toBuffer(), ours.address().port, '127.0.0.1');
      // the event loop stalls (a burst of work) past Timer A (T1 = 20 ms)
      const until = Date.now() + 100;
      while (Date.now() < until) {
        // busy
      }
      await sleep(150);
      assert.equal(tx.state, 'proceeding');
      assert.deepEqual(user.responses.map((r) => r.status), [180]);
      assert.equal(sender.requests('INVITE').length, 1, 'the INVITE went out once');
    } finally {
      ours.close();
      far.close();
    }
  });

  it('does not retransmit over a reliable transport', async () => {
    const { layer, sender } = setup();
    const tx = layer.request(request('INVITE', { transport: 'WS' }), WS, new RecordingClientUser());
    await sleep(170);
    assert.equal(sender.requests('INVITE').length, 1);
    assert.equal(sender.sent[0]!.dest, WS);
    assert.equal(tx.state, 'calling');
  });

  it('a 486 is passed up once and answered with an ACK on the same branch; a retransmitted 486 gets the ACK again', () => {
    const { layer, sender } = setup();
    const user = new RecordingClientUser();
    const inv = request('INVITE', { branch: 'z9hG4bK-out2', cseq: 7 });
    const tx = layer.request(inv, UDP, user);
    layer.receiveResponse(responseTo(inv, 100));
    const busy = responseTo(inv, 486, 'callee');
    layer.receiveResponse(busy);
    assert.equal(tx.state, 'completed');
    const [ack] = sender.requests('ACK');
    assert.ok(ack);
    assert.equal(ack.uri, inv.uri);
    assert.equal(ack.via().params.get('branch'), 'z9hG4bK-out2');
    assert.deepEqual(ack.cseq(), { seq: 7, method: 'ACK' });
    assert.equal(ack.toTag(), 'callee');
    assert.equal(ack.fromTag(), inv.fromTag());
    assert.equal(ack.callId(), inv.callId());
    assert.equal(sender.sent.at(-1)!.dest, UDP);
    layer.receiveResponse(responseTo(inv, 486, 'callee'));
    assert.equal(sender.requests('ACK').length, 2);
    assert.deepEqual(user.responses.map((r) => r.status), [100, 486]);
    assert.equal(tx.lastStatus, 486);
  });

  it('over a reliable transport the ACK is sent and the transaction ends at once (Timer D = 0)', () => {
    const { layer, sender } = setup();
    const inv = request('INVITE', { branch: 'z9hG4bK-out3', transport: 'WS' });
    const tx = layer.request(inv, WS, new RecordingClientUser());
    layer.receiveResponse(responseTo(inv, 603));
    assert.equal(sender.requests('ACK').length, 1);
    assert.equal(tx.state, 'terminated');
    assert.equal(layer.stats.client, 0);
  });

  it('a 2xx goes up and the transaction waits in Accepted, passing 2xx retransmissions up; no ACK from the transaction', () => {
    const { layer, sender } = setup();
    const user = new RecordingClientUser();
    const inv = request('INVITE', { branch: 'z9hG4bK-out4' });
    const tx = layer.request(inv, UDP, user);
    layer.receiveResponse(responseTo(inv, 200));
    assert.equal(tx.state, 'accepted');
    layer.receiveResponse(responseTo(inv, 200));
    assert.deepEqual(user.responses.map((r) => r.status), [200, 200]);
    assert.equal(sender.requests('ACK').length, 0, 'the ACK for a 2xx is the TU\'s (§13.2.2.4)');
  });

  it('Timer B: nothing answers, onTimeout is called once and the transaction ends', async () => {
    const { layer } = setup({ transactionTimeout: 150 });
    const user = new RecordingClientUser();
    const tx = layer.request(request('INVITE', { branch: 'z9hG4bK-out5' }), UDP, user);
    await sleep(250);
    assert.equal(user.timeouts, 1);
    assert.equal(user.responses.length, 0);
    assert.equal(tx.state, 'terminated');
    assert.equal(layer.stats.client, 0);
  });

  it('Timer B does not fire once a provisional arrived (Timer C is the proxy\'s business)', async () => {
    const { layer } = setup({ transactionTimeout: 100 });
    const user = new RecordingClientUser();
    const inv = request('INVITE', { branch: 'z9hG4bK-out6' });
    const tx = layer.request(inv, UDP, user);
    layer.receiveResponse(responseTo(inv, 180));
    await sleep(200);
    assert.equal(user.timeouts, 0);
    assert.equal(tx.state, 'proceeding');
  });

  it('a transport that refuses the request: the TU is told, the transaction ends', () => {
    const { layer, sender } = setup();
    sender.accept = false;
    const user = new RecordingClientUser();
    const tx = layer.request(request('INVITE', { branch: 'z9hG4bK-out7' }), WS, user);
    assert.equal(user.transportErrors, 1);
    assert.equal(tx.state, 'terminated');
  });
});

describe('non-INVITE client transaction (§17.1.2)', () => {
  it('retransmits over UDP (Timer E) and times out (Timer F)', async () => {
    const { layer, sender } = setup({ transactionTimeout: 200 });
    const user = new RecordingClientUser();
    const tx = layer.request(request('OPTIONS', { branch: 'z9hG4bK-o1' }), UDP, user);
    assert.equal(tx.state, 'trying');
    await sleep(300);
    const sent = sender.requests('OPTIONS').length;
    assert.ok(sent >= 3, `the request and at least two retransmissions, got ${sent}`);
    assert.equal(user.timeouts, 1);
    assert.equal(tx.state, 'terminated');
    await sleep(100);
    assert.equal(sender.requests('OPTIONS').length, sent, 'nothing after the timeout');
  });

  it('keeps retransmitting in Proceeding, stops at the final response; final retransmissions are absorbed', async () => {
    const { layer, sender } = setup();
    const user = new RecordingClientUser();
    const req = request('REGISTER', { branch: 'z9hG4bK-r1' });
    const tx = layer.request(req, UDP, user);
    layer.receiveResponse(responseTo(req, 100));
    assert.equal(tx.state, 'proceeding');
    await sleep(100);
    assert.ok(sender.requests('REGISTER').length >= 2, 'still retransmitted in Proceeding');
    layer.receiveResponse(responseTo(req, 401));
    assert.equal(tx.state, 'completed');
    const sent = sender.requests('REGISTER').length;
    layer.receiveResponse(responseTo(req, 401));
    await sleep(150);
    assert.equal(sender.requests('REGISTER').length, sent);
    assert.deepEqual(user.responses.map((r) => r.status), [100, 401]);
    assert.equal(tx.state, 'terminated', 'Timer K (T4) ended it');
  });

  it('over a reliable transport: one send, and the final ends it at once', async () => {
    const { layer, sender } = setup({ transactionTimeout: 150 });
    const user = new RecordingClientUser();
    const req = request('OPTIONS', { branch: 'z9hG4bK-o2', transport: 'WS' });
    const tx = layer.request(req, WS, user);
    await sleep(100);
    assert.equal(sender.requests('OPTIONS').length, 1);
    layer.receiveResponse(responseTo(req, 200));
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(user.responses.map((r) => r.status), [200]);
  });

  it('a response matches on branch and CSeq method; anything else is stray', () => {
    const { layer, tu } = setup();
    const user = new RecordingClientUser();
    const req = request('OPTIONS', { branch: 'z9hG4bK-o3' });
    layer.request(req, UDP, user);
    layer.receiveResponse(responseTo(request('OPTIONS', { branch: 'z9hG4bK-other' }), 200));
    layer.receiveResponse(responseTo(request('INFO', { branch: 'z9hG4bK-o3' }), 200));
    assert.equal(user.responses.length, 0);
    assert.equal(tu.stray.length, 2);
    layer.receiveResponse(responseTo(req, 200));
    assert.equal(user.responses.length, 1);
  });
});

describe('TransactionLayer.close', () => {
  it('ends every transaction and stops every timer', async () => {
    const { layer, sender, tu } = setup();
    const inv = request('INVITE');
    layer.receiveRequest(inv, UDP);
    tu.requests[0]!.tx!.respond(makeResponse(inv, 486));
    const out: ClientTransaction = layer.request(request('INVITE', { branch: 'z9hG4bK-c' }), UDP, new RecordingClientUser());
    layer.close();
    const n = sender.sent.length;
    await sleep(150);
    assert.equal(sender.sent.length, n, 'no retransmission after close');
    assert.equal(out.state, 'terminated');
    assert.deepEqual(layer.stats, { server: 0, client: 0, lingering: 0 });
  });
});
