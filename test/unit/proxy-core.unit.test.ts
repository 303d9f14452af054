/**
 * ProxyCore (server/proxy/proxy-core.ts) alone, on the real SIP stack and transaction layer
 * behind a fake sender: a routing stage answers first (407 with its challenge) or marks the
 * request for the route, a SipError from the route is the reply, and a relayed INVITE calls
 * the calls floor's hooks in the documented order (server/proxy/hooks.ts).
 */
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import type { BranchView, CallStart, ForwardedCall, ProxyHooks } from '../../server/proxy/hooks.js';
import { Locality } from '../../server/proxy/locality.js';
import { ProxyCore } from '../../server/proxy/proxy-core.js';
import { Resolver } from '../../server/proxy/resolver.js';
import type { Registrar } from '../../server/registrar/registrar.js';
import type { RoutingScript, Stage } from '../../server/routing/api.js';
import type { Dialog } from '../../server/sip/dialog.js';
import { SipError } from '../../server/sip/errors.js';
import { SipRequest, SipResponse } from '../../server/sip/message.js';
import { parseMessage } from '../../server/sip/parser.js';
import { makeResponse } from '../../server/sip/reply.js';
import { SipStack } from '../../server/sip/stack.js';
import { Timers } from '../../server/sip/transaction/timers.js';
import { TransactionLayer } from '../../server/sip/transaction/transaction-layer.js';
import { TransportLayer } from '../../server/sip/transport/transport-layer.js';
import type { Destination, Source } from '../../server/sip/transport/types.js';
import { CidrSet } from '../../server/net/address-class.js';
import { FlowTokens } from '../../server/proxy/flow-token.js';
import { KnownDialogs } from '../../server/proxy/known-dialogs.js';

const PHONE: Source = { transport: 'udp', address: '127.0.0.1', port: 5070, localAddress: '127.0.0.1', localPort: 5060, flowId: null };
const CALLEE: Destination = { transport: 'udp', address: '127.0.0.1', port: 5080 };

/** Only the two questions the script's context asks of the registrar here. */
const registrar = { isUser: (u: string) => u === 'bob', lookup: async () => [] } as unknown as Registrar;

/** The transports, with one UDP interface and what "goes on the wire" kept for the test. */
class WireTransports extends TransportLayer {
  readonly sent: { msg: SipRequest | SipResponse; dest: Destination }[] = [];
  constructor() {
    super();
    this.addInterface({ transport: 'udp', host: '127.0.0.1', port: 5060 });
  }
  override send(buf: Buffer, dest: Destination): boolean {
    const r = parseMessage(buf);
    if (r.kind === 'message') this.sent.push({ msg: r.message as SipRequest | SipResponse, dest });
    return true;
  }
  responses(): SipResponse[] {
    return this.sent.map((s) => s.msg).filter((m): m is SipResponse => m instanceof SipResponse && m.status >= 200);
  }
}

/** A calls floor that records which hook ran, in order. */
class RecordingHooks implements ProxyHooks {
  readonly calls: string[] = [];
  started: CallStart | null = null;
  callStarted(start: CallStart): ForwardedCall {
    this.started = start;
    this.calls.push('callStarted');
    const rec = (name: string) => (br?: BranchView) => void this.calls.push(br ? `${name}:${br.index}` : name);
    return {
      branchAdded: rec('branchAdded'),
      requestOut: async (branches) => void this.calls.push(`requestOut:${branches.length}`),
      responseIn: async (br) => rec('responseIn')(br),
      progress: (br, res) => void this.calls.push(`progress:${br.index}:${res.status}`),
      answered: async (br, dialog: Dialog) => void this.calls.push(`answered:${br.index}:${dialog.callee.target}`),
      branchFailed: (br, status) => void this.calls.push(`branchFailed:${br.index}:${status}`),
      ended: (reason) => void this.calls.push(`ended:${reason}`),
    };
  }
  inDialog(): null {
    return null;
  }
  async ackOut(): Promise<void> {}
  localRequest(): boolean {
    return false;
  }
  async answerLocally(): Promise<number> {
    return 404;
  }
}

const proxies: ProxyCore[] = [];
const layers: TransactionLayer[] = [];
after(() => {
  for (const p of proxies) p.close();
  for (const l of layers) l.close();
});

function setup(script: RoutingScript): { wire: WireTransports; hooks: RecordingHooks; receive: (msg: string | Buffer, from?: Source) => void } {
  const wire = new WireTransports();
  const timers = new Timers({ t1: 20, t2: 80, t4: 100, inviteTimeout: 5000 });
  const transactions = new TransactionLayer(timers, wire);
  layers.push(transactions);
  const log = pino({ level: 'silent' });
  const stack = new SipStack(transactions, { forceRport: false }, log);
  const hooks = new RecordingHooks();
  proxies.push(new ProxyCore({
    transactions, transports: wire, locality: new Locality(['example.com'], wire.interfaces), resolver: new Resolver({ enabled: false, servers: [] }),
    registrar, script, timers, log, hooks, draining: () => false, maxForwards: 70, maxBranches: 10,
    tokens: new FlowTokens(randomBytes(32)), dialogs: new KnownDialogs({ dialogTimeout: 60_000, earlyTimeout: 5000, pendingTimeout: 1000, max: 100 }), trustedPeers: new CidrSet(['127.0.0.0/8']),
  }));
  return { wire, hooks, receive: (msg, from = PHONE) => stack.receive(typeof msg === 'string' ? Buffer.from(msg.replace(/\n/g, '\r\n')) : msg, from) };
}

