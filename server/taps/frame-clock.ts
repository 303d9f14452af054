/**
 * One 20 ms clock for every tap of a thread: 500 taps cost one timer, not 500.
 *
 * Pacing is from the monotonic clock (process.hrtime) with drift correction: step k is due
 * at `epoch + k x slot`, and the next timeout is computed from that schedule, not from
 * "now + 20", so timer lateness never accumulates. The 20 ms period is cut into `slots`
 * phases (default 4 of 5 ms) and each subscriber joins the least busy one: its frames are
 * due at its own phase, so a thread with hundreds of taps wakes every 5 ms for a quarter of
 * them instead of sending everything in one burst every 20 ms.
 *
 * A late wake-up runs the steps that are due (each subscriber's own, in order), at most
 * `maxCatchUp` frames each (default 5: a short scheduling hiccup loses nothing, and what
 * the server sent plays on time afterwards); after a longer stall the older steps are
 * skipped and counted, so a stall costs a gap, never a burst of stale audio.
 *
 * Subscribers of a phase run in the order they joined; one that throws is reported and the
 * others still run. The timer is unref'd and runs only while someone is subscribed.
 *
 * The schedule sits on a grid of the monotonic clock shifted by `phase` (a fraction of a
 * slot): the clocks of the tap threads, each with its own phase, take turns instead of
 * waking at the same instants and contending for a core they share.
 */

export const FRAME_MS = 20;
const FRAME_NS = BigInt(FRAME_MS * 1_000_000);

export interface Ticking {
  /** one 20 ms step; `tick` counts from 1 since the subscriber joined, `lateMs` is how late it runs */
  tick(tick: number, lateMs: number): void;
  /**
   * Runs after every subscriber's tick() of the same phase: work whose timing matters less
   * (so that what goes out in tick() leaves as close to the step's start as it can).
   */
  afterTick?(tick: number): void;
  /** `frames` steps were skipped after a stall */
  skipped?(frames: number): void;
}

export interface FrameClockStats {
  subscribers: number;
  ticks: number;
  /** frames run late to catch up after a slow wake-up */
  caughtUp: number;
  /** frames skipped after a stall longer than maxCatchUp frames */
  skipped: number;
  /** lateness of the last wake-up, ms */
  lateMs: number;
  /** worst lateness seen, ms */
  maxLateMs: number;
  /** time spent running subscribers in the last wake-up, ms */
  lastTickMs: number;
}

interface Sub {
  slot: number;
  n: number;
}

export class FrameClock {
  private readonly subs = new Map<Ticking, Sub>();
  private readonly bySlot: Set<Ticking>[];
  private readonly slotNs: bigint;
  private timer: NodeJS.Timeout | null = null;
  private epoch = 0n;
  /** the epoch on performance.now()'s scale (the same monotonic clock, cheaper to read) */
  private epochMs = 0;
  /** sub-steps run so far */
  private k = 0;
  private deferred = false;
  private readonly stats: FrameClockStats = { subscribers: 0, ticks: 0, caughtUp: 0, skipped: 0, lateMs: 0, maxLateMs: 0, lastTickMs: 0 };

  constructor(
    /** at most this many frames per subscriber are run at once after a late wake-up (default 5) */
    private readonly maxCatchUp = 5,
    private readonly onError: (e: unknown) => void = () => {},
    /** phases per 20 ms (default 4) */
    readonly slots = 4,
    /** where in a slot this clock's steps fall, 0..1 (thread i of n: i / n) */
    readonly phase = 0,
  ) {
    this.bySlot = Array.from({ length: slots }, () => new Set<Ticking>());
    this.slotNs = FRAME_NS / BigInt(slots);
  }

