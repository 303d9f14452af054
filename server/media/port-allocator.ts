/**
 * RTP ports of the configured range, handed out in even/odd pairs (RTP on the even port,
 * RTCP on the next, RFC 3550 §11) and round-robin, so a port just freed is not reused at
 * once (late packets of the last call would land in the next one).
 */
export class PortAllocator {
  private readonly used = new Set<number>();
  private next: number;

  constructor(private readonly min: number, private readonly max: number) {
    this.next = min + (min % 2);
  }

  get capacity(): number {
    return Math.floor((this.max - this.min + 1) / 2);
  }

  get inUse(): number {
    return this.used.size;
  }

  /** An even port whose odd neighbour is free too; null when the range is exhausted. */
  allocate(): number | null {
    const first = this.min + (this.min % 2);
    const span = this.max - first;
    for (let tries = 0; tries <= span / 2; tries++) {
      const port = this.next;
      this.next += 2;
      if (this.next + 1 > this.max) this.next = first;
      if (!this.used.has(port) && port + 1 <= this.max) {
        this.used.add(port);
        return port;
      }
    }
    return null;
  }

  release(port: number): void {
    this.used.delete(port);
  }
}
