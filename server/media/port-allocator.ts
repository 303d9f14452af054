/**
 * RTP ports of the configured range, handed out in even/odd pairs (RTP on the even port,
 * RTCP on the next, RFC 3550 §11), drawn at random: the next call's port cannot be guessed
 * from this one's (an outsider would aim stray RTP at it), and a port just freed is seldom
 * reused at once (late packets of the last call would land in the next one).
 */
import { randomInt } from 'node:crypto';

export class PortAllocator {
  private readonly used = new Set<number>();
  private readonly first: number;
  /** even ports in the range that have an odd neighbour in it */
  private readonly pairs: number;

  constructor(min: number, max: number) {
    this.first = min + (min % 2);
    this.pairs = Math.max(0, Math.floor((max - this.first + 1) / 2));
  }

  get capacity(): number {
    return this.pairs;
  }

  get inUse(): number {
    return this.used.size;
  }

  /** A random even port whose odd neighbour is free too; null when the range is exhausted. */
  allocate(): number | null {
    if (this.used.size >= this.pairs) return null;
    // random draws; when the range is nearly full, a walk from a random start finds the rest
    for (let tries = 0; tries < 32; tries++) {
      const port = this.first + 2 * randomInt(this.pairs);
      if (!this.used.has(port)) return this.take(port);
    }
    const start = randomInt(this.pairs);
    for (let i = 0; i < this.pairs; i++) {
      const port = this.first + 2 * ((start + i) % this.pairs);
      if (!this.used.has(port)) return this.take(port);
    }
    return null;
  }

  private take(port: number): number {
    this.used.add(port);
    return port;
  }

  release(port: number): void {
    this.used.delete(port);
  }
}
