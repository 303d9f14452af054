/** The call history, newest first, kept in localStorage (at most `MAX_ENTRIES`). */
import type { CallOutcome } from './messages.js';

export interface HistoryEntry {
  id: string;
  direction: 'incoming' | 'outgoing';
  /** the other side's SIP URI */
  uri: string;
  /** the other side's display name, or its user part */
  name: string;
  /** when the call started (ms since the epoch) */
  at: number;
  /** seconds talked; 0 when never answered */
  duration: number;
  outcome: CallOutcome['kind'];
  /** the sentence shown when the call ended */
  detail: string;
}

const KEY = 'softphone.history.v1';
export const MAX_ENTRIES = 50;

export class CallHistory {
  private entries: HistoryEntry[];
  private readonly listeners = new Set<() => void>();

  constructor(private readonly storage: Storage = localStorage) {
    this.entries = this.load();
  }

  list(): readonly HistoryEntry[] {
    return this.entries;
  }

  add(e: HistoryEntry): void {
    this.entries = [e, ...this.entries.filter((x) => x.id !== e.id)].slice(0, MAX_ENTRIES);
    this.save();
  }

  clear(): void {
    this.entries = [];
    this.save();
  }

  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  private load(): HistoryEntry[] {
    try {
      const raw = this.storage.getItem(KEY);
      const parsed: unknown = raw ? JSON.parse(raw) : [];
      return Array.isArray(parsed) ? (parsed as HistoryEntry[]).filter((e) => e && typeof e.uri === 'string').slice(0, MAX_ENTRIES) : [];
    } catch {
      return [];
    }
  }

  private save(): void {
    try {
      this.storage.setItem(KEY, JSON.stringify(this.entries));
    } catch {
      // storage full or disabled: the history lives for this page only
    }
    for (const fn of this.listeners) fn();
  }
}

/** "just now", "5 min ago", "14:02", "Mon 14:02", "12 Mar" for a history line. */
export function when(at: number, now = Date.now()): string {
  const d = new Date(at);
  const diff = (now - at) / 1000;
  if (diff < 60) return 'just now';
  if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  const today = new Date(now);
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === today.toDateString()) return time;
  if (diff < 6 * 86400) return `${d.toLocaleDateString(undefined, { weekday: 'short' })} ${time}`;
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}
