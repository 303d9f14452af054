/**
 * The location table (routr's LocationStore; OpenSIPS usrloc). One interface, three homes:
 * memory, memory with a journal file (the default: survives restarts), and Redis (shared
 * by several gateway nodes).
 */
import type { Binding } from './binding.js';

export interface LocationStore {
  /** the bindings of an AOR that have not expired */
  get(aor: string): Promise<Binding[]>;
  /** replaces the bindings of an AOR; an empty list removes the AOR */
  set(aor: string, bindings: Binding[]): Promise<void>;
  /** removes every binding made over a connection that closed, and returns them */
  removeFlow(flowId: string): Promise<Binding[]>;
  /** all current bindings */
  list(): Promise<Binding[]>;
  /** drops bindings expired at `now`, and returns them */
  sweep(now: number): Promise<Binding[]>;
  close(): Promise<void>;
}

export class MemoryLocationStore implements LocationStore {
  protected readonly table = new Map<string, Binding[]>();
  /** flow id -> AORs with a binding on that connection */
  private readonly flows = new Map<string, Set<string>>();
  /**
   * When to look at an AOR again: second (of its earliest expiry) -> AORs, and AOR -> the
   * second it is listed under. sweep() runs every second; scanning the whole table each time
   * cost more than the REGISTERs themselves at tens of thousands of bindings. An AOR is
   * listed once, under its earliest expiry; refreshed meanwhile, it is found live when that
   * second comes and listed again under its new earliest expiry.
   */
  private readonly due = new Map<number, string[]>();
  private readonly dueAt = new Map<string, number>();

  async get(aor: string): Promise<Binding[]> {
    return this.getSync(aor);
  }

  getSync(aor: string, now = Date.now()): Binding[] {
    const list = this.table.get(aor);
    if (!list) return [];
    return list.some((b) => b.expires <= now) ? list.filter((b) => b.expires > now) : list;
  }

  async set(aor: string, bindings: Binding[]): Promise<void> {
    this.put(aor, bindings);
  }

  /**
   * set(), done at once: the registrar calls this (and getSync) directly on the stores that
   * live in this process, saving two promises per REGISTER. Subclasses that keep more than
   * the table (the journal) override this, not set().
   */
  put(aor: string, bindings: Binding[]): void {
    this.setSync(aor, bindings);
  }

  setSync(aor: string, bindings: Binding[]): void {
    // only bindings over connections are in the flow index (none, when UDP phones alone register)
    if (this.flows.size > 0) {
      const previous = this.table.get(aor);
      if (previous !== undefined) for (const old of previous) this.unindex(old);
    }
    if (bindings.length === 0) this.table.delete(aor);
    else this.table.set(aor, bindings);
    for (const b of bindings) {
      const f = b.received.flowId;
      if (f === null) continue;
      let set = this.flows.get(f);
      if (!set) this.flows.set(f, (set = new Set()));
      set.add(aor);
    }
    this.scheduleSweep(aor, bindings);
  }

  /** Lists the AOR under the second of its earliest expiry, unless it is listed earlier. */
  private scheduleSweep(aor: string, bindings: Binding[]): void {
    if (bindings.length === 0) return;
    let earliest = Infinity;
    for (const b of bindings) if (b.expires < earliest) earliest = b.expires;
    const second = Math.floor(earliest / 1000);
    const listed = this.dueAt.get(aor);
    if (listed !== undefined && listed <= second) return;
    this.dueAt.set(aor, second);
    const list = this.due.get(second);
    if (list === undefined) this.due.set(second, [aor]);
    else list.push(aor);
  }

  private unindex(b: Binding): void {
    const f = b.received.flowId;
    if (f === null) return;
    const set = this.flows.get(f);
    if (!set) return;
    set.delete(b.aor);
    if (set.size === 0) this.flows.delete(f);
  }

  async removeFlow(flowId: string): Promise<Binding[]> {
    const aors = this.flows.get(flowId);
    if (!aors) return [];
    const removed: Binding[] = [];
    for (const aor of [...aors]) {
      const list = this.table.get(aor) ?? [];
      const keep = list.filter((b) => b.received.flowId !== flowId);
      removed.push(...list.filter((b) => b.received.flowId === flowId));
      await this.set(aor, keep);
    }
    this.flows.delete(flowId);
    return removed;
  }

  async list(): Promise<Binding[]> {
    const now = Date.now();
    const out: Binding[] = [];
    for (const aor of this.table.keys()) out.push(...this.getSync(aor, now));
    return out;
  }

  /** Visits the AORs listed under the seconds that have come (earliest first). */
  async sweep(now: number): Promise<Binding[]> {
    const expired: Binding[] = [];
    const nowSecond = Math.floor(now / 1000);
    const seconds: number[] = [];
    for (const second of this.due.keys()) if (second <= nowSecond) seconds.push(second);
    seconds.sort((a, b) => a - b);
    for (const second of seconds) {
      const aors = this.due.get(second)!;
      this.due.delete(second);
      for (const aor of aors) {
        if (this.dueAt.get(aor) !== second) continue; // listed again elsewhere since
        this.dueAt.delete(aor);
        const list = this.table.get(aor);
        if (list === undefined) continue;
        if (!list.some((b) => b.expires <= now)) {
          this.scheduleSweep(aor, list); // refreshed since: look again at its new expiry
          continue;
        }
        expired.push(...list.filter((b) => b.expires <= now));
        await this.set(aor, list.filter((b) => b.expires > now));
      }
    }
    return expired;
  }

  get size(): number {
    let n = 0;
    for (const list of this.table.values()) n += list.length;
    return n;
  }

  async close(): Promise<void> {}
}
