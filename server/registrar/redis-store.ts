/**
 * Location table in Redis, for several gateway nodes behind one address: every node sees
 * every registration. One key per AOR holding its bindings as JSON, expiring with the last
 * of them. A WebSocket binding is reachable only through the node holding its connection;
 * flows are node-local, so each node tracks (in memory) the AORs bound over its own flows.
 */
import { Redis } from 'ioredis';
import type { Binding } from './binding.js';
import type { LocationStore } from './location-store.js';

export class RedisLocationStore implements LocationStore {
  private readonly flows = new Map<string, Set<string>>();

  private constructor(private readonly redis: Redis, private readonly prefix: string) {}

  static async connect(url: string, prefix: string): Promise<RedisLocationStore> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: false });
    await redis.connect();
    return new RedisLocationStore(redis, prefix);
  }

  async get(aor: string): Promise<Binding[]> {
    const raw = await this.redis.get(this.prefix + aor);
    if (!raw) return [];
    const now = Date.now();
    return (JSON.parse(raw) as Binding[]).filter((b) => b.expires > now);
  }

  async set(aor: string, bindings: Binding[]): Promise<void> {
    const key = this.prefix + aor;
    for (const set of this.flows.values()) set.delete(aor);
    if (bindings.length === 0) {
      await this.redis.del(key);
      return;
    }
    const last = Math.max(...bindings.map((b) => b.expires));
    await this.redis.set(key, JSON.stringify(bindings), 'PX', Math.max(1, last - Date.now()));
    for (const b of bindings) {
      const f = b.received.flowId;
      if (f === null) continue;
      let set = this.flows.get(f);
      if (!set) this.flows.set(f, (set = new Set()));
      set.add(aor);
    }
  }

  async removeFlow(flowId: string): Promise<Binding[]> {
    const aors = this.flows.get(flowId);
    this.flows.delete(flowId);
    const removed: Binding[] = [];
    for (const aor of aors ?? []) {
      const list = await this.get(aor);
      removed.push(...list.filter((b) => b.received.flowId === flowId));
      await this.set(aor, list.filter((b) => b.received.flowId !== flowId));
    }
    return removed;
  }

  async list(): Promise<Binding[]> {
    const out: Binding[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.prefix + '*', 'COUNT', 500);
      cursor = next;
      for (const key of keys) out.push(...(await this.get(key.slice(this.prefix.length))));
    } while (cursor !== '0');
    return out;
  }

  /** Redis expires whole AORs by itself; single expired bindings are filtered when read. */
  async sweep(_now: number): Promise<Binding[]> {
    return [];
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
