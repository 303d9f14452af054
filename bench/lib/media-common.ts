/**
 * Shared by the media benchmark and its load generators (separate processes): the probe
 * payload, latency statistics, a tiny RPC over the child-process IPC channel, SIP digest.
 *
 * Probe payload: every RTP packet the generators send is 160 bytes of PCMU (20 ms at 8 kHz).
 * Its first 16 bytes carry a probe (magic, call index, send time), the rest a 440 Hz tone. The
 * send time is `process.hrtime.bigint()`: CLOCK_MONOTONIC on Linux, the same clock in every
 * process of the machine, so a receiver in another process can subtract it from its own.
 * Neither mediasoup nor rtpengine touch the payload when both legs speak PCMU.
 */
import { createHash, randomBytes } from 'node:crypto';

export const PROBE_MAGIC = 0x4d42454e; // 'MBEN'
export const PAYLOAD_BYTES = 160;
export const FRAME_MS = 20;

/** 160 bytes of a 440 Hz tone in mu-law (one 20 ms frame); the probe overwrites the first 16. */
export function toneFrame(hz = 440): Buffer {
  const out = Buffer.alloc(PAYLOAD_BYTES);
  for (let i = 0; i < PAYLOAD_BYTES; i++) out[i] = linearToUlaw(Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / 8000)));
  return out;
}

function linearToUlaw(sample: number): number {
  const BIAS = 0x84;
  const CLIP = 32635;
  const sign = sample < 0 ? 0x80 : 0;
  let s = Math.min(Math.abs(sample), CLIP) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; exponent--, mask >>= 1);
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  s = ~(sign | (exponent << 4) | mantissa) & 0xff;
  return s;
}

/** Writes the probe into `payload` (at least 16 bytes). */
export function writeProbe(payload: Buffer, callIndex: number, seq: number): void {
  payload.writeUInt32BE(PROBE_MAGIC, 0);
  payload.writeUInt16BE(callIndex & 0xffff, 4);
  payload.writeUInt16BE(seq & 0xffff, 6);
  payload.writeBigUInt64BE(process.hrtime.bigint(), 8);
}

/** The probe of a received payload, or null; `latencyUs` from its send time to now. */
export function readProbe(payload: Buffer | Uint8Array, offset = 0): { callIndex: number; latencyUs: number } | null {
  if (payload.length - offset < 16) return null;
  const b = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (b.readUInt32BE(offset) !== PROBE_MAGIC) return null;
  const sent = b.readBigUInt64BE(offset + 8);
  return { callIndex: b.readUInt16BE(offset + 4), latencyUs: Number(process.hrtime.bigint() - sent) / 1000 };
}

