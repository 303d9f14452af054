/**
 * CPU cost of the SIP hot path, in process and without sockets: parsing a REGISTER,
 * building and serializing its 200, the registrar alone, and the whole path a REGISTER
 * takes through the gateway (stack -> transactions -> proxy -> registrar -> response bytes),
 * with and without digest auth. Prints µs of CPU per operation (all threads of the process,
 * so garbage collection counts) and operations per CPU-second. Not a test: figures depend on
 * the machine; compare runs on the same machine, when it is otherwise quiet.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sip-hotpath.bench.js [--users=20000] [--ms=400] [--only=parse,registrar,path,auth] [--batch=10]
 *
 * What the REGISTERs look like: SIPp's (bench/sipp/reg-load.xml), one distinct user each.
 * The whole-path figures drive `stack.receive` in batches (--batch, default 10) and let the
 * event loop turn between batches (the registrar is asynchronous), as a busy UDP socket would.
 */
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { buildConfig } from '../server/config/load.js';
import { startGateway, type Gateway } from '../server/gateway.js';
import { MemoryLocationStore } from '../server/registrar/location-store.js';
import { Registrar } from '../server/registrar/registrar.js';
import type { SipRequest } from '../server/sip/message.js';
import { parseMessage } from '../server/sip/parser.js';
import { makeResponse } from '../server/sip/reply.js';
import type { Source } from '../server/sip/transport/types.js';
import { answerHelp } from './lib/help.js';

answerHelp(import.meta.url);

const { values: opt } = parseArgs({
  options: {
    users: { type: 'string', default: '20000' },
    ms: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '4' },
    only: { type: 'string' },
    batch: { type: 'string', default: '10' },
  },
});
const USERS = Number(opt.users);
const BUDGET_MS = Number(opt.ms);
const ROUNDS = Number(opt.rounds);
const BATCH = Number(opt.batch);
const only = opt.only ? new Set(opt.only.split(',')) : null;
const wanted = (group: string): boolean => only === null || only.has(group);

const SOURCE: Source = { transport: 'udp', address: '127.0.0.1', port: 5061, localAddress: '127.0.0.1', localPort: 5060, flowId: null };
const REALM = '127.0.0.1';
const PASSWORD = 'anchors';

function userName(i: number): string {
  return `user${String(i).padStart(6, '0')}`;
}

/** A REGISTER as SIPp's reg-load.xml sends it. */
function register(user: string, n: number, cseq: number, authorization = ''): Buffer {
  return Buffer.from(
    `REGISTER sip:${REALM} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-${n}-${cseq}\r\n` +
    'Max-Forwards: 70\r\n' +
    `From: <sip:${user}@${REALM}>;tag=${n}SIPpTag01${n}\r\n` +
    `To: <sip:${user}@${REALM}>\r\n` +
    `Call-ID: ${n}-4242@127.0.0.1\r\n` +
    `CSeq: ${cseq} REGISTER\r\n` +
    `Contact: <sip:${user}@127.0.0.1:5061>\r\n` +
    authorization +
    'Expires: 3600\r\n' +
    'Content-Length: 0\r\n\r\n',
    'latin1',
  );
}

function md5(s: string): string {
  return crypto.createHash('md5').update(s).digest('hex');
}

/** What a client answers to our challenge (computed outside the timed sections). */
function authorization(user: string, nonce: string): string {
  const ha1 = md5(`${user}:${REALM}:${PASSWORD}`);
  const ha2 = md5(`REGISTER:sip:${REALM}`);
  const response = md5(`${ha1}:${nonce}:00000001:0a4f113b:auth:${ha2}`);
  return `Authorization: Digest username="${user}",realm="${REALM}",cnonce="0a4f113b",nc=00000001,qop=auth,uri="sip:${REALM}",nonce="${nonce}",response="${response}",algorithm=MD5\r\n`;
}

interface Row {
  group: string;
  op: string;
  /** µs of process CPU per operation, best round */
  best: number;
  median: number;
}
const rows: Row[] = [];
let sink = 0;

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function report(group: string, op: string, perRound: number[]): void {
  const sorted = [...perRound].sort((a, b) => a - b);
  const row = { group, op, best: sorted[0]!, median: sorted[Math.floor(sorted.length / 2)]! };
  rows.push(row);
  console.log(`  ${op.padEnd(52)} ${row.best.toFixed(2).padStart(8)} µs  (median ${row.median.toFixed(2)})  ${Math.round(1e6 / row.best).toString().padStart(9)} /CPU-s`);
}

