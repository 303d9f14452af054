/**
 * A small typed event emitter (events declared as a map, as mediasoup does): a listener that
 * throws is reported on the console and does not stop the others.
 */
export class Emitter<Events extends Record<string, unknown[]>> {
  private readonly listeners = new Map<keyof Events, Set<(...args: unknown[]) => void>>();

  on<K extends keyof Events>(event: K, fn: (...args: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const f = fn as unknown as (...args: unknown[]) => void;
    set.add(f);
    return () => set.delete(f);
  }

  protected emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`softphone: a "${String(event)}" listener failed`, err);
      }
    }
  }
}