/** A growable list of samples (µs) with percentiles. */
export class Samples {
  private buf = new Float64Array(4096);
  n = 0;
  add(v: number): void {
    if (this.n === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = v;
  }
  clear(): void {
    this.n = 0;
  }
  /** sparse [bucket, count] pairs, bucket = floor(µs / HIST_BUCKET_US) */
  histogram(): [number, number][] {
    const m = new Map<number, number>();
    for (let i = 0; i < this.n; i++) {
      const b = Math.floor(this.buf[i]! / HIST_BUCKET_US);
      m.set(b, (m.get(b) ?? 0) + 1);
    }
    return [...m.entries()];
  }
  summary(): LatencySummary {
    if (this.n === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
    const s = this.buf.slice(0, this.n).sort();
    const q = (f: number): number => s[Math.min(s.length - 1, Math.floor(f * s.length))]!;
    let sum = 0;
    for (const v of s) sum += v;
    return { count: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: s[s.length - 1]!, mean: sum / s.length };
  }
}

/** Histogram bucket width (µs) of what generators hand the parent, to merge several generators' samples. */
export const HIST_BUCKET_US = 10;

/** One summary from several generators' histograms (percentiles to the bucket's middle; max and mean exact). */
export function mergeLatency(parts: { summary: LatencySummary; hist: [number, number][] }[]): LatencySummary {
  const counts = new Map<number, number>();
  let n = 0;
  let sum = 0;
  let max = -Infinity;
  for (const p of parts) {
    for (const [b, c] of p.hist) counts.set(b, (counts.get(b) ?? 0) + c);
    n += p.summary.count;
    if (p.summary.count) {
      sum += p.summary.mean * p.summary.count;
      max = Math.max(max, p.summary.max);
    }
  }
  if (n === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  const buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  const q = (f: number): number => {
    const rank = Math.min(n - 1, Math.floor(f * n));
    let seen = 0;
    for (const [b, c] of buckets) {
      seen += c;
      if (seen > rank) return Math.min(max, (b + 0.5) * HIST_BUCKET_US);
    }
    return max;
  };
  return { count: n, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max, mean: sum / n };
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** What a generator reports for a measurement window. */
export interface WindowReport {
  /** probe packets sent during the window */
  sent: number;
  /** probe packets received during the window */
  received: number;
  /** calls that received nothing during the window (of those that were up) */
  silentCalls: number[];
  callsUp: number;
  /** one-way latency of what this generator received (µs) */
  latency: LatencySummary;
  latencyHist: [number, number][];
  /** how late the pacer sent packets against their 20 ms schedule (µs) */
  sendLag: LatencySummary;
  sendLagHist: [number, number][];
  /** packets received that carried no probe (RTCP, STUN, foreign) */
  other: number;
}

// ---------------------------------------------------------------------------------------------
// RPC over the IPC channel of child_process.fork

export interface RpcRequest {
  rpc: number;
  cmd: string;
  args?: unknown;
}
export interface RpcResponse {
  rpc: number;
  result?: unknown;
  error?: string;
}

/** In a generator: answers the parent's commands; exits when the parent goes away or after `maxSeconds`. */
export function serveRpc(handlers: Record<string, (args: any) => unknown>, maxSeconds: number): void {
  if (!process.send) throw new Error('run me with child_process.fork');
  const hard = setTimeout(() => {
    console.error(`${process.argv[1]}: wall-clock limit of ${maxSeconds} s reached, exiting`);
    process.exit(3);
  }, maxSeconds * 1000);
  hard.unref();
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.on('message', (m: RpcRequest) => {
    const h = handlers[m.cmd];
    Promise.resolve()
      .then(() => {
        if (!h) throw new Error(`unknown command ${m.cmd}`);
        return h(m.args);
      })
      .then(
        (result) => process.send!({ rpc: m.rpc, result } satisfies RpcResponse),
        (e: unknown) => process.send!({ rpc: m.rpc, error: e instanceof Error ? e.stack ?? e.message : String(e) } satisfies RpcResponse),
      );
  });
}

// ---------------------------------------------------------------------------------------------
// SIP bits both generators use

export const rnd = (n = 6): string => randomBytes(n).toString('hex');
const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** An Authorization / Proxy-Authorization value answering a WWW/Proxy-Authenticate challenge (RFC 2617, MD5). */
export function digestAnswer(challenge: string, method: string, uri: string, user: string, password: string): string {
  const p: Record<string, string> = {};
  for (const m of challenge.replace(/^\s*Digest\s+/i, '').matchAll(/([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) p[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? '';
  const realm = p.realm ?? '';
  const nonce = p.nonce ?? '';
  const ha1 = md5(`${user}:${realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  const qop = (p.qop ?? '').split(',').map((s) => s.trim()).includes('auth') ? 'auth' : null;
  const parts = [`username="${user}"`, `realm="${realm}"`, `nonce="${nonce}"`, `uri="${uri}"`, 'algorithm=MD5'];
  if (qop) {
    const cnonce = rnd(8);
    const nc = '00000001';
    parts.push(`response="${md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`)}"`, 'qop=auth', `nc=${nc}`, `cnonce="${cnonce}"`);
  } else {
    parts.push(`response="${md5(`${ha1}:${nonce}:${ha2}`)}"`);
  }
  if (p.opaque !== undefined) parts.push(`opaque="${p.opaque}"`);
  return `Digest ${parts.join(', ')}`;
}

const COMPACT: Record<string, string> = { i: 'call-id', f: 'from', t: 'to', v: 'via', m: 'contact', l: 'content-length', c: 'content-type', r: 'refer-to', k: 'supported' };

/** A SIP message, parsed just enough for the generators. */
export interface SipMsg {
  raw: string;
  status: number;
  reason: string;
  method: string | null;
  ruri: string | null;
  headers: Map<string, string[]>;
  h(name: string): string | undefined;
  all(name: string): string[];
  body: string;
}

export function parseSip(raw: string): SipMsg | null {
  const sep = raw.indexOf('\r\n\r\n');
  if (sep < 0) return null;
  const head = raw.slice(0, sep).split('\r\n');
  const first = head.shift() ?? '';
  const headers = new Map<string, string[]>();
  for (const l of head) {
    const i = l.indexOf(':');
    if (i < 0) continue;
    let k = l.slice(0, i).trim().toLowerCase();
    k = COMPACT[k] ?? k;
    const v = l.slice(i + 1).trim();
    // comma-separated multi-value headers we care about
    const values = k === 'via' || k === 'record-route' || k === 'route' ? splitComma(v) : [v];
    headers.set(k, [...(headers.get(k) ?? []), ...values]);
  }
  const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(first);
  const [method, ruri] = m ? [null, null] : first.split(' ');
  return {
    raw,
    status: m ? Number(m[1]) : 0,
    reason: m ? m[2] ?? '' : '',
    method: method ?? null,
    ruri: ruri ?? null,
    headers,
    h: (n) => headers.get(n)?.[0],
    all: (n) => headers.get(n) ?? [],
    body: raw.slice(sep + 4),
  };
}

function splitComma(v: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of v) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && ch === '<') depth++;
    if (!quoted && ch === '>') depth--;
    if (!quoted && depth === 0 && ch === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** The URI inside a name-addr (`<sip:...>`) or an addr-spec. */
export const uriOf = (v: string): string => /<([^>]+)>/.exec(v)?.[1] ?? v.split(';')[0]!.trim();
export const tagOf = (v: string | undefined): string | null => (v ? /;\s*tag=([^;>\s]+)/i.exec(v)?.[1] ?? null : null);

export function sipMessage(first: string, headers: [string, string][], body = ''): string {
  const lines = [first, ...headers.map(([k, v]) => `${k}: ${v}`)];
  if (body) lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
  return lines.join('\r\n');
}

/** The first audio m-line's address and port of an SDP (c= at media or session level). */
export function sdpAudioTarget(sdp: string): { address: string; port: number } | null {
  let session: string | null = null;
  let media: string | null = null;
  let port: number | null = null;
  let inAudio = false;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      if (port !== null) break;
      inAudio = line.startsWith('m=audio ');
      if (inAudio) port = Number(line.split(' ')[1]);
    } else if (line.startsWith('c=')) {
      const ip = line.trim().split(' ')[2] ?? null;
      if (port === null && !inAudio) session = ip;
      else if (inAudio) media = ip;
    }
  }
  const address = media ?? session;
  return address && port ? { address, port } : null;
}