/** A synchronous operation: warm up, then ROUNDS rounds of about BUDGET_MS/ROUNDS each. */
function measureSync(group: string, op: string, fn: (i: number) => number): void {
  const warmEnd = performance.now() + BUDGET_MS / 2;
  let i = 0;
  while (performance.now() < warmEnd) for (let k = 0; k < 100; k++) sink += fn(i++);
  const per: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let calls = 0;
    const c0 = cpuMicros();
    const end = performance.now() + BUDGET_MS / ROUNDS;
    while (performance.now() < end) {
      for (let k = 0; k < 100; k++) sink += fn(i++);
      calls += 100;
    }
    per.push((cpuMicros() - c0) / calls);
  }
  report(group, op, per);
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---- parse and response building ----

console.log(`SIP hot path, node ${process.version}; µs of process CPU per operation (best of ${ROUNDS} rounds), and operations per CPU-second`);

const RING = 1024;
const ring = Array.from({ length: RING }, (_, i) => register(userName(i + 1), i + 1, 1));
const parsedRing = ring.map((b) => {
  const r = parseMessage(b);
  if (r.kind !== 'message') throw new Error('the sample REGISTER does not parse');
  const req = r.message as SipRequest;
  req.source = SOURCE;
  return req;
});
const authRing = ring.map((_, i) => register(userName(i + 1), i + 1, 2, authorization(userName(i + 1), 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')));

if (wanted('parse')) {
  console.log('message layer (one REGISTER, 1024 distinct ones in turn)');
  measureSync('parse', 'parseMessage (REGISTER)', (i) => (parseMessage(ring[i % RING]!).kind === 'message' ? 1 : 0));
  measureSync('parse', 'parseMessage (REGISTER with Authorization)', (i) => (parseMessage(authRing[i % RING]!).kind === 'message' ? 1 : 0));
  measureSync('parse', 'parseMessage + To, CSeq, Contact, Via read', (i) => {
    const r = parseMessage(ring[i % RING]!);
    if (r.kind !== 'message') return 0;
    const m = r.message;
    return m.to().uri.host.length + m.cseq().seq + m.contacts().length + m.via().params.size;
  });
  const date = new Date().toUTCString();
  measureSync('parse', 'makeResponse 200 (Contact, Date) + toBuffer', (i) => {
    const req = parsedRing[i % RING]!;
    return makeResponse(req, 200, { headers: [['Contact', '<sip:user@127.0.0.1:5061>;expires=3600'], ['Date', date]] }).toBuffer().length;
  });
  measureSync('parse', 'makeResponse 401 (WWW-Authenticate) + toBuffer', (i) => {
    const req = parsedRing[i % RING]!;
    return makeResponse(req, 401, { headers: [['WWW-Authenticate', 'Digest realm="127.0.0.1", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", qop="auth", algorithm=MD5']] }).toBuffer().length;
  });
}

// ---- the registrar alone ----

async function registrarBench(): Promise<void> {
  console.log(`registrar (no auth, memory store, ${USERS} users per round)`);
  const newPer: number[] = [];
  const refreshPer: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const registrar = new Registrar(new MemoryLocationStore(), {
      authenticate: false, minExpires: 60, maxExpires: 7200, defaultExpires: 3600, nonceTtl: 30, algorithms: ['MD5'], realm: REALM, domains: [REALM], maxContacts: 10,
    }, []);
    for (const cseq of [1, 2]) {
      const msgs: SipRequest[] = [];
      for (let i = 1; i <= USERS; i++) {
        const m = (parseMessage(register(userName(i), i, cseq)) as { message: SipRequest }).message;
        m.source = SOURCE;
        msgs.push(m);
      }
      const c0 = cpuMicros();
      for (const m of msgs) sink += (await registrar.register(m, 0)).status;
      const per = (cpuMicros() - c0) / USERS;
      if (r > 0) (cseq === 1 ? newPer : refreshPer).push(per); // round 0 warms up
    }
  }
  report('registrar', 'register(): new binding', newPer);
  report('registrar', 'register(): refresh (same Call-ID, next CSeq)', refreshPer);
}

// ---- the whole in-process path ----

const OK_200 = Buffer.from('SIP/2.0 200 OK\r\n', 'latin1');

async function gateway(auth: boolean, users: number): Promise<{ gw: Gateway; sent: Buffer[] }> {
  const list = [];
  for (let i = 1; i <= users; i++) list.push({ username: userName(i), password: PASSWORD });
  const config = buildConfig({
    // the load comes from loopback: trusted, so the flood guard is passed, not banning
    sip: { advertise: '127.0.0.1', udp: { address: '127.0.0.1', port: 0 }, trustedPeers: ['127.0.0.0/8'] },
    http: { address: '127.0.0.1', port: 0 },
    registrar: { store: { type: 'memory' }, authenticate: auth },
    users: list,
    log: { level: 'warn', pretty: false },
  });
  // silent: a gateway started here would print its warnings (the open API) once a round
  const gw = await startGateway(config, pino({ level: 'silent' }));
  const sent: Buffer[] = [];
  // the transport layer's send is where the bytes would leave: keep them instead (a 200 as
  // one shared copy of its status line: keeping every response would make the bench's own
  // heap, not the gateway's, what the garbage collector spends its time on)
  gw.transports.send = (buf) => {
    sent.push(buf[8] === 0x32 && buf[9] === 0x30 && buf[10] === 0x30 ? OK_200 : buf);
    return true;
  };
  return { gw, sent };
}

/**
 * Feeds the datagrams to the stack in batches of --batch (a socket under load hands Node
 * several datagrams per wake-up), letting the event loop turn between batches, then waits
 * for every answer; CPU µs in total.
 */
async function drive(gw: Gateway, sent: Buffer[], datagrams: Buffer[]): Promise<number> {
  const expected = sent.length + datagrams.length;
  const c0 = cpuMicros();
  for (let i = 0; i < datagrams.length; i++) {
    gw.stack.receive(datagrams[i]!, SOURCE);
    if (i % BATCH === BATCH - 1) await turn();
  }
  while (sent.length < expected) await turn();
  return cpuMicros() - c0;
}

function statusOf(buf: Buffer): number {
  return Number(buf.toString('latin1', 8, 11));
}

async function pathBench(): Promise<void> {
  console.log(`whole REGISTER path in process (stack.receive -> response bytes), ${USERS} distinct users per round, a fresh gateway each round`);
  if (wanted('path')) {
    const per: number[] = [];
    for (let r = 0; r < ROUNDS + 1; r++) {
      // a fresh gateway each round, as for a SIPp run: every REGISTER makes a new binding,
      // and the heap (location table, completed transactions) grows the same way each time
      const { gw, sent } = await gateway(false, 0);
      const datagrams = [];
      for (let i = 1; i <= USERS; i++) datagrams.push(register(userName(i), i, 1));
      const us = await drive(gw, sent, datagrams);
      if (sent.some((b) => statusOf(b) !== 200)) throw new Error('a REGISTER was not answered 200');
      await gw.close();
      if (r > 0) per.push(us / USERS); // round 0 warms up
    }
    report('path', 'REGISTER -> 200, no auth', per);
  }
  if (wanted('auth')) {
    const pairs: number[] = [];
    const challenges: number[] = [];
    const authorized: number[] = [];
    for (let r = 0; r < ROUNDS + 1; r++) {
      const { gw, sent } = await gateway(true, USERS);
      const first = [];
      for (let i = 1; i <= USERS; i++) first.push(register(userName(i), i, 1));
      const us1 = await drive(gw, sent, first);
      // the client's side (untimed): read each nonce, compute the digest response
      const second = sent.map((buf, k) => {
        if (statusOf(buf) !== 401) throw new Error('the first REGISTER was not challenged');
        const nonce = /nonce="([^"]+)"/.exec(buf.toString('latin1'))![1]!;
        return register(userName(k + 1), k + 1, 2, authorization(userName(k + 1), nonce));
      });
      sent.length = 0;
      const us2 = await drive(gw, sent, second);
      if (sent.some((b) => statusOf(b) !== 200)) throw new Error('an authenticated REGISTER was not answered 200');
      await gw.close();
      if (r > 0) {
        challenges.push(us1 / USERS);
        authorized.push(us2 / USERS);
        pairs.push((us1 + us2) / USERS);
      }
    }
    report('auth', 'REGISTER -> 401 (challenge)', challenges);
    report('auth', 'REGISTER with Authorization -> 200', authorized);
    report('auth', 'challenge + authenticated REGISTER (one registration)', pairs);
  }
}

if (wanted('registrar')) await registrarBench();
if (wanted('path') || wanted('auth')) await pathBench();
if (sink === 0.5) console.log(sink); // keeps the work observable
console.log(JSON.stringify(rows.map((r) => ({ ...r, best: Number(r.best.toFixed(3)), median: Number(r.median.toFixed(3)) }))));
