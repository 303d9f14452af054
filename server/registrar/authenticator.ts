/**
 * Digest authentication of SIP requests (RFC 3261 §22.4, RFC 2617 / RFC 7616 with qop=auth):
 * Kamailio's www_authorize for REGISTER (401, WWW-Authenticate / Authorization) and
 * proxy_authorize for requests through the proxy (407, Proxy-Authenticate /
 * Proxy-Authorization, RFC 3261 §22.3). One fixed realm; accounts from the configuration.
 *
 * What an attacker learns is the same whatever went wrong: an unknown user, a user name that
 * does not match, a demo account asked for from a public address and a wrong password all get
 * the same 403 after the same hashing (an unknown user's response is checked against a decoy
 * H(A1)). Each failure is announced once as `authFailed` (source, user, reason) for the log and
 * the flood guard. Memory is fixed: H(A1) is computed per account and algorithm at start, the
 * nonces are checked without a table and their counts live in a fixed one (digest.ts).
 */
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { DEMO_USERS } from '../config/schema.js';
import { isPrivateAddress } from '../net/address-class.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { makeResponse } from '../sip/reply.js';
import {
  challengeHeader,
  expectedResponse,
  ha1,
  ha2CacheSize,
  NonceFactory,
  nonceCount,
  parseCredentials,
  timingSafeEqualHex,
  type DigestAlgorithm,
} from './digest.js';

export interface Account {
  username: string;
  password: string;
  displayName?: string;
}

export interface AuthenticatorOptions {
  /** the digest realm of every challenge (credentials for another realm are ignored) */
  realm: string;
  /** algorithms offered, preferred first (RFC 8760) */
  algorithms: readonly DigestAlgorithm[];
  /** seconds a nonce is good for; then the client is challenged again with stale=true */
  nonceTtl: number;
  /** nonces whose nonce-count is tracked at once (a power of two; default 65536, 512 KiB) */
  nonceSlots?: number;
}

/** 'www': REGISTER and requests to us (401); 'proxy': requests we forward (407). */
export type AuthKind = 'www' | 'proxy';

/** A refused authentication, as announced to the log and the flood guard. */
export interface AuthFailure {
  /** the user name the request claimed (cut to 64 characters), or null when it named none */
  username: string | null;
  /** what went wrong, for the log only (the client is never told) */
  reason: string;
  /** "address:port" the request came from */
  source: string;
  /** the address alone: what a ban is about */
  address: string;
  method: string;
}

export type AuthRefusal = { ok: false; status: 401 | 403 | 407; reason: string; headers: [string, string][] };
export type AuthResult = { ok: true; user: string } | AuthRefusal;

/** The one answer to every failed attempt (no header that could differ between causes). */
const FORBIDDEN: AuthRefusal = Object.freeze({ ok: false, status: 403, reason: 'Forbidden', headers: [] }) as AuthRefusal;

interface Entry {
  account: Account;
  /** H(A1) per algorithm: fixed realm, so computed once per account at start */
  ha1: Map<DigestAlgorithm, string>;
  /** the embedded demo accounts answer only private sources (the machine and its LAN) */
  privateOnly: boolean;
}

export interface AuthenticatorEvents {
  authFailed: [AuthFailure];
}

/**
 * Usage (the proxy's route[AUTH], Kamailio's `proxy_authorize` then `$au == $fU`):
 * ```ts
 * const auth = registrar.auth.check(req, 'proxy');
 * if (!auth.ok) return reply(authResponse(req, auth));  // 407 with Proxy-Authenticate, or 403
 * if (auth.user !== fromUser) return reply(403);         // authenticated as someone else
 * ```
 * For REGISTER the registrar calls `check(req, 'www', toUser)`: the credentials must be the
 * To user's. Failures are emitted as `authFailed`; the Registrar re-emits them as its own.
 */
export class Authenticator extends EventEmitter<AuthenticatorEvents> {
  readonly realm: string;
  private readonly algorithms: readonly DigestAlgorithm[];
  private readonly nonces: NonceFactory;
  private readonly entries = new Map<string, Entry>();
  /** H(A1) of no account, checked for unknown users so that they cost what a real one costs */
  private readonly decoy = new Map<DigestAlgorithm, string>();

  constructor(opts: AuthenticatorOptions, accounts: readonly Account[]) {
    super();
    this.realm = opts.realm;
    this.algorithms = opts.algorithms;
    this.nonces = new NonceFactory(opts.nonceTtl * 1000, opts.nonceSlots);
    const noPassword = crypto.randomBytes(16).toString('hex');
    for (const alg of this.algorithms) this.decoy.set(alg, ha1(alg, noPassword, this.realm, noPassword));
    for (const account of accounts) {
      const h = new Map<DigestAlgorithm, string>();
      for (const alg of this.algorithms) h.set(alg, ha1(alg, account.username, this.realm, account.password));
      const privateOnly = DEMO_USERS.some((d) => d.username === account.username && d.password === account.password);
      this.entries.set(account.username, { account, ha1: h, privateOnly });
    }
  }

  account(user: string): Account | undefined {
    return this.entries.get(user)?.account;
  }

  has(user: string): boolean {
    return this.entries.has(user);
  }

