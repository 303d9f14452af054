/**
 * server/registrar/registrar.ts without sockets (RFC 3261 §10.3): what a REGISTER binds,
 * refreshes and removes on a MemoryLocationStore, the 200 that lists the bindings, the limits
 * (Min-Expires, maxExpires, maxContacts), NAT detection and the branch flags kept with a
 * binding. The clock is mocked, so every remaining time is exact.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import type { Binding } from '../../server/registrar/binding.js';
import { MemoryLocationStore } from '../../server/registrar/location-store.js';
import { Registrar, type RegistrarOptions } from '../../server/registrar/registrar.js';
import { DST_WS } from '../../server/routing/flags.js';
import type { SipRequest, SipResponse } from '../../server/sip/message.js';
import type { Source } from '../../server/sip/transport/types.js';
import { digestAuthorization } from '../helpers/rtp-phone.js';
import { parseRequest, sourceOf } from '../helpers/sip-request.js';

const DOMAIN = 'gw.example.com';
const PHONE = sourceOf('udp', '192.0.2.10', 5062);
const T0 = Date.UTC(2026, 0, 1);

function registrar(over: Partial<RegistrarOptions> = {}): Registrar {
  return new Registrar(new MemoryLocationStore(), {
    authenticate: false, minExpires: 60, maxExpires: 7200, defaultExpires: 3600, nonceTtl: 30,
    algorithms: ['MD5'], realm: DOMAIN, domains: [DOMAIN], maxContacts: 3, ...over,
  }, [{ username: 'alice', password: 'pw-alice' }]);
}

let cseq = 0;

interface RegisterSpec {
  contacts?: string[];
  /** the Expires header; none when undefined */
  expires?: number;
  callId?: string;
  host?: string;
  /** the Via sent-by, default the source's address and port */
  via?: string;
  source?: Source;
  auth?: [string, string];
}

/** A REGISTER for alice, as a phone at `source` writes it; one Call-ID with a rising CSeq unless said. */
function register(o: RegisterSpec = {}): SipRequest {
  const source = o.source ?? PHONE;
  const host = o.host ?? DOMAIN;
  return parseRequest([
    `REGISTER sip:${host} SIP/2.0`,
    `Via: SIP/2.0/${source.transport.toUpperCase()} ${o.via ?? `${source.address}:${source.port}`};branch=z9hG4bK-rp${++cseq}`,
    'Max-Forwards: 70',
    `From: <sip:alice@${host}>;tag=rp${cseq}`,
    `To: <sip:alice@${host}>`,
    `Call-ID: ${o.callId ?? 'reg-plan'}`,
    `CSeq: ${cseq} REGISTER`,
    ...(o.contacts ?? [`<sip:alice@${source.address}:${source.port}>`]).map((c) => `Contact: ${c}`),
    ...(o.expires !== undefined ? [`Expires: ${o.expires}`] : []),
    ...(o.auth ? [`${o.auth[0]}: ${o.auth[1]}`] : []),
  ], source);
}

/** The 200's Contact headers, sorted: what the phone learns of its bindings. */
function listed(res: SipResponse): string[] {
  assert.equal(res.status, 200, `${res.status} ${res.reason}`);
  return res.getAll('contact').sort();
}

/** contact -> seconds left, from the store. */
async function table(r: Registrar): Promise<Record<string, number>> {
  const now = Date.now();
  return Object.fromEntries((await r.store.get('alice')).map((b: Binding) => [b.contact, (b.expires - now) / 1000]));
}

const C1 = '<sip:alice@192.0.2.10:5062>';
const C2 = '<sip:alice@192.0.2.10:5064>';
const C3 = '<sip:alice@192.0.2.10:5066>';
const C4 = '<sip:alice@192.0.2.10:5068>';

