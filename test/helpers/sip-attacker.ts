/**
 * What a SIP scanner does (SIPVicious's svmap and svcrack, "friendly-scanner"), over UDP, for
 * the security tests: an OPTIONS sweep of extensions as fast as it can, and REGISTER password
 * guessing (challenge, then a wrong digest answer). Every wait is bounded; what came back is
 * counted, so a test can see when a ban started (replies stop). A small digest client of its
 * own (RFC 2617 MD5, qop=auth): the attacker knows no more of the gateway than a stranger.
 *
 * Also a command line, for running inside a test's network namespace:
 *   node dist/test/helpers/sip-attacker.js options  HOST PORT COUNT
 *   node dist/test/helpers/sip-attacker.js guess    HOST PORT USER COUNT
 *   node dist/test/helpers/sip-attacker.js register HOST PORT USER PASSWORD   (one REGISTER, the right password)
 *   node dist/test/helpers/sip-attacker.js invite   HOST PORT USER TARGET PASSWORD
 *   node dist/test/helpers/sip-attacker.js soak     HOST PORT USER SECONDS [PHASE,PHASE...]
 *   node dist/test/helpers/sip-attacker.js http     URL [Header:value ...]
 *   node dist/test/helpers/sip-attacker.js ws       URL [Origin]
 * Each prints one JSON line of figures.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';

const md5 = (s: string): string => crypto.createHash('md5').update(s).digest('hex');
const tag = (): string => crypto.randomBytes(6).toString('hex');

export class UdpScanner {
  private readonly socket = dgram.createSocket('udp4');
  /** replies by Call-ID (the latest), and every reply's arrival time */
  private readonly replies = new Map<string, string>();
  replyCount = 0;
  lastReplyAt = 0;
  private waiters = new Map<string, () => void>();

  private constructor(readonly host: string, readonly port: number) {}

  static async open(host: string, port: number, bind = '0.0.0.0'): Promise<UdpScanner> {
    const s = new UdpScanner(host, port);
    await new Promise<void>((r) => s.socket.bind(0, bind, () => r()));
    s.socket.on('message', (buf) => {
      const text = buf.toString('latin1');
      const callId = /\r\nCall-ID:\s*([^\r\n]+)/i.exec(text)?.[1]?.trim() ?? '';
      s.replyCount++;
      s.lastReplyAt = Date.now();
      s.replies.set(callId, text);
      s.waiters.get(callId)?.();
    });
    return s;
  }

  get localPort(): number {
    return this.socket.address().port;
  }

  send(text: string): void {
    this.socket.send(Buffer.from(text, 'latin1'), this.port, this.host);
  }

  /** The reply to `callId` (sent now), or null after timeoutMs. */
  async request(text: string, callId: string, timeoutMs = 1000): Promise<string | null> {
    this.replies.delete(callId);
    const got = this.nextReply(callId, timeoutMs);
    this.send(text);
    return got;
  }

  /** The next reply to `callId`, or null after timeoutMs. */
  nextReply(callId: string, timeoutMs: number): Promise<string | null> {
    return new Promise<string | null>((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(callId);
        resolve(null);
      }, timeoutMs);
      this.waiters.set(callId, () => {
        clearTimeout(t);
        this.waiters.delete(callId);
        resolve(this.replies.get(callId) ?? null);
      });
    });
  }

  /** The final reply to `callId` (sent now): provisional ones (100 Trying) are skipped. */
  async finalReply(text: string, callId: string, timeoutMs: number): Promise<string | null> {
    let r = await this.request(text, callId, timeoutMs);
    while (r !== null && /^SIP\/2\.0 1\d\d/.test(r)) r = await this.nextReply(callId, timeoutMs);
    return r;
  }

  options(ext: string): { text: string; callId: string } {
    const callId = `${tag()}@scan`;
    const text = [
      `OPTIONS sip:${ext}@${this.host} SIP/2.0`,
      `Via: SIP/2.0/UDP 0.0.0.0:${this.localPort};branch=z9hG4bK${tag()};rport`,
      'Max-Forwards: 70',
      `From: "sipvicious"<sip:100@1.1.1.1>;tag=${tag()}`,
      `To: "sipvicious"<sip:${ext}@${this.host}>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 OPTIONS',
      'Contact: <sip:100@1.1.1.1>',
      'Accept: application/sdp',
      'User-Agent: friendly-scanner',
      'Content-Length: 0',
      '', '',
    ].join('\r\n');
    return { text, callId };
  }

  register(user: string, callId: string, cseq: number, auth?: string): string {
    return [
      `REGISTER sip:${this.host} SIP/2.0`,
      `Via: SIP/2.0/UDP 0.0.0.0:${this.localPort};branch=z9hG4bK${tag()};rport`,
      'Max-Forwards: 70',
      `From: <sip:${user}@${this.host}>;tag=${tag()}`,
      `To: <sip:${user}@${this.host}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <sip:${user}@0.0.0.0:${this.localPort}>`,
      'Expires: 60',
      'User-Agent: friendly-scanner',
      ...(auth ? [`Authorization: ${auth}`] : []),
      'Content-Length: 0',
      '', '',
    ].join('\r\n');
  }

  invite(user: string, target: string, callId: string, cseq: number, auth?: string): string {
    return [
      `INVITE sip:${target}@${this.host} SIP/2.0`,
      `Via: SIP/2.0/UDP 0.0.0.0:${this.localPort};branch=z9hG4bK${tag()};rport`,
      'Max-Forwards: 70',
      `From: <sip:${user}@${this.host}>;tag=${tag()}`,
      `To: <sip:${target}@${this.host}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} INVITE`,
      `Contact: <sip:${user}@0.0.0.0:${this.localPort}>`,
      'User-Agent: friendly-scanner',
      ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
      'Content-Length: 0',
      '', '',
    ].join('\r\n');
  }

  /**
   * One svcrack guess: REGISTER, and on a 401 the digest answer for `password`. The final
   * status, 'challenge' when the challenge could not be answered, or null when nothing came.
   */
  guess(user: string, password: string, timeoutMs = 1000): Promise<number | 'challenge' | null> {
    return this.guessWith('REGISTER', user, password, timeoutMs);
  }

  /** The same for an INVITE from `user` to `target` (the 407 of route[AUTH] answered). */
  guessInvite(user: string, target: string, password: string, timeoutMs = 1000): Promise<number | 'challenge' | null> {
    return this.guessWith('INVITE', user, password, timeoutMs, target);
  }

  private async guessWith(method: 'REGISTER' | 'INVITE', user: string, password: string, timeoutMs: number, target = user): Promise<number | 'challenge' | null> {
    const callId = `${tag()}@crack`;
    const build = (cseq: number, auth?: string): string => (method === 'REGISTER' ? this.register(user, callId, cseq, auth) : this.invite(user, target, callId, cseq, auth));
    const first = await this.finalReply(build(1), callId, timeoutMs);
    if (first === null) return null;
    const status = Number(/^SIP\/2\.0 (\d{3})/.exec(first)?.[1]);
    if (status !== 401 && status !== 407) return status;
    const header = new RegExp(`\r\n${status === 401 ? 'WWW' : 'Proxy'}-Authenticate:\\s*Digest ([^\r\n]+)`, 'i').exec(first)?.[1] ?? '';
    const param = (n: string): string | undefined => new RegExp(`${n}="?([^",]+)"?`, 'i').exec(header)?.[1];
    const realm = param('realm');
    const nonce = param('nonce');
    if (realm === undefined || nonce === undefined) return 'challenge';
    const uri = method === 'REGISTER' ? `sip:${this.host}` : `sip:${target}@${this.host}`;
    const qop = (param('qop') ?? '').split(/\s*,\s*/).includes('auth');
    const nc = '00000001';
    const cnonce = tag();
    const h1 = md5(`${user}:${realm}:${password}`);
    const h2 = md5(`${method}:${uri}`);
    const response = qop ? md5(`${h1}:${nonce}:${nc}:${cnonce}:auth:${h2}`) : md5(`${h1}:${nonce}:${h2}`);
    const opaque = param('opaque');
    let auth = `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=MD5`;
    if (qop) auth += `, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
    if (opaque !== undefined) auth += `, opaque="${opaque}"`;
    const second = await this.finalReply(build(2, auth), callId, timeoutMs);
    return second === null ? null : Number(/^SIP\/2\.0 (\d{3})/.exec(second)?.[1]);
  }

  close(): void {
    this.socket.close();
  }
}

export interface SweepResult {
  sent: number;
  replies: number;
  /** replies to three OPTIONS sent one by one after the sweep (0: ignored, i.e. banned) */
  probeReplies: number;
}

/** svmap: `count` OPTIONS to extensions 100, 101, ... as fast as the socket takes them, then a probe. */
export async function optionsSweep(s: UdpScanner, count: number): Promise<SweepResult> {
  const before = s.replyCount;
  for (let i = 0; i < count; i++) {
    s.send(s.options(String(100 + i)).text);
    if (i % 100 === 99) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 500));
  const replies = s.replyCount - before;
  let probeReplies = 0;
  for (let i = 0; i < 3; i++) {
    const o = s.options('100');
    if (await s.request(o.text, o.callId, 700)) probeReplies++;
  }
  return { sent: count, replies, probeReplies };
}

export interface GuessResult {
  attempts: number;
  /** final statuses seen (403 for a wrong password) */
  statuses: Record<string, number>;
  /** guesses that got no answer at all: the source was banned */
  unanswered: number;
  /** index of the first unanswered guess, or -1 */
  firstUnanswered: number;
}

/** svcrack: `count` wrong passwords for `user`, one after the other. */
export async function passwordGuess(s: UdpScanner, user: string, count: number, timeoutMs = 700): Promise<GuessResult> {
  const r: GuessResult = { attempts: 0, statuses: {}, unanswered: 0, firstUnanswered: -1 };
  for (let i = 0; i < count; i++) {
    r.attempts++;
    const got = await s.guess(user, `guess-${i}-${tag()}`, timeoutMs);
    if (got === null) {
      r.unanswered++;
      if (r.firstUnanswered < 0) r.firstUnanswered = i;
      // a banned source keeps trying, as scanners do, but there is no point hurrying
      if (r.unanswered >= 3) break;
    } else {
      r.statuses[String(got)] = (r.statuses[String(got)] ?? 0) + 1;
    }
  }
  return r;
}

export interface SoakResult {
  seconds: number;
  sent: number;
  replies: number;
  /** ms from the start of each phase to its last reply (then silence: the ban), per phase */
  bans: { phase: string; startedAt: number; silentAfterMs: number | null }[];
}

/**
 * One step of an attack phase: sends a little, returns how many messages it sent. The soak
 * calls it again and again until the gateway falls silent.
 */
export type AttackStep = (s: UdpScanner, user: string, i: number) => Promise<number>;

export const PHASES: Record<string, AttackStep> = {
  // svmap: 50 OPTIONS to consecutive extensions every 5 ms (about 10 000 a second)
  'options-sweep': async (s, _user, i) => {
    for (let k = 0; k < 50; k++) s.send(s.options(String(100 + ((i * 50 + k) % 900))).text);
    await new Promise((r) => setTimeout(r, 5));
    return 50;
  },
  // svcrack: a guess started every 20 ms, overlapping, as svcrack's do
  'register-guess': async (s, user, i) => {
    void s.guess(user, `guess-${i}`, 500);
    await new Promise((r) => setTimeout(r, 20));
    return 1;
  },
  // toll fraud: INVITEs to an outside number as `user`, each 407 answered with a guess
  'invite-guess': async (s, user, i) => {
    void s.guessInvite(user, '0044' + String(900000000 + i), `guess-${i}`, 500);
    await new Promise((r) => setTimeout(r, 20));
    return 1;
  },
};

/**
 * SIPVicious for `seconds`: the phases in turn, each running until the gateway stops answering
 * for 1.5 s (banned), then probing once a second until it answers again (the ban's end)
 * before the next phase, until the time is up.
 */
export async function soak(s: UdpScanner, user: string, seconds: number, phases: string[] = Object.keys(PHASES)): Promise<SoakResult> {
  for (const p of phases) if (!PHASES[p]) throw new Error(`unknown phase ${p} (known: ${Object.keys(PHASES).join(', ')})`);
  const end = Date.now() + seconds * 1000;
  const result: SoakResult = { seconds, sent: 0, replies: 0, bans: [] };
  const startReplies = s.replyCount;
  for (let n = 0; Date.now() < end; n++) {
    const phase = phases[n % phases.length]!;
    const step = PHASES[phase]!;
    const startedAt = Date.now();
    let silentAfterMs: number | null = null;
    for (let i = 0; Date.now() < end; i++) {
      result.sent += await step(s, user, i);
      if (Date.now() - Math.max(s.lastReplyAt, startedAt) > 1500) {
        silentAfterMs = Math.max(0, s.lastReplyAt - startedAt);
        break;
      }
    }
    result.bans.push({ phase, startedAt, silentAfterMs });
    while (Date.now() < end) {
      const o = s.options('100');
      result.sent++;
      if (await s.request(o.text, o.callId, 1000)) break;
    }
  }
  result.replies = s.replyCount - startReplies;
  return result;
}

async function httpGet(url: string, headers: string[]): Promise<object> {
  const h: Record<string, string> = {};
  for (const kv of headers) {
    const i = kv.indexOf(':');
    h[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const res = await fetch(url, { headers: h, signal: AbortSignal.timeout(5000) });
  // an event stream never ends: the status is what matters
  const body = res.headers.get('content-type')?.includes('event-stream') ? '' : await res.text();
  await res.body?.cancel().catch(() => undefined);
  return { status: res.status, body };
}

function wsOpen(url: string, origin?: string): Promise<object> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'sip', origin ? { origin } : {});
    const t = setTimeout(() => { ws.terminate(); resolve({ status: 'timeout' }); }, 5000);
    ws.on('open', () => { clearTimeout(t); ws.close(); resolve({ status: 101 }); });
    ws.on('unexpected-response', (_req, res) => { clearTimeout(t); resolve({ status: res.statusCode }); ws.terminate(); });
    ws.on('error', (e) => { clearTimeout(t); resolve({ status: 'error', error: e.message }); });
  });
}

async function cli(argv: string[]): Promise<void> {
  const [cmd, ...a] = argv;
  if (!cmd || cmd === '--help') {
    process.stdout.write('usage: sip-attacker.js options HOST PORT COUNT | guess HOST PORT USER COUNT | register HOST PORT USER PASSWORD | invite HOST PORT USER TARGET PASSWORD | soak HOST PORT USER SECONDS [PHASES] | http URL [H:v...] | ws URL [ORIGIN]\n');
    return;
  }
  let out: object;
  if (cmd === 'http') out = await httpGet(a[0]!, a.slice(1));
  else if (cmd === 'ws') out = await wsOpen(a[0]!, a[1]);
  else {
    const s = await UdpScanner.open(a[0]!, Number(a[1]));
    try {
      if (cmd === 'options') out = await optionsSweep(s, Number(a[2]));
      else if (cmd === 'guess') out = await passwordGuess(s, a[2]!, Number(a[3]));
      else if (cmd === 'register') out = { status: await s.guess(a[2]!, a[3]!, 3000) };
      else if (cmd === 'invite') out = { status: await s.guessInvite(a[2]!, a[3]!, a[4]!, 3000) };
      else if (cmd === 'soak') out = await soak(s, a[2]!, Number(a[3]), a[4]?.split(','));
      else throw new Error(`unknown command ${cmd}`);
    } finally {
      s.close();
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  cli(process.argv.slice(2)).then(() => process.exit(0), (e: unknown) => {
    process.stderr.write(`sip-attacker: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