  /**
   * Authenticates `req` from its Authorization ('www') or Proxy-Authorization ('proxy')
   * headers. `{ ok: true, user }` names the account the credentials proved; otherwise the
   * status, reason and headers to answer with: 401/407 with a fresh challenge (stale=true when
   * the password was right but the nonce expired or was used up), or 403 for bad credentials.
   * `user`, when given, is the only account the credentials may be for (REGISTER: the To user).
   * Never throws on a malformed header: unreadable credentials are ignored (challenged).
   */
  check(req: SipRequest, kind: AuthKind, user?: string): AuthResult {
    const bind = req.source?.address ?? '';
    const now = Date.now();
    let stale = false;
    for (const value of req.getAll(kind === 'www' ? 'authorization' : 'proxy-authorization')) {
      const cred = parseCredentials(value);
      if (!cred || cred.scheme.toLowerCase() !== 'digest') continue; // RFC 4475 regaut01: unknown scheme -> challenge
      const p = cred.params;
      if (p.get('realm') !== this.realm) continue;
      const alg = (p.get('algorithm') ?? 'MD5').toUpperCase() as DigestAlgorithm;
      if (!this.algorithms.includes(alg)) continue;
      const nonce = p.get('nonce') ?? '';
      // not ours, or issued to another address: as if there were no credentials
      const state = this.nonces.check(nonce, bind, now);
      if (state === 'invalid') continue;

      // One path for every failure: the same hashing, the same 403.
      const username = p.get('username') ?? '';
      const entry = this.entries.get(username);
      let why: string | null = null;
      if (entry === undefined) why = 'unknown user';
      else if (user !== undefined && username !== user) why = 'user name does not match the To user';
      else if (entry.privateOnly && !(req.source !== null && isPrivateAddress(req.source.address))) why = 'demo user from a public address';
      const secret = (why === null ? entry?.ha1.get(alg) : undefined) ?? this.decoy.get(alg)!;
      const matches = timingSafeEqualHex(expectedResponse(alg, secret, req.method, p), (p.get('response') ?? '').toLowerCase());
      if (why === null && !matches) why = 'wrong password';
      if (why !== null) return this.refuse(req, username, why);

      // The credentials are proven; the nonce must still be fresh and its count unused.
      if (state === 'stale') {
        stale = true;
        continue;
      }
      const nc = nonceCount(p);
      if (nc === null) return this.refuse(req, username, 'malformed nonce count');
      const use = this.nonces.use(nonce, nc);
      if (use === 'replayed') {
        // a captured Authorization sent again (RFC 7616 §5.4): refused; a confused client
        // recovers with the fresh challenge
        this.emit('authFailed', authFailure(req, username, 'nonce count reused (replay)'));
        stale = true;
        continue;
      }
      if (use === 'evicted') {
        stale = true;
        continue;
      }
      return { ok: true, user: username };
    }
    return this.challenge(kind, stale, bind, now);
  }

  /** Announces a failure and returns the 403 every failure gets. */
  refuse(req: SipRequest, username: string | null, reason: string): AuthRefusal {
    this.emit('authFailed', authFailure(req, username, reason));
    return FORBIDDEN;
  }

  /** Sizes of what the authenticator keeps (all fixed after start): for tests and metrics. */
  toJSON(): { realm: string; accounts: number; ha1: number; ha2Cache: number; nonceSlots: number; nonceTtlMs: number } {
    let n = 0;
    for (const e of this.entries.values()) n += e.ha1.size;
    const nonces = this.nonces.toJSON();
    return { realm: this.realm, accounts: this.entries.size, ha1: n, ha2Cache: ha2CacheSize(), nonceSlots: nonces.slots, nonceTtlMs: nonces.ttlMs };
  }

  private challenge(kind: AuthKind, stale: boolean, bind: string, now: number): AuthRefusal {
    const nonce = this.nonces.make(bind, now);
    const name = kind === 'www' ? 'WWW-Authenticate' : 'Proxy-Authenticate';
    const headers: [string, string][] = this.algorithms.map((alg) => [name, challengeHeader(this.realm, nonce, alg, stale)]);
    return kind === 'www'
      ? { ok: false, status: 401, reason: 'Unauthorized', headers }
      : { ok: false, status: 407, reason: 'Proxy Authentication Required', headers };
  }
}

/** The response to send for a refusal. */
export function authResponse(req: SipRequest, r: AuthRefusal): SipResponse {
  const res = makeResponse(req, r.status, { reason: r.reason, headers: r.headers });
  // A challenge depends on no state (the nonce is checked without a table): kept only
  // briefly, a late retransmitted request gets a fresh one (RFC 3261 §8.2.7). A 403 is kept
  // for Timer J, so that a retransmission is not counted as a second failure.
  res.stateless = r.status !== 403;
  return res;
}

/** The event of a refused request (client-given text cut short: it goes to the log). */
export function authFailure(req: SipRequest, username: string | null, reason: string): AuthFailure {
  const s = req.source;
  return {
    username: username === null || username === '' ? null : clip(username),
    reason,
    source: s ? `${s.address}:${s.port}` : '?',
    address: s ? s.address : '?',
    method: req.method,
  };
}

function clip(s: string): string {
  return s.length <= 64 ? s : s.slice(0, 64) + '…';
}