describe('registrar: binding, refreshing and removing contacts', () => {
  beforeEach(() => mock.timers.enable({ apis: ['Date'], now: T0 }));
  afterEach(() => mock.timers.reset());

  test('a new contact is bound for the Expires asked, capped by maxExpires, the default when none', async () => {
    const r = registrar();
    assert.deepEqual(listed(await r.register(register({ contacts: [C1], expires: 600 }), 0)), ['<sip:alice@192.0.2.10:5062>;expires=600']);
    assert.deepEqual(listed(await r.register(register({ contacts: [C2], expires: 86400 }), 0)).at(-1), '<sip:alice@192.0.2.10:5064>;expires=7200');
    assert.deepEqual(await table(r), { 'sip:alice@192.0.2.10:5062': 600, 'sip:alice@192.0.2.10:5064': 7200 });
    const other = registrar();
    await other.register(register({ contacts: [C1] }), 0);
    assert.deepEqual(await table(other), { 'sip:alice@192.0.2.10:5062': 3600 }, 'no Expires: defaultExpires');
  });

  test('the Contact expires parameter wins over the Expires header', async () => {
    const r = registrar();
    await r.register(register({ contacts: [`${C1};expires=120`, C2], expires: 900 }), 0);
    assert.deepEqual(await table(r), { 'sip:alice@192.0.2.10:5062': 120, 'sip:alice@192.0.2.10:5064': 900 });
  });

  test('an interval under minExpires: 423 with Min-Expires, nothing bound', async () => {
    const r = registrar();
    const res = await r.register(register({ contacts: [C1], expires: 30 }), 0);
    assert.equal(res.status, 423);
    assert.equal(res.reason, 'Interval Too Brief');
    assert.equal(res.get('min-expires'), '60');
    assert.deepEqual(await r.store.get('alice'), []);
  });

  test('a refresh keeps one binding, with the new expiry', async () => {
    const r = registrar();
    const events: string[] = [];
    r.on('registered', (b) => events.push(`registered ${b.contact}`));
    r.on('refreshed', (b) => events.push(`refreshed ${b.contact}`));
    await r.register(register({ contacts: [C1], expires: 600 }), 0);
    mock.timers.tick(300_000);
    assert.deepEqual(listed(await r.register(register({ contacts: [C1], expires: 600 }), 0)), ['<sip:alice@192.0.2.10:5062>;expires=600']);
    assert.deepEqual(await table(r), { 'sip:alice@192.0.2.10:5062': 600 });
    assert.equal((await r.store.get('alice'))[0]!.registeredAt, T0, 'still the first registration');
    assert.deepEqual(events, ['registered sip:alice@192.0.2.10:5062', 'refreshed sip:alice@192.0.2.10:5062']);
  });

  test('Expires: 0 removes that contact only', async () => {
    const r = registrar();
    await r.register(register({ contacts: [C1, C2], expires: 600 }), 0);
    const res = await r.register(register({ contacts: [C1], expires: 0 }), 0);
    assert.deepEqual(listed(res), ['<sip:alice@192.0.2.10:5064>;expires=600']);
    assert.deepEqual(Object.keys(await table(r)), ['sip:alice@192.0.2.10:5064']);
  });

  test('Contact: * with Expires: 0 removes every binding; the 200 lists none', async () => {
    const r = registrar();
    const gone: string[] = [];
    r.on('unregistered', (b, why) => gone.push(`${b.contact} ${why}`));
    await r.register(register({ contacts: [C1, C2], expires: 600 }), 0);
    assert.deepEqual(listed(await r.register(register({ contacts: ['*'], expires: 0 }), 0)), []);
    assert.deepEqual(await r.store.get('alice'), []);
    assert.deepEqual(gone, ['sip:alice@192.0.2.10:5062 unregister', 'sip:alice@192.0.2.10:5064 unregister']);
  });

  test('Contact: * with other contacts, with a non-zero Expires or with none: 400, the bindings stay', async () => {
    const r = registrar();
    await r.register(register({ contacts: [C1], expires: 600 }), 0);
    for (const o of [{ contacts: ['*', C2], expires: 0 }, { contacts: ['*'], expires: 3600 }, { contacts: ['*'] }]) {
      const res = await r.register(register(o), 0);
      assert.equal(res.status, 400, JSON.stringify(o));
      assert.equal(res.reason, 'Invalid wildcard Contact');
    }
    assert.deepEqual(await table(r), { 'sip:alice@192.0.2.10:5062': 600 });
  });

  test('the 200 lists every binding with the time it has left; a REGISTER without Contact only asks', async () => {
    const r = registrar();
    await r.register(register({ contacts: [C1], expires: 3600 }), 0);
    mock.timers.tick(1000_000);
    const res = await r.register(register({ contacts: [`${C2};+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1`], expires: 600 }), 0);
    assert.deepEqual(listed(res), [
      '<sip:alice@192.0.2.10:5062>;expires=2600',
      '<sip:alice@192.0.2.10:5064>;expires=600;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1',
    ]);
    assert.equal(res.get('date'), new Date(T0 + 1000_000).toUTCString());
    mock.timers.tick(100_000);
    assert.deepEqual(listed(await r.register(register({ contacts: [] }), 0)), ['<sip:alice@192.0.2.10:5062>;expires=2500', '<sip:alice@192.0.2.10:5064>;expires=500;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1']);
  });

  test('an expired binding is no longer listed', async () => {
    const r = registrar();
    await r.register(register({ contacts: [C1], expires: 60 }), 0);
    await r.register(register({ contacts: [C2], expires: 600 }), 0);
    mock.timers.tick(61_000);
    assert.deepEqual(listed(await r.register(register({ contacts: [] }), 0)), ['<sip:alice@192.0.2.10:5064>;expires=539']);
  });

  test('over maxContacts: the binding expiring first is replaced, not the newest', async () => {
    const r = registrar({ maxContacts: 3 });
    const gone: string[] = [];
    r.on('unregistered', (b, why) => gone.push(`${b.contact} ${why}`));
    await r.register(register({ contacts: [C1], expires: 3600 }), 0);
    await r.register(register({ contacts: [C2], expires: 600 }), 0);
    await r.register(register({ contacts: [C3], expires: 1800 }), 0);
    const res = await r.register(register({ contacts: [C4], expires: 3600 }), 0);
    assert.deepEqual(listed(res), ['<sip:alice@192.0.2.10:5062>;expires=3600', '<sip:alice@192.0.2.10:5066>;expires=1800', '<sip:alice@192.0.2.10:5068>;expires=3600']);
    assert.deepEqual(gone, ['sip:alice@192.0.2.10:5064 replaced']);
    assert.equal((await r.register(register({ contacts: [C1, C2, C3, C4] }), 0)).status, 403, 'more than maxContacts in one REGISTER');
  });
});

