/**
 * REGISTER processing (RFC 3261 §10.3): authenticate, then add, refresh or remove bindings,
 * and answer 200 with the bindings now current. Also the lookup() a routing script calls.
 */
import { EventEmitter } from 'node:events';
import { parseNameAddr } from '../sip/address.js';
import { detach } from '../sip/detach.js';
import { SipError } from '../sip/errors.js';
import { isDigits, type Params } from '../sip/grammar.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { makeResponse } from '../sip/reply.js';
import { isIpLiteral, unescapeUri, type SipUri } from '../sip/uri.js';
import type { Via } from '../sip/via.js';
import { Authenticator, authFailure, authResponse, type Account, type AuthFailure } from './authenticator.js';
import type { Binding } from './binding.js';
import type { DigestAlgorithm } from './digest.js';
import { ServedDomains } from './domains.js';
import { MemoryLocationStore, type LocationStore } from './location-store.js';

export interface RegistrarOptions {
  /** false: no challenge, and any user name may register (OpenSIPS save() without www_authorize) */
  authenticate: boolean;
  minExpires: number;
  maxExpires: number;
  defaultExpires: number;
  /** seconds a digest nonce is good for */
  nonceTtl: number;
  algorithms: DigestAlgorithm[];
  /** the digest realm (sip.realm, else the first of sip.domains, else the advertised address) */
  realm: string;
  /** names and addresses that are ours besides the machine's own: REGISTERs for others get 403 */
  domains: readonly string[];
  /** bindings per AOR; a REGISTER adding more replaces the oldest (Asterisk's remove_existing) */
  maxContacts: number;
}

export interface RegistrarEvents {
  registered: [Binding];
  refreshed: [Binding];
  unregistered: [Binding, 'unregister' | 'expired' | 'connection-closed' | 'replaced' | 'api'];
  /** a refused REGISTER, or a refused request of the proxy's (through `auth`) */
  authFailed: [AuthFailure];
}

/** What a REGISTER says before the AOR's current bindings are read. */
class Pending {
  constructor(
    readonly user: string,
    /** ms since the epoch, taken once for the whole REGISTER */
    readonly now: number,
    readonly callId: string,
    readonly cseq: number,
    readonly headerExpires: number | null,
    readonly contacts: string[],
  ) {}
}

/** The AOR's bindings after a REGISTER, and what changed. */
interface Plan {
  current: Binding[];
  /** false when the REGISTER only asked for the bindings (no Contact) */
  write: boolean;
  removed: Binding[];
  added: Binding[];
  refreshed: Binding[];
  /** `Contact: *`: every binding removed */
  wildcard: boolean;
  /** removed to stay within maxContacts */
  evicted: Binding[];
}

/** Largest Expires we take literally: RFC 3261 §20.19 delta-seconds is 32 bits. */
const EXPIRES_CAP = 2 ** 32 - 1;

export class Registrar extends EventEmitter<RegistrarEvents> {
  /**
   * Digest authentication, shared with the proxy (its route[AUTH]: `auth.check(req, 'proxy')`);
   * its failures are re-emitted here as `authFailed`.
   */
  readonly auth: Authenticator;
  private readonly domains: ServedDomains;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(readonly store: LocationStore, private readonly opts: RegistrarOptions, accounts: readonly Account[]) {
    super();
    this.auth = new Authenticator({ realm: opts.realm, algorithms: opts.algorithms, nonceTtl: opts.nonceTtl }, accounts);
    this.auth.on('authFailed', (f) => this.emit('authFailed', f));
    this.domains = new ServedDomains([...opts.domains, opts.realm]);
  }

