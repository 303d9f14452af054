/**
 * One 20 ms clock for every tap of the process: 500 taps cost one timer, not 500.
 *
 * Each tick is due at `epoch + n x 20 ms` on the monotonic clock (process.hrtime), and the
 * next timeout is computed from that schedule, not from "now + 20": timer lateness never
 * accumulates (drift-corrected). A late wake-up runs the ticks it missed, up to
 * `maxCatchUp`; after a longer stall (a blocked event loop) the missed ticks are skipped
 * and counted, so a stall costs a gap, not a burst of stale audio.
 *
 * Subscribers run in the order they joined; one that throws is reported and the others
 * still run. The timer is unref'd and runs only while someone is subscribed.
 */

export const FRAME_MS = 20;
const FRAME_NS = BigInt(FRAME_MS * 1_000_000);

export interface Ticking {
  /** one 20 ms step; `tick` counts from 1 since the clock (re)started, `lateMs` is how late it runs */
  tick(tick: number, lateMs: number): void;
  /**
   * Runs after every subscriber's tick() of the same step: work whose timing matters less
   * (so that what goes out in tick() leaves as close to the step's start as it can).
   */
  afterTick?(tick: number): void;
}

export interface FrameClockStats {
  subscribers: number;
  ticks: number;
  /** ticks run late to catch up after a slow wake-up */
  caughtUp: number;
  /** ticks skipped after a stall longer than maxCatchUp frames */
  skipped: number;
  /** lateness of the last wake-up, ms */
  lateMs: number;
  /** worst lateness seen, ms */
  maxLateMs: number;
  /** time spent running subscribers in the last tick, ms */
  lastTickMs: number;
}

export class FrameClock {
  private readonly subs = new Set<Ticking>();
  private timer: NodeJS.Timeout | null = null;
  private epoch = 0n;
  private n = 0;
  private deferred = false;
  private readonly stats: FrameClockStats = { subscribers: 0, ticks: 0, caughtUp: 0, skipped: 0, lateMs: 0, maxLateMs: 0, lastTickMs: 0 };

  constructor(
    /** at most this many missed ticks are run at once after a late wake-up (default 5) */
    private readonly maxCatchUp = 5,
    private readonly onError: (e: unknown) => void = () => {},
  ) {}

  add(s: Ticking): void {
    this.subs.add(s);
    this.stats.subscribers = this.subs.size;
    if (this.timer === null && !this.deferred) {
      this.epoch = process.hrtime.bigint();
      this.n = 0;
      this.schedule();
    }
  }

  delete(s: Ticking): void {
    this.subs.delete(s);
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
    const due = this.epoch + BigInt(this.n + 1) * FRAME_NS;
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
    const due = Number(elapsed / FRAME_NS);
    if (due <= this.n) {
      // woke a little early (rounding): wait for the due time
      this.schedule();
      return;
    }
    // Late by a frame or more (the loop was blocked, or the process not scheduled): let the
    // I/O that piled up meanwhile (RTP from the media layer) be read first, so the ticks we
    // owe find it in the FIFOs instead of playing silence.
    if (due - this.n > 1 && !this.deferred) {
      this.deferred = true;
      setImmediate(() => this.wake());
      return;
    }
    this.deferred = false;
    let missed = due - this.n;
    if (missed > this.maxCatchUp) {
      this.stats.skipped += missed - 1;
      this.n = due - 1;
      missed = 1;
    } else if (missed > 1) {
      this.stats.caughtUp += missed - 1;
    }
    const started = performance.now();
    for (; this.n < due; ) {
      this.n++;
      const lateMs = Number(elapsed - BigInt(this.n) * FRAME_NS) / 1e6;
      this.stats.ticks++;
      this.stats.lateMs = lateMs;
      if (lateMs > this.stats.maxLateMs) this.stats.maxLateMs = lateMs;
      for (const s of this.subs) {
        try {
          s.tick(this.n, lateMs);
        } catch (e) {
          this.onError(e);
        }
      }
      for (const s of this.subs) {
        if (!s.afterTick) continue;
        try {
          s.afterTick(this.n);
        } catch (e) {
          this.onError(e);
        }
      }
    }
    this.stats.lastTickMs = performance.now() - started;
    if (this.subs.size > 0 && this.timer === null) this.schedule();
  }
}
