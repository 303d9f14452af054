/**
 * The embedded default store: the table in memory, every change appended to a journal file
 * (one JSON line per AOR update, written in batches once per event-loop turn), replayed at
 * start-up and compacted (rewritten as one line per live AOR) at start-up and whenever it
 * has grown past `compactBytes` and past twice the live table: on disk it stays within
 * about max(compactBytes, 2 x the table) plus one batch. A restart loses no phone's registration; bindings
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

export interface FileStoreOptions {
  /** compact once the journal is over this many bytes (and over twice the live table); default 1 MiB */
  compactBytes?: number;
}

export class FileLocationStore extends MemoryLocationStore {
  private stream: fs.WriteStream | null = null;
  /**
   * Lines not yet written, one per AOR: each line is the AOR's whole state, so a newer one
   * replaces an older one still waiting (a burst, or the time a compaction takes, costs one
   * line per AOR, not one per change).
   */
  private pending = new Map<string, string>();
  private pendingBytes = 0;
  private flushScheduled = false;
  /** bytes in the journal file (written, or queued on the stream) */
  private journalBytes = 0;
  /** bytes of the last snapshot: the live table's size then */
  private snapshotBytes = 0;
  private compaction: Promise<void> | null = null;
  private closed = false;
  private readonly compactBytes: number;

  private constructor(private readonly file: string, opts: FileStoreOptions) {
    super();
    this.compactBytes = opts.compactBytes ?? 1024 * 1024;
  }

  static async open(file: string, opts: FileStoreOptions = {}, now = Date.now()): Promise<FileLocationStore> {
    const store = new FileLocationStore(file, opts);
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
    const line = JSON.stringify({ a: aor, b: bindings } satisfies JournalLine) + '\n';
    const older = this.pending.get(aor);
    if (older !== undefined) {
      this.pendingBytes -= Buffer.byteLength(older);
      this.pending.delete(aor);
    }
    this.pending.set(aor, line);
    this.pendingBytes += Buffer.byteLength(line);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.compaction || !this.stream || this.pending.size === 0) return;
    this.stream.write([...this.pending.values()].join(''));
    this.journalBytes += this.pendingBytes;
    this.pending = new Map();
    this.pendingBytes = 0;
    if (!this.closed && this.journalBytes > this.compactBytes && this.journalBytes > 2 * this.snapshotBytes) void this.compact();
  }

  /** Bytes in the journal file now (for tests and metrics). */
  get journalSize(): number {
    return this.journalBytes;
  }

  /** Rewrites the journal as one line per live AOR (atomically: write, then rename). */
  private compact(): Promise<void> {
    this.compaction ??= this.rewrite().finally(() => {
      this.compaction = null;
      this.flush();
    });
    return this.compaction;
  }

  private async rewrite(): Promise<void> {
    const now = Date.now();
    const lines: string[] = [];
    for (const aor of this.table.keys()) {
      const b = this.getSync(aor, now);
      if (b.length === 0) continue;
      lines.push(JSON.stringify({ a: aor, b } satisfies JournalLine) + '\n');
    }
    const snapshot = lines.join('');
    // Changes made while we write wait in `pending`: they follow the snapshot (those queued
    // before are in the snapshot already).
    this.pending = new Map();
    this.pendingBytes = 0;
    const old = this.stream;
    this.stream = null;
    if (old) await new Promise<void>((r) => old.end(r));
    const tmp = this.file + '.tmp';
    await fsp.writeFile(tmp, snapshot);
    await fsp.rename(tmp, this.file);
    this.snapshotBytes = this.journalBytes = Buffer.byteLength(snapshot);
    if (!this.closed) this.stream = fs.createWriteStream(this.file, { flags: 'a' });
  }

  override async close(): Promise<void> {
    // a compaction under way finishes first (its snapshot, then what waited, is the journal)
    if (this.compaction) await this.compaction;
    this.closed = true;
    this.flush();
    const s = this.stream;
    this.stream = null;
    if (s) await new Promise<void>((r) => s.end(r));
  }
}
