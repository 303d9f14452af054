/**
 * The embedded default store: the table in memory, every change appended to a journal file
 * (one JSON line per AOR update, written in batches once per event-loop turn), replayed at
 * start-up and compacted when it grows. A restart loses no phone's registration; bindings
 * tied to a WebSocket connection are dropped on replay, since their connection is gone.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { isFlowBound, type Binding } from './binding.js';
import { MemoryLocationStore } from './location-store.js';

interface JournalLine {
  a: string;
  b: Binding[];
}

export class FileLocationStore extends MemoryLocationStore {
  private stream: fs.WriteStream | null = null;
  private pending: string[] = [];
  private flushScheduled = false;
  private lines = 0;
  private compacting = false;

  private constructor(private readonly file: string) {
    super();
  }

  static async open(file: string, now = Date.now()): Promise<FileLocationStore> {
    const store = new FileLocationStore(file);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    let text = '';
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      let entry: JournalLine;
      try {
        entry = JSON.parse(line) as JournalLine;
      } catch {
        continue; // a line cut short by a crash: the ones before it still count
      }
      if (typeof entry.a !== 'string' || !Array.isArray(entry.b)) continue;
      store.setSync(entry.a, entry.b.filter((b) => b.expires > now && !isFlowBound(b)));
    }
    await store.compact();
    return store;
  }

  override put(aor: string, bindings: Binding[]): void {
    this.setSync(aor, bindings);
    this.pending.push(JSON.stringify({ a: aor, b: bindings } satisfies JournalLine) + '\n');
    this.lines++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.compacting || !this.stream || this.pending.length === 0) return;
    this.stream.write(this.pending.join(''));
    this.pending = [];
    if (this.lines > 10_000 && this.lines > 4 * this.size) void this.compact();
  }

  /** Rewrites the journal as one line per live AOR (atomically: write, then rename). */
  private async compact(): Promise<void> {
    if (this.compacting) return;
    this.compacting = true;
    try {
      const now = Date.now();
      let snapshot = '';
      let count = 0;
      for (const aor of this.table.keys()) {
        const b = this.getSync(aor, now);
        if (b.length === 0) continue;
        snapshot += JSON.stringify({ a: aor, b } satisfies JournalLine) + '\n';
        count++;
      }
      // Changes made while we write wait in `pending`: they follow the snapshot.
      this.pending = [];
      const old = this.stream;
      this.stream = null;
      if (old) await new Promise<void>((r) => old.end(r));
      const tmp = this.file + '.tmp';
      await fsp.writeFile(tmp, snapshot);
      await fsp.rename(tmp, this.file);
      this.lines = count;
      this.stream = fs.createWriteStream(this.file, { flags: 'a' });
    } finally {
      this.compacting = false;
    }
    this.flush();
  }

  override async close(): Promise<void> {
    this.flush();
    const s = this.stream;
    this.stream = null;
    if (s) await new Promise<void>((r) => s.end(r));
  }
}
