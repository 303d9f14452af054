/**
 * The WebSocket client of one tap (npm `ws`), with everything a tap server may need and
 * nothing that can hold the call's audio hostage:
 * - extra HTTP headers on the upgrade; permessage-deflate on or off; TLS with a CA file
 *   (or "NONE" to skip validation), a client certificate and key, and the hostname check
 *   on or off; an opening-handshake timeout;
 * - a heartbeat: a ping every `heartbeatMs`; no frame at all from the server for
 *   `pingTimeoutMs` is a PING_TIMEOUT (not checked while reading is paused);
 * - reconnection with exponential backoff when enabled;
 * - bounded memory both ways: one message is at most `maxMessageBytes`; a send is refused
 *   (the caller counts a dropped frame) while more than `maxBufferedBytes` wait for a server
 *   that does not read; reading can be paused for flow control (TCP then pushes back);
 * - errors classified with the codes of errors.ts.
 */
import { randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import type net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import { classifySocketError, TapError, TapErrorCode } from './errors.js';
import { pinnedLookup } from './tap-lookup.js';
import type { ResolvedAddress } from './url-policy.js';

export interface TlsOptions {
  /** PEM file of the CA(s) to trust; "NONE" accepts any certificate; default: the system's */
  caFile?: string;
  /** PEM client certificate (with certFile, keyFile) */
  certFile?: string;
  keyFile?: string;
  /** check that the certificate names the host (default true) */
  checkHostname?: boolean;
}

export interface ReconnectOptions {
  enabled: boolean;
  /** first wait, ms (default 100) */
  minDelayMs?: number;
  /** longest wait, ms (default 10 000) */
  maxDelayMs?: number;
  /** give up after this many failed attempts in a row (default: never) */
  maxAttempts?: number;
}

export interface TapSocketOptions {
  url: string;
  /** connect to this address only (the one the URL policy checked), the URL's host kept for Host, SNI and the certificate */
  address?: ResolvedAddress;
  headers?: Record<string, string>;
  /** offer permessage-deflate (default false) */
  deflate?: boolean;
  tls?: TlsOptions;
  /** ping interval, ms; 0: no heartbeat (default 0) */
  heartbeatMs?: number;
  /** silence from the server after which the connection is dead, ms (default 3 heartbeats, at least 1 s) */
  pingTimeoutMs?: number;
  reconnect?: ReconnectOptions;
  /** opening handshake deadline, ms (default 10 000) */
  handshakeTimeoutMs?: number;
  /** largest message accepted, bytes (default 32 MiB) */
  maxMessageBytes?: number;
  /** refuse sends while this much is queued for the server, bytes (default 512 KiB) */
  maxBufferedBytes?: number;
}

export interface TapSocketEvents {
  open: [];
  text: [string];
  binary: [Buffer];
  /** the connection closed; `reconnecting`: another attempt follows */
  close: [code: number, reason: string, reconnecting: boolean];
  /** an error; `retries`/`waitMs` when a reconnection follows */
  error: [TapError, { retries: number; waitMs: number | null }];
  /** the socket is gone for good (closed by us, or no reconnection) */
  end: [];
}

const CLOSE_REASONS: Record<number, string> = {
  1000: 'Normal closure',
  1001: 'Going away',
  1002: 'Protocol error',
  1003: 'Unsupported data',
  1005: 'No status received',
  1006: 'Abnormal closure',
  1007: 'Invalid frame payload data',
  1008: 'Policy violation',
  1009: 'Message too big',
  1010: 'Mandatory extension',
  1011: 'Internal error',
  1012: 'Service restart',
  1013: 'Try again later',
};

/** Random masks from a pool (as ws does), never all zero: ws would then send our buffer by reference. */
const maskPool = Buffer.alloc(4096);
let maskAt = maskPool.length;
const maskBuf = Buffer.alloc(4);
function generateMask(mask: Buffer): void {
  if (maskAt === maskPool.length) {
    randomFillSync(maskPool);
    maskAt = 0;
  }
  mask[0] = maskPool[maskAt++]!;
  mask[1] = maskPool[maskAt++]!;
  mask[2] = maskPool[maskAt++]!;
  mask[3] = maskPool[maskAt++]! | 1;
}

/**
 * What sendBinary reads of a `ws` connection to write audio frames itself: the TCP socket and
 * whether ws's sender has anything of its own queued (deflate, blob data). Not public in `ws`
 * (8.x): checked at each use, and without them frames go through ws.send.
 */
interface WsInternals {
  _socket?: net.Socket | null;
  _sender?: { _state?: number; _bufferedBytes?: number } | null;
}

/**
 * The one place a tap's WebSocket connection is opened: `url` and the `ws` client options.
 * (A URL policy that resolves and checks the address first passes the checked target here.)
 */
export function openWebSocket(url: string, options: WsConnectOptions): WebSocket {
  // ws types checkServerIdentity as returning boolean; Node's TLS (which receives it) wants Error | undefined
  return new WebSocket(url, options as WebSocket.ClientOptions);
}

/** The `ws` client's options, with TLS's own type for checkServerIdentity. */
export type WsConnectOptions = Omit<WebSocket.ClientOptions, 'checkServerIdentity'> & Pick<tls.ConnectionOptions, 'checkServerIdentity'>;

export class TapSocket extends EventEmitter<TapSocketEvents> {
  private ws: WebSocket | null = null;
  private opened = false;
  private closing = false;
  private ended = false;
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private lastHeard = 0;
  private paused = false;
  /** the error that will explain the coming close */
  private failure: TapError | null = null;
  private deflating = false;
  private tlsOpts: { ca?: Buffer; cert?: Buffer; key?: Buffer } | null = null;
  /** the frame buffer of the last audio message, reused while the kernel took it whole */
  private frame: Buffer | null = null;
  private frameHeld = false;
  readonly secure: boolean;
  /** bytes and messages, both ways */
  bytesIn = 0;
  bytesOut = 0;
  connects = 0;

  constructor(private readonly o: TapSocketOptions) {
    super();
    this.secure = o.url.startsWith('wss:');
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Starts connecting (errors arrive as events). */
  connect(): void {
    if (this.ended || this.closing) return;
    void this.attempt();
  }

  private async loadTls(): Promise<boolean> {
    const t = this.o.tls;
    if (!this.secure || this.tlsOpts) return true;
    try {
      const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
      if (t?.caFile && t.caFile !== 'NONE' && t.caFile !== 'SYSTEM') out.ca = await fs.readFile(t.caFile);
      if (t?.certFile) out.cert = await fs.readFile(t.certFile);
      if (t?.keyFile) out.key = await fs.readFile(t.keyFile);
      if ((out.cert && !out.key) || (out.key && !out.cert)) throw new Error('a client certificate needs both certFile and keyFile');
      tls.createSecureContext(out); // bad PEM fails here, not in the middle of a handshake
      this.tlsOpts = out;
      return true;
    } catch (e) {
      this.ended = true;
      this.emit('error', new TapError(TapErrorCode.TLS_INIT_FAILED, `TLS init failed: ${(e as Error).message}`), { retries: 0, waitMs: null });
      this.emit('end');
      return false;
    }
  }

  private async attempt(): Promise<void> {
    this.retryTimer = null;
    if (!(await this.loadTls()) || this.ended || this.closing) return;
    const t = this.o.tls;
    const ws = openWebSocket(this.o.url, {
      headers: this.o.headers ?? {},
      perMessageDeflate: this.o.deflate === true,
      handshakeTimeout: this.o.handshakeTimeoutMs ?? 10_000,
      maxPayload: this.o.maxMessageBytes ?? 32 * 1024 * 1024,
      followRedirects: false,
      generateMask,
      // ssrf (issue 10): no DNS of our own here; the socket goes to the address that was checked
      ...(this.o.address ? { lookup: pinnedLookup(this.o.address) } : {}),
      ...(this.secure
        ? {
            ...this.tlsOpts,
            rejectUnauthorized: t?.caFile !== 'NONE',
            ...(t?.checkHostname === false ? { checkServerIdentity: () => undefined } : {}),
          }
        : {}),
    });
    ws.binaryType = 'nodebuffer';
    this.ws = ws;
    this.opened = false;
    this.failure = null;
    ws.on('open', () => {
      this.opened = true;
      this.attempts = 0;
      this.connects++;
      this.lastHeard = Date.now();
      this.deflating = ws.extensions.includes('permessage-deflate');
      if (this.paused) ws.pause();
      this.startHeartbeat();
      this.emit('open');
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.lastHeard = Date.now();
      this.bytesIn += data.length;
      if (isBinary) this.emit('binary', data);
      else this.emit('text', data.toString('utf8'));
    });
    ws.on('pong', () => {
      this.lastHeard = Date.now();
    });
    ws.on('ping', () => {
      this.lastHeard = Date.now();
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (this.failure) return;
      const code = classifySocketError(err, this.opened, this.secure);
      const status = /Unexpected server response: (\d+)/.exec(err.message)?.[1];
      this.failure = new TapError(code, err.message || String(err), status ? { http_status: Number(status) } : {});
    });
    ws.on('close', (code: number, reasonBuf: Buffer) => {
      this.stopHeartbeat();
      if (this.ws === ws) this.ws = null;
      const reason = reasonBuf.toString('utf8') || CLOSE_REASONS[code] || '';
      const wasOpen = this.opened;
      this.opened = false;
      if (this.closing || this.ended) {
        if (wasOpen) this.emit('close', code, reason, false);
        this.finish();
        return;
      }
      // an abnormal closure of an open connection is an I/O error (the server vanished)
      if (!this.failure && wasOpen && code === 1006) this.failure = new TapError(TapErrorCode.IO, 'connection lost (closed without a close frame)');
      const failed = this.failure;
      this.failure = null;
      const retry = this.nextRetry();
      if (failed) this.emit('error', failed, { retries: this.attempts, waitMs: retry });
      if (wasOpen) this.emit('close', code, reason, retry !== null);
      if (retry === null) {
        if (this.o.reconnect?.enabled && this.o.reconnect.maxAttempts !== undefined && !this.closing) {
          this.emit('error', new TapError(TapErrorCode.RECONNECT_GAVE_UP, `gave up after ${this.attempts} attempts`), { retries: this.attempts, waitMs: null });
        }
        this.finish();
        return;
      }
      this.retryTimer = setTimeout(() => void this.attempt(), retry);
      this.retryTimer.unref();
    });
  }

  /** The wait before the next attempt, or null when there is none. */
  private nextRetry(): number | null {
    const r = this.o.reconnect;
    if (!r?.enabled || this.closing || this.ended) return null;
    if (r.maxAttempts !== undefined && this.attempts >= r.maxAttempts) return null;
    const min = r.minDelayMs ?? 100;
    const max = r.maxDelayMs ?? 10_000;
    const wait = Math.min(max, min * 2 ** Math.min(this.attempts, 20));
    this.attempts++;
    return wait;
  }

  private startHeartbeat(): void {
    const every = this.o.heartbeatMs ?? 0;
    if (every <= 0) return;
    const timeout = this.o.pingTimeoutMs ?? Math.max(1000, 3 * every);
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (!this.paused && Date.now() - this.lastHeard > timeout) {
        this.failure = new TapError(TapErrorCode.PING_TIMEOUT, `no answer from the server for ${Date.now() - this.lastHeard} ms`);
        ws.terminate();
        return;
      }
      try {
        ws.ping();
      } catch {
        // closing
      }
    }, every);
    this.pingTimer.unref();
  }

  private stopHeartbeat(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private finish(): void {
    const first = !this.endedEmitted;
    this.ended = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (first) {
      this.endedEmitted = true;
      this.emit('end');
    }
  }

  private endedEmitted = false;

  /**
   * Sends unless the server is not keeping up (more than maxBufferedBytes queued) or the
   * socket is not open; returns whether it was sent. `reusable`: the caller will overwrite
   * `buf` (it is copied when compression would keep a reference).
   */
  sendBinary(buf: Buffer, reusable = true): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    if (ws.bufferedAmount > (this.o.maxBufferedBytes ?? 512 * 1024)) return false;
    this.bytesOut += buf.length;
    if (!this.deflating && this.writeFrame(ws as unknown as WsInternals, buf)) return true;
    ws.send(reusable && this.deflating ? Buffer.from(buf) : buf, { binary: true });
    return true;
  }

  /**
   * One binary message (RFC 6455 §5.2: FIN, opcode 2, masked as a client must, §5.3) written
   * straight to the TCP socket in one write: what ws.send does, without its per-message header
   * and masked-copy buffers, its cork/uncork and its callbacks, the largest cost of a tap's
   * 20 ms after the syscall itself. Only when ws's own sender holds nothing (no deflate, nothing
   * queued), so messages keep their order; ws still owns the connection, its control frames
   * and bufferedAmount (which counts what we wrote and the kernel did not take yet).
   * The frame buffer is reused while each write went to the kernel at once; one the socket
   * had to queue stays with it and the next frame gets a new buffer.
   */
  private writeFrame(ws: WsInternals, payload: Buffer): boolean {
    const sock = ws._socket;
    const sender = ws._sender;
    if (!sock || !sender || sender._state !== 0 || sender._bufferedBytes !== 0 || sock.destroyed) return false;
    const n = payload.length;
    const hl = n < 126 ? 2 : n < 65536 ? 4 : 10;
    const total = hl + 4 + n;
    let f = this.frame;
    if (f === null || this.frameHeld || f.length !== total) f = this.frame = Buffer.allocUnsafeSlow(total);
    f[0] = 0x82;
    if (hl === 2) f[1] = 0x80 | n;
    else if (hl === 4) {
      f[1] = 0x80 | 126;
      f.writeUInt16BE(n, 2);
    } else {
      f[1] = 0x80 | 127;
      f.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
      f.writeUInt32BE(n >>> 0, 6);
    }
    generateMask(maskBuf);
    const m0 = maskBuf[0]!;
    const m1 = maskBuf[1]!;
    const m2 = maskBuf[2]!;
    const m3 = maskBuf[3]!;
    f[hl] = m0;
    f[hl + 1] = m1;
    f[hl + 2] = m2;
    f[hl + 3] = m3;
    const o = hl + 4;
    let i = 0;
    for (const end = n - 3; i < end; i += 4) {
      f[o + i] = payload[i]! ^ m0;
      f[o + i + 1] = payload[i + 1]! ^ m1;
      f[o + i + 2] = payload[i + 2]! ^ m2;
      f[o + i + 3] = payload[i + 3]! ^ m3;
    }
    for (; i < n; i++) f[o + i] = payload[i]! ^ maskBuf[i & 3]!;
    sock.write(f);
    // written whole (synchronously) unless the socket queued it: then it keeps the buffer
    this.frameHeld = sock.writableLength > 0;
    return true;
  }

  /** Text, with the same back-pressure rule unless `force` (control messages). */
  sendText(text: string, force = false): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    if (!force && ws.bufferedAmount > (this.o.maxBufferedBytes ?? 512 * 1024)) return false;
    this.bytesOut += text.length;
    ws.send(text);
    return true;
  }

  /** Stop reading (TCP pushes back on the server); control frames wait too. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.ws?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastHeard = Date.now();
    this.ws?.resume();
  }

  /** Closes for good (no reconnection). Idempotent. */
  close(code = 1000, reason = 'Normal closure'): void {
    if (this.closing) return;
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    if (!ws) {
      this.finish();
      return;
    }
    if (ws.readyState === WebSocket.OPEN) {
      ws.close(code, reason);
      // a server that never answers the close handshake: cut it after a while
      const t = setTimeout(() => ws.terminate(), 2000);
      t.unref();
      ws.once('close', () => clearTimeout(t));
    } else {
      ws.terminate();
    }
  }
}