describe('registrar: what a binding remembers', () => {
  test('a phone behind NAT (its Contact names another address than it sent from) is marked nat', async () => {
    const r = registrar();
    const nat = sourceOf('udp', '203.0.113.5', 40000);
    await r.register(register({ source: nat, via: '192.168.1.10:5060', contacts: ['<sip:alice@192.168.1.10:5060>'] }), 0);
    await r.register(register({ contacts: [C1] }), 0);
    const byContact = new Map((await r.store.get('alice')).map((b) => [b.contact, b]));
    const behind = byContact.get('sip:alice@192.168.1.10:5060')!;
    assert.equal(behind.nat, true);
    assert.deepEqual(behind.received, { transport: 'udp', address: '203.0.113.5', port: 40000, flowId: null });
    assert.equal(byContact.get('sip:alice@192.0.2.10:5062')!.nat, false, 'reached at its own address');
  });

  test('a WebSocket client: nat (reached over its connection), its flow kept, and the branch flags saved', async () => {
    const r = registrar();
    const ws = sourceOf('ws', '192.0.2.50', 51000);
    await r.register(register({ source: ws, via: 'df7jal23ls0d.invalid', contacts: ['<sip:alice@df7jal23ls0d.invalid;transport=ws>'] }), DST_WS);
    const [b] = await r.store.get('alice');
    assert.equal(b!.flags, DST_WS);
    assert.equal(b!.nat, true);
    assert.deepEqual(b!.received, { transport: 'ws', address: '192.0.2.50', port: 51000, flowId: ws.flowId });
  });

  test('a REGISTER for a domain not ours: 403 before anything else', async () => {
    const r = registrar();
    const res = await r.register(register({ host: 'elsewhere.example' }), 0);
    assert.equal(res.status, 403);
    assert.deepEqual(await r.store.get('alice'), []);
  });

  test('with authentication: challenged first, bound once the challenge is answered', async () => {
    const r = registrar({ authenticate: true });
    const challenge = await r.register(register({ callId: 'reg-auth', contacts: [C1], expires: 600 }), 0);
    assert.equal(challenge.status, 401);
    assert.deepEqual(await r.store.get('alice'), []);
    const auth = digestAuthorization(challenge, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: `sip:${DOMAIN}`, nc: 1 });
    assert.ok(auth);
    const res = await r.register(register({ callId: 'reg-auth', contacts: [C1], expires: 600, auth }), DST_WS);
    assert.equal(res.status, 200);
    assert.deepEqual((await r.store.get('alice')).map((b) => [b.contact, b.flags]), [['sip:alice@192.0.2.10:5062', DST_WS]]);
  });
});
