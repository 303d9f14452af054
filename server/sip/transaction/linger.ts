/**
 * Remembers keys for at least `ttl` ms and at most twice that, with no timer per entry: two
 * generations of maps, the older one dropped every `ttl`. Completed transactions only need
 * to absorb retransmissions for a while (Timer J, RFC 3261 §17.2.2); at tens of thousands of
 * REGISTERs a second, one setTimeout each would be most of the cost.
 */
export class Linger<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();
  private readonly timer: NodeJS.Timeout;

  constructor(ttl: number) {
    this.timer = setInterval(() => this.rotate(), ttl);
    this.timer.unref();
  }

  set(key: string, value: V): void {
    this.current.set(key, value);
  }

  get(key: string): V | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  close(): void {
    clearInterval(this.timer);
    this.current.clear();
    this.previous.clear();
  }
}