  add(s: Ticking): void {
    if (this.subs.has(s)) return;
    let slot = 0;
    for (let i = 1; i < this.slots; i++) if (this.bySlot[i]!.size < this.bySlot[slot]!.size) slot = i;
    this.subs.set(s, { slot, n: 0 });
    this.bySlot[slot]!.add(s);
    this.stats.subscribers = this.subs.size;
    if (this.timer === null && !this.deferred) {
      // the latest grid point (slot multiples of the monotonic clock, shifted by the phase) not after now
      const now = process.hrtime.bigint();
      const nowMs = performance.now();
      const shift = BigInt(Math.floor(Math.min(Math.max(this.phase, 0), 1) * Number(this.slotNs))) % this.slotNs;
      let epoch = now - ((now - shift) % this.slotNs);
      if (epoch > now) epoch -= this.slotNs;
      this.epoch = epoch;
      this.epochMs = nowMs - Number(now - epoch) / 1e6;
      this.k = 0;
      this.schedule();
    }
  }

  delete(s: Ticking): void {
    const sub = this.subs.get(s);
    if (!sub) return;
    this.subs.delete(s);
    this.bySlot[sub.slot]!.delete(s);
    this.stats.subscribers = this.subs.size;
    if (this.subs.size === 0 && this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  get size(): number {
    return this.subs.size;
  }

  snapshot(): FrameClockStats {
    return { ...this.stats };
  }

  private schedule(): void {
    const due = this.epoch + BigInt(this.k + 1) * this.slotNs;
    const waitNs = due - process.hrtime.bigint();
    // setTimeout rounds up to whole ms and never fires early: aim at the due time, floored
    const ms = waitNs > 0n ? Math.floor(Number(waitNs) / 1e6) : 0;
    this.timer = setTimeout(() => this.wake(), ms);
    this.timer.unref();
  }

  private wake(): void {
    this.timer = null;
    if (this.subs.size === 0) {
      this.deferred = false;
      return;
    }
    const now = process.hrtime.bigint();
    const elapsed = now - this.epoch;
    const due = Number(elapsed / this.slotNs);
    if (due <= this.k) {
      // woke a little early (rounding): wait for the due time
      this.schedule();
      return;
    }
    // Late by a whole frame or more (the loop was blocked, or the thread not scheduled): let
    // the I/O that piled up meanwhile (RTP) be read first, so the frames we owe find it in
    // the FIFOs instead of playing silence.
    if (due - this.k > this.slots && !this.deferred) {
      this.deferred = true;
      setImmediate(() => this.wake());
      return;
    }
    this.deferred = false;
    // a stall: older steps are skipped (each subscriber runs at most maxCatchUp frames)
    const keep = this.maxCatchUp * this.slots;
    if (due - this.k > keep) {
      const from = this.k + 1;
      const to = due - keep;
      for (let k = from; k <= to; k++) {
        for (const s of this.bySlot[k % this.slots]!) {
          this.stats.skipped++;
          try {
            s.skipped?.(1);
          } catch (e) {
            this.onError(e);
          }
        }
      }
      this.k = to;
    }
    const started = performance.now();
    const nowMs = Number(elapsed) / 1e6;
    for (; this.k < due; ) {
      this.k++;
      const slot = this.k % this.slots;
      const lateMs = nowMs - (this.k * Number(this.slotNs)) / 1e6;
      if (due - this.k >= this.slots) this.stats.caughtUp += this.bySlot[slot]!.size;
      this.stats.ticks++;
      this.stats.lateMs = lateMs;
      if (lateMs > this.stats.maxLateMs) this.stats.maxLateMs = lateMs;
      const group = this.bySlot[slot]!;
      if (group.size === 0) continue;
      const dueMs = this.epochMs + (this.k * Number(this.slotNs)) / 1e6;
      for (const s of group) {
        const sub = this.subs.get(s)!;
        try {
          // each subscriber's own lateness: when its frame actually goes, not the group's start
          s.tick(++sub.n, performance.now() - dueMs);
        } catch (e) {
          this.onError(e);
        }
      }
      for (const s of group) {
        if (!s.afterTick) continue;
        try {
          s.afterTick(this.subs.get(s)?.n ?? 0);
        } catch (e) {
          this.onError(e);
        }
      }
    }
    this.stats.lastTickMs = performance.now() - started;
    if (this.subs.size > 0 && this.timer === null) this.schedule();
  }
}
