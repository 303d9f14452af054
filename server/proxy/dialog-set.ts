/**
 * The dialogs established through this proxy, by identity only (Call-ID and the two tags,
 * RFC 3261 §12: "A dialog is identified ... by a Call-ID, a local tag and a remote tag").
 * An in-dialog request is relayed only when its dialog is here: a To tag and a Route naming
 * us are not enough, or anyone could use the gateway as an open relay by making up a dialog.
 *
 * Entries expire (early dialogs when their INVITE could no longer ring, confirmed ones after
 * a long idle time unless an in-dialog request refreshes them) and the set has a hard cap: the
 * least recently used dialog makes room for a new one. Pure: the clock is passed in.
 */

export interface DialogSetOptions {
  /** most dialogs kept; the least recently used one is dropped for a new one past this */
  max: number;
}

/** Order-insensitive: requests come from either side, each writing its own tag in From. */
function key(callId: string, tagA: string, tagB: string): string {
  return tagA < tagB ? `${tagA}\u0000${tagB}\u0000${callId}` : `${tagB}\u0000${tagA}\u0000${callId}`;
}

/**
 * A subscription's dialog is known by its Call-ID and the subscriber's tag alone: the
 * notifier's tag may first appear on a NOTIFY that overtakes the SUBSCRIBE's 2xx (RFC 6665
 * §4.1.2.4), and one SUBSCRIBE may fork into several subscriptions.
 */
function halfKey(callId: string, tag: string): string {
  return `${tag}\u0000\u0000${callId}`;
}

export class DialogSet {
  /** key -> expiry (ms on the caller's clock); Map order is use order (oldest first) */
  private readonly entries = new Map<string, number>();
  /** dialogs dropped for room since start: a figure for metrics and the log */
  evicted = 0;

  constructor(private readonly opts: DialogSetOptions) {}

  /** Records (or refreshes) a dialog until `expires`; keeps the later expiry of the two. */
  add(callId: string, tagA: string, tagB: string, expires: number): void {
    this.put(key(callId, tagA, tagB), expires);
  }

  private put(k: string, expires: number): void {
    const old = this.entries.get(k);
    this.entries.delete(k);
    this.entries.set(k, Math.max(old ?? 0, expires));
    while (this.entries.size > this.opts.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evicted++;
    }
  }

  /** Records (or refreshes) a subscription dialog by the subscriber's tag (see halfKey). */
  addHalf(callId: string, subscriberTag: string, expires: number): void {
    this.put(halfKey(callId, subscriberTag), expires);
  }

  deleteHalf(callId: string, subscriberTag: string): void {
    this.entries.delete(halfKey(callId, subscriberTag));
  }

  /**
   * Whether the dialog is known and not expired at `now` (by both tags, or as a subscription
   * by either tag); an expired one is forgotten.
   */
  has(callId: string, tagA: string | null, tagB: string | null, now: number): boolean {
    if (!tagA || !tagB) return false;
    return this.live(key(callId, tagA, tagB), now) || this.live(halfKey(callId, tagA), now) || this.live(halfKey(callId, tagB), now);
  }

  private live(k: string, now: number): boolean {
    const expires = this.entries.get(k);
    if (expires === undefined) return false;
    if (expires <= now) {
      this.entries.delete(k);
      return false;
    }
    // most recently used last, so eviction takes idle dialogs first
    this.entries.delete(k);
    this.entries.set(k, expires);
    return true;
  }

  delete(callId: string, tagA: string | null, tagB: string | null): void {
    if (tagA && tagB) this.entries.delete(key(callId, tagA, tagB));
  }

  /** Drops expired entries (called from a periodic sweep); returns how many went. */
  sweep(now: number): number {
    let n = 0;
    for (const [k, expires] of this.entries) {
      if (expires <= now) {
        this.entries.delete(k);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.entries.size;
  }
}