let seq = 0;
function invite(method = 'INVITE', extra: string[] = []): string {
  seq++;
  return [
    `${method} sip:bob@example.com SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-pc${seq};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@example.com>;tag=a${seq}`,
    'To: <sip:bob@example.com>',
    `Call-ID: pc-${seq}@127.0.0.1`,
    `CSeq: 1 ${method}`,
    'Contact: <sip:alice@127.0.0.1:5070>',
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\n');
}

/** Lets the proxy's promise chains run (they are microtasks and immediate callbacks only). */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

/** proxy_authorize as a stage: a 407 challenge without credentials, else the user marked. */
const auth: Stage = (sip, next) => {
  if (!sip.req.has('proxy-authorization')) return sip.reply(407, 'Proxy Authentication Required', [['Proxy-Authenticate', 'Digest realm="example.com", nonce="n1"']]);
  sip.authUser = 'alice';
  return next();
};

describe('ProxyCore: the routing script with stages', () => {
  test('a stage answers first: 407 with its challenge; the hooks never hear of the call', async () => {
    const { wire, hooks, receive } = setup({ stages: [auth], request: (sip) => sip.relay() });
    receive(invite());
    await settle();
    const [res] = wire.responses();
    assert.equal(res?.status, 407);
    assert.equal(res?.get('proxy-authenticate'), 'Digest realm="example.com", nonce="n1"');
    assert.deepEqual(hooks.calls, []);
  });

  test('the route sees the mark a stage set, and a SipError it throws is the reply, headers included', async () => {
    const { wire, receive } = setup({
      stages: [auth],
      request: (sip) => {
        throw new SipError(486, `Busy Here (${sip.authUser})`, [['Retry-After', '10']]);
      },
    });
    receive(invite('INVITE', ['Proxy-Authorization: Digest username="alice"']));
    await settle();
    const [res] = wire.responses();
    assert.equal(res?.status, 486);
    assert.equal(res?.reason, 'Busy Here (alice)');
    assert.equal(res?.get('retry-after'), '10');
  });

  test('any other error of the script is a 500, logged', async () => {
    const { wire, receive } = setup({ request: () => { throw new TypeError('a bug in the script'); } });
    receive(invite('OPTIONS'));
    await settle();
    assert.equal(wire.responses()[0]?.status, 500);
  });
});

describe('ProxyCore: the hooks of a relayed INVITE', () => {
  test('callStarted (with the relay\'s taps), branchAdded, requestOut, then progress and answered as the callee answers', async () => {
    const { wire, hooks, receive } = setup({
      request: (sip) => sip.relay([{ uri: 'sip:bob@127.0.0.1:5080', dest: CALLEE, flags: 0, binding: null }], { taps: ['start ws://127.0.0.1:9/ mono 8k'] }),
    });
    receive(invite());
    await settle();
    assert.deepEqual(hooks.started?.taps, ['start ws://127.0.0.1:9/ mono 8k']);
    const out = wire.sent.find((s) => s.msg instanceof SipRequest && s.msg.method === 'INVITE');
    assert.ok(out, 'the INVITE went to the callee');
    assert.deepEqual(out.dest, CALLEE);
    const fwd = out.msg as SipRequest;
    const from: Source = { ...PHONE, port: 5080 };
    const ringing = makeResponse(fwd, 180, { toTag: 'b1' });
    receive(ringing.toBuffer(), from);
    const ok = makeResponse(fwd, 200, { toTag: 'b1', headers: [['Contact', '<sip:bob@127.0.0.1:5080>']] });
    receive(ok.toBuffer(), from);
    await settle();
    assert.deepEqual(hooks.calls, ['callStarted', 'branchAdded:0', 'requestOut:1', 'progress:0:180', 'answered:0:sip:bob@127.0.0.1:5080', 'progress:0:200']);
    assert.deepEqual(wire.responses().map((r) => r.status), [200], 'the 200 went upstream');
  });

  test('a branch that fails: branchFailed, then ended with the status sent upstream', async () => {
    const { wire, hooks, receive } = setup({ request: (sip) => sip.relay([{ uri: 'sip:bob@127.0.0.1:5080', dest: CALLEE, flags: 0, binding: null }]) });
    receive(invite());
    await settle();
    const fwd = wire.sent.find((s) => s.msg instanceof SipRequest && s.msg.method === 'INVITE')!.msg as SipRequest;
    receive(makeResponse(fwd, 486, { toTag: 'b2' }).toBuffer(), { ...PHONE, port: 5080 });
    await settle();
    assert.deepEqual(hooks.calls, ['callStarted', 'branchAdded:0', 'requestOut:1', 'branchFailed:0:486', 'ended:failed 486']);
    assert.deepEqual(wire.responses().map((r) => r.status), [486]);
  });
});
