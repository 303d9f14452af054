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

export class DialogSet {
  /** key -> expiry (ms on the caller's clock); Map order is use order (oldest first) */
  private readonly entries = new Map<string, number>();
  /** dialogs dropped for room since start: a figure for metrics and the log */
  evicted = 0;

  constructor(private readonly opts: DialogSetOptions) {}

  /** Records (or refreshes) a dialog until `expires`; keeps the later expiry of the two. */
  add(callId: string, tagA: string, tagB: string, expires: number): void {
    const k = key(callId, tagA, tagB);
    const old = this.entries.get(k);
    this.entries.delete(k);
    this.entries.set(k, Math.max(old ?? 0, expires));
    while (this.entries.size > this.opts.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evicted++;
    }
  }

  /** Whether the dialog is known and not expired at `now`; an expired one is forgotten. */
  has(callId: string, tagA: string | null, tagB: string | null, now: number): boolean {
    if (!tagA || !tagB) return false;
    const k = key(callId, tagA, tagB);
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