  start(sweepMs = 1000): void {
    this.sweeper = setInterval(() => {
      void this.store.sweep(Date.now()).then((expired) => {
        for (const b of expired) this.emit('unregistered', b, 'expired');
      });
    }, sweepMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** Is this user one of ours (whether registered or not)? Without authentication, anyone is. */
  isUser(user: string): boolean {
    return this.auth.has(user) || (!this.opts.authenticate && user !== '');
  }

  account(user: string): Account | undefined {
    return this.auth.account(user);
  }

  /** lookup("location"): the live bindings of a user, best q first. */
  async lookup(user: string): Promise<Binding[]> {
    const list = await this.store.get(user);
    return list.length > 1 ? [...list].sort((a, b) => (b.q ?? 1) - (a.q ?? 1)) : list;
  }

  async connectionClosed(flowId: string): Promise<void> {
    for (const b of await this.store.removeFlow(flowId)) this.emit('unregistered', b, 'connection-closed');
  }

  /** Removes bindings of a user (all, or one contact) from the API. */
  async remove(user: string, contact?: string): Promise<number> {
    const list = await this.store.get(user);
    const gone = list.filter((b) => contact === undefined || b.contact === contact);
    await this.store.set(user, list.filter((b) => !gone.includes(b)));
    for (const b of gone) this.emit('unregistered', b, 'api');
    return gone.length;
  }

  /**
   * Handles a REGISTER; `flags` are the branch flags the script set (saved with each contact).
   * Returns the response to send; throws nothing.
   */
  async register(req: SipRequest, flags: number): Promise<SipResponse> {
    // The work is done by the synchronous steps below; this function only waits for the
    // store. (One big async function kept all its locals in a heap frame per REGISTER.)
    try {
      const start = this.begin(req);
      if (!(start instanceof Pending)) return start;
      const store = this.store;
      let plan: Plan;
      if (store instanceof MemoryLocationStore) {
        // the table is in this process (memory, file): read, change and write it in one go
        plan = this.plan(req, flags, start, store.getSync(start.user));
        if (plan.write) store.put(start.user, plan.current);
      } else {
        plan = this.plan(req, flags, start, await store.get(start.user));
        if (plan.write) await store.set(start.user, plan.current);
      }
      this.announce(plan);
      return this.ok(req, plan.current, start.now);
    } catch (e) {
      if (e instanceof SipError) return makeResponse(req, e.status, { reason: e.reason, headers: e.headers });
      throw e;
    }
  }

  /** §10.3 steps 1-5: the AOR, authentication, the request's Expires; or the answer already. */
  private begin(req: SipRequest): Pending | SipResponse {
    const to = req.to();
    if (to.uri.scheme !== 'sip' && to.uri.scheme !== 'sips') throw new SipError(400, 'To must be a SIP URI');
    const user = to.uri.user === null ? '' : unescapeUri(to.uri.user);
    // §10.3 step 1: bindings for a domain that is not ours are refused, before any challenge
    if (!this.domains.has(to.uri.host)) {
      this.emit('authFailed', authFailure(req, user, `REGISTER for a domain not served: ${clip(to.uri.host)}`));
      return makeResponse(req, 403, { reason: 'Domain Not Served' });
    }
    // §10.3 step 3 before step 5: everyone is challenged first, so the replies do not tell
    // which users exist; an unknown user's credentials then get the 403 a wrong password gets.
    if (this.opts.authenticate) {
      const auth = this.auth.check(req, 'www', user);
      if (!auth.ok) return authResponse(req, auth);
    } else if (user === '') {
      throw new SipError(404, 'Not Found');
    }
    const now = Date.now();
    const callId = req.callId();
    const cseq = req.cseq().seq;
    const headerExpires = this.parseExpires(req.get('expires'));
    return new Pending(user, now, callId, cseq, headerExpires, req.getAll('contact'));
  }

  /** §10.3 steps 6-7: the AOR's bindings after this REGISTER, given those it has now. */
  private plan(req: SipRequest, flags: number, p: Pending, now: Binding[]): Plan {
    const { user, callId, cseq, headerExpires, contacts } = p;
    let current = now;
    let wildcard = false;
    for (const c of contacts) if (c.trim() === '*') wildcard = true;
    if (wildcard) {
      // §10.3 step 6: "*" only alone and with Expires: 0
      if (contacts.length !== 1 || headerExpires !== 0) throw new SipError(400, 'Invalid wildcard Contact');
      for (const b of current) {
        if (b.callId === callId && cseq <= b.cseq) throw new SipError(500, 'Stale CSeq');
      }
      return { current: [], write: true, removed: current, added: [], refreshed: [], wildcard: true, evicted: [] };
    }

    const source = req.source;
    const received = source
      ? { transport: source.transport, address: source.address, port: source.port, flowId: source.transport === 'udp' ? null : source.flowId }
      : { transport: 'udp' as const, address: '', port: 0, flowId: null };
    // Asterisk refuses a REGISTER that alone would exceed max_contacts
    if (contacts.length > this.opts.maxContacts) throw new SipError(403, 'Too Many Contacts');
    const userAgentText = req.get('user-agent') ?? null;
    const added: Binding[] = [];
    const refreshed: Binding[] = [];
    const removed: Binding[] = [];
    for (const value of contacts) {
      let c;
      try {
        c = parseNameAddr(value);
      } catch {
        throw new SipError(400, 'Bad Contact');
      }
      const expiresParam = c.params.get('expires');
      let expires = expiresParam !== undefined ? this.parseExpires(expiresParam ?? '') : headerExpires;
      expires ??= this.opts.defaultExpires;
      if (expires > 0 && expires < this.opts.minExpires) {
        throw new SipError(423, 'Interval Too Brief', [['Min-Expires', String(this.opts.minExpires)]]);
      }
      expires = Math.min(expires, this.opts.maxExpires);
      const instance = c.params.get('+sip.instance') ?? null;
      const regIdText = c.params.get('reg-id');
      const regId = regIdText && isDigits(regIdText) ? Number(regIdText) : null;
      const contact = c.uriText;
      // RFC 5626 §6: the same instance and reg-id replace the old flow's binding
      let existing: Binding | undefined;
      for (const b of current) {
        if (b.contact === contact || (instance !== null && b.instance === instance && b.regId === regId)) {
          existing = b;
          break;
        }
      }
      if (existing && existing.callId === callId && cseq <= existing.cseq) throw new SipError(500, 'Stale CSeq');
      if (expires === 0) {
        if (existing) {
          current = current.filter((b) => b !== existing);
          removed.push(existing);
        }
        continue;
      }
      const q = c.params.get('q');
      // A binding lives for hours: its strings are copied out of the REGISTER's text (or
      // taken from the binding it refreshes), so that it does not keep the whole message.
      const userAgent = userAgentText === null ? null : existing?.userAgent === userAgentText ? existing.userAgent : detach(userAgentText);
      const binding: Binding = {
        aor: existing?.aor ?? detach(user),
        contact: existing?.contact === contact ? existing.contact : detach(contact),
        params: c.params.size === 0 ? '' : detach(formatParamsExcept(c.params, 'expires', 'q')),
        instance: instance === null ? null : detach(instance),
        regId,
        q: q !== undefined && q !== null && Number.isFinite(Number(q)) ? Number(q) : null,
        expires: p.now + expires * 1000,
        callId: existing?.callId === callId ? existing.callId : detach(callId),
        cseq,
        flags,
        received,
        nat: source ? behindNat(c.uri, req.via(), source) : false,
        userAgent,
        registeredAt: existing?.registeredAt ?? p.now,
      };
      if (existing) {
        current = current.map((b) => (b === existing ? binding : b));
        if (existing.contact !== contact || existing.received.flowId !== received.flowId) {
          removed.push(existing);
          added.push(binding);
        } else {
          refreshed.push(binding);
        }
      } else {
        current = [...current, binding];
        added.push(binding);
      }
    }
    const evicted: Binding[] = [];
    if (current.length > this.opts.maxContacts) {
      // over the limit: the bindings this REGISTER did not name go, least recently
      // registered (soonest to expire) first, as Asterisk's remove_existing does
      const named = new Set([...added, ...refreshed]);
      const others = current.filter((b) => !named.has(b)).sort((a, b) => a.expires - b.expires || a.registeredAt - b.registeredAt);
      const gone = new Set(others.slice(0, current.length - this.opts.maxContacts));
      current = current.filter((b) => !gone.has(b));
      evicted.push(...gone);
    }
    return { current, write: contacts.length > 0, removed, added, refreshed, wildcard: false, evicted };
  }

  /** The events of a REGISTER, once the store has its result. */
  private announce(plan: Plan): void {
    if (plan.wildcard) {
      for (const b of plan.removed) this.emit('unregistered', b, 'unregister');
      return;
    }
    const added = plan.added;
    for (const b of plan.removed) this.emit('unregistered', b, added.some((a) => a.instance !== null && a.instance === b.instance) ? 'replaced' : 'unregister');
    for (const b of plan.evicted) this.emit('unregistered', b, 'replaced');
    for (const b of added) this.emit('registered', b);
    for (const b of plan.refreshed) this.emit('refreshed', b);
  }

  /** §10.3 step 8: 200 OK listing every current binding with its remaining time. */
  private ok(req: SipRequest, bindings: Binding[], now: number): SipResponse {
    const headers: [string, string][] = bindings.map((b) => [
      'Contact',
      `<${b.contact}>;expires=${Math.max(0, Math.round((b.expires - now) / 1000))}${b.params}`,
    ]);
    headers.push(['Date', httpDate(now)]);
    return makeResponse(req, 200, { headers });
  }

  private parseExpires(v: string | undefined): number | null {
    if (v === undefined) return null;
    const t = v.trim();
    if (!isDigits(t)) throw new SipError(400, 'Bad Expires');
    // RFC 4475 scalar02: absurdly large values are taken as the largest we allow
    return t.length > 10 ? EXPIRES_CAP : Math.min(Number(t), EXPIRES_CAP);
  }
}

/**
 * nathelper's nat_uac_test, for REGISTER: the contact cannot be reached at its own address
 * when it came over a connection (WebSocket: `.invalid` hosts), names no IP address, was
 * sent from another address or port than its Via says (tests 2 and 16), or names a private
 * address while the request came from elsewhere (test 1).
 */
export function behindNat(contact: SipUri, via: Via, source: { transport: string; address: string; port: number }): boolean {
  if (source.transport !== 'udp') return true;
  if (!isIpLiteral(contact.host)) return true;
  if (via.host !== source.address || (via.port ?? 5060) !== source.port) return true;
  return contact.host !== source.address && isPrivateAddress(contact.host);
}

/** The Date of our 200s changes once a second; formatting it (~1 µs) once a second is enough. */
let dateSecond = NaN;
let dateText = '';

function httpDate(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateText = new Date(now).toUTCString();
    dateSecond = second;
  }
  return dateText;
}

/** formatParams of `params` without the `skip` names (what a Contact keeps for the binding). */
function formatParamsExcept(params: Params, skipA: string, skipB: string): string {
  let out = '';
  for (const [k, v] of params) {
    if (k === skipA || k === skipB) continue;
    out += v === null ? `;${k}` : `;${k}=${v}`;
  }
  return out;
}

/** Client-given text for a log line: cut short. */
function clip(s: string): string {
  return s.length <= 64 ? s : s.slice(0, 64) + '…';
}

/** nathelper's "private" for test 1: RFC 1918, RFC 6598 (carrier-grade NAT), link-local, ULA. */
function isPrivateAddress(host: string): boolean {
  return /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|169\.254\.)/.test(host) || /^\[f[cd]/i.test(host);
}
