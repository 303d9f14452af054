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

  async get(aor: string): Promise<Binding[]> {
    return this.getSync(aor);
  }

  getSync(aor: string, now = Date.now()): Binding[] {
    const list = this.table.get(aor);
    if (!list) return [];
    return list.some((b) => b.expires <= now) ? list.filter((b) => b.expires > now) : list;
  }

  async set(aor: string, bindings: Binding[]): Promise<void> {
    this.setSync(aor, bindings);
  }

  setSync(aor: string, bindings: Binding[]): void {
    for (const old of this.table.get(aor) ?? []) this.unindex(old);
    if (bindings.length === 0) this.table.delete(aor);
    else this.table.set(aor, bindings);
    for (const b of bindings) {
      const f = b.received.flowId;
      if (f === null) continue;
      let set = this.flows.get(f);
      if (!set) this.flows.set(f, (set = new Set()));
      set.add(aor);
    }
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

  async sweep(now: number): Promise<Binding[]> {
    const expired: Binding[] = [];
    for (const [aor, list] of this.table) {
      if (!list.some((b) => b.expires <= now)) continue;
      expired.push(...list.filter((b) => b.expires <= now));
      await this.set(aor, list.filter((b) => b.expires > now));
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
