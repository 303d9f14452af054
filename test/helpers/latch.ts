/** Small promise tools the test peers (JsSIP UA, werift peer, RTP phone, baresip) share. */

/** A promise settled from outside, once; a rejection nobody awaits is not "unhandled". */
export class Latch<T> {
  readonly promise: Promise<T>;
  settled = false;
  /** what it resolved with, once it has */
  value: T | undefined;
  private res!: (v: T) => void;
  private rej!: (e: unknown) => void;

  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.res = res;
      this.rej = rej;
    });
    this.promise.catch(() => undefined);
  }

  resolve(v: T): void {
    if (this.settled) return;
    this.settled = true;
    this.value = v;
    this.res(v);
  }

  reject(e: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.rej(e);
  }
}

/** `p`, or the error `timeout(message)` after `ms`. The timer never outlives the wait. */
export function within<T>(p: Promise<T>, ms: number, what: string, timeout: (message: string) => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeout(`${what}: nothing after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
