/**
 * Flood and brute-force protection per source address, as Kamailio's pike (message rate) and
 * an ipban/fail2ban (failed authentications) do it: a source that sends more than
 * `floodMaxMessages` SIP messages in `floodWindow` seconds, or fails authentication
 * `maxAuthFailures` times in `authFailureWindow` seconds, is banned for `banTime` seconds:
 * everything it sends is dropped without a reply (a reply would tell a scanner it found a SIP
 * server, and costs us what the flood is meant to cost). Trusted peers are never counted.
 *
 * Pure logic on a clock: no sockets. The transports ask `admit()` before parsing a message;
 * the registrar and the proxy call `authFailed()`. Memory is bounded: counters expire after
 * their windows, and at most `maxTrackedSources` counters and as many bans are kept (the
 * oldest go first).
 *
 * Log lines (pino, component "security"), one per event, for operators and fail2ban:
 *   warn "auth failed"   {source, port, transport, user, reason}
 *   warn "source banned" {source, reason: "flood"|"auth-failures", count, window, banSeconds}
 *   info "ban ended"     {source, reason, dropped, bannedSeconds}
 */
import { EventEmitter } from 'node:events';
import { CidrSet } from '../net/address-class.js';

export interface FloodGuardOptions {
  /** seconds of the message count */
  floodWindow: number;
  /** messages per floodWindow before a ban */
  floodMaxMessages: number;
  /** seconds over which failed authentications are counted */
  authFailureWindow: number;
  /** failed authentications per authFailureWindow before a ban */
  maxAuthFailures: number;
  /** seconds a ban lasts */
  banTime: number;
  /** most counters kept at once (and most bans) */
  maxTrackedSources: number;
  /** CIDR ranges never counted nor banned (sip.trustedPeers) */
  trustedPeers: readonly string[];
}

/** The part of a pino logger the guard writes to. */
export interface GuardLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export type BanReason = 'flood' | 'auth-failures';

/** Where a failed authentication came from (a Source does). */
export interface AuthSource {
  address: string;
  port?: number;
  transport?: string;
}

export interface FloodGuardEvents {
  banned: [{ address: string; reason: BanReason; until: number }];
  unbanned: [{ address: string; reason: BanReason; dropped: number }];
}

interface Counter {
  windowStart: number;
  messages: number;
  authStart: number;
  failures: number;
}

interface Ban {
  since: number;
  until: number;
  reason: BanReason;
  dropped: number;
}

export class FloodGuard extends EventEmitter<FloodGuardEvents> {
  private readonly counters = new Map<string, Counter>();
  private readonly bans = new Map<string, Ban>();
  private readonly trusted: CidrSet;
  /** addresses already looked up in `trusted`, so the CIDR check is not paid per message */
  private readonly trustedCache = new Map<string, boolean>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: FloodGuardOptions,
    private readonly log: GuardLog,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.trusted = new CidrSet(opts.trustedPeers);
  }

  /** Sweeps expired counters and ended bans once a second (unref'd: it never holds the process). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * One message (datagram, WebSocket frame, keep-alive) from `address`: true to process it,
   * false to drop it silently. Called before parsing, so a flood costs a Map lookup each.
   */
  admit(address: string): boolean {
    if (this.bans.size > 0 && this.banned(address, true)) return false;
    if (this.isTrusted(address)) return true;
    const now = this.now();
    const c = this.counter(address, now);
    if (now - c.windowStart >= this.opts.floodWindow * 1000) {
      c.windowStart = now;
      c.messages = 0;
    }
    if (++c.messages > this.opts.floodMaxMessages) {
      this.ban(address, 'flood', c.messages, this.opts.floodWindow);
      return false;
    }
    return true;
  }

  /**
   * A failed authentication (wrong password, unknown user, user not matching From/To): logs
   * the fail2ban line and counts it against the source.
   */
  authFailed(source: AuthSource, user: string | null, reason = 'wrong credentials'): void {
    this.log.warn({ source: source.address, port: source.port, transport: source.transport, user, reason }, 'auth failed');
    if (this.isTrusted(source.address) || this.bans.has(source.address)) return;
    const now = this.now();
    const c = this.counter(source.address, now);
    if (now - c.authStart >= this.opts.authFailureWindow * 1000) {
      c.authStart = now;
      c.failures = 0;
    }
    if (++c.failures >= this.opts.maxAuthFailures) this.ban(source.address, 'auth-failures', c.failures, this.opts.authFailureWindow);
  }

  /** Whether `address` is banned now (without counting a dropped message). */
  isBanned(address: string): boolean {
    return this.banned(address, false);
  }

  /** Forgets counters whose windows are over and ends bans whose time is up. */
  sweep(): void {
    const now = this.now();
    for (const [address, b] of this.bans) if (b.until <= now) this.end(address, b);
    const flood = this.opts.floodWindow * 1000;
    const auth = this.opts.authFailureWindow * 1000;
    for (const [address, c] of this.counters) {
      if (now - c.windowStart >= flood && (c.failures === 0 || now - c.authStart >= auth)) this.counters.delete(address);
    }
  }

  get stats(): { tracked: number; banned: number } {
    return { tracked: this.counters.size, banned: this.bans.size };
  }

  /** Current bans, for the API and tests. */
  listBans(): { address: string; reason: BanReason; until: number; dropped: number }[] {
    return [...this.bans].map(([address, b]) => ({ address, reason: b.reason, until: b.until, dropped: b.dropped }));
  }

  private banned(address: string, count: boolean): boolean {
    const b = this.bans.get(address);
    if (!b) return false;
    if (b.until <= this.now()) {
      this.end(address, b);
      return false;
    }
    if (count) b.dropped++;
    return true;
  }

  /** Whether `address` is one of sip.trustedPeers (never counted, never banned). */
  isTrusted(address: string): boolean {
    if (this.trusted.size === 0) return false;
    let t = this.trustedCache.get(address);
    if (t === undefined) {
      t = this.trusted.has(address);
      if (this.trustedCache.size >= this.opts.maxTrackedSources) this.trustedCache.clear();
      this.trustedCache.set(address, t);
    }
    return t;
  }

  private counter(address: string, now: number): Counter {
    let c = this.counters.get(address);
    if (!c) {
      // at the cap the oldest counter goes: Maps iterate in insertion order
      if (this.counters.size >= this.opts.maxTrackedSources) this.counters.delete(this.counters.keys().next().value!);
      c = { windowStart: now, messages: 0, authStart: now, failures: 0 };
      this.counters.set(address, c);
    }
    return c;
  }

  private ban(address: string, reason: BanReason, count: number, window: number): void {
    const now = this.now();
    this.counters.delete(address);
    if (this.bans.size >= this.opts.maxTrackedSources) {
      const [oldest, b] = this.bans.entries().next().value!;
      this.end(oldest, b);
    }
    const until = now + this.opts.banTime * 1000;
    this.bans.set(address, { since: now, until, reason, dropped: 0 });
    this.log.warn({ source: address, reason, count, window, banSeconds: this.opts.banTime }, 'source banned');
    this.emit('banned', { address, reason, until });
  }

  private end(address: string, b: Ban): void {
    this.bans.delete(address);
    this.log.info({ source: address, reason: b.reason, dropped: b.dropped, bannedSeconds: Math.round((this.now() - b.since) / 1000) }, 'ban ended');
    this.emit('unbanned', { address, reason: b.reason, dropped: b.dropped });
  }
}
