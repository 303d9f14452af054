/**
 * WebSocket servers for tap tests: a well-behaved `ws` server that records every message with
 * its arrival time (and can echo, or run any handler), and raw TCP servers that misbehave in
 * the ways a tap must survive (never answer, refuse the upgrade, send a masked frame, vanish
 * mid-frame, never read).
 */
import crypto from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface Received {
  /** performance.now() at arrival */
  at: number;
  binary: boolean;
  data: Buffer;
  text: string | null;
}

export class TapConnection {
  readonly messages: Received[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  closeInfo: { code: number; reason: string } | null = null;
  private waiters: (() => void)[] = [];

  constructor(
    readonly ws: WebSocket,
    readonly headers: Record<string, string | string[] | undefined>,
    readonly path: string,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.messages.push({ at: performance.now(), binary: isBinary, data, text: isBinary ? null : data.toString('utf8') });
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) w();
        resolve(this.closeInfo);
      });
    });
  }

  get texts(): string[] {
    return this.messages.filter((m) => !m.binary).map((m) => m.text!);
  }

  get binaries(): Received[] {
    return this.messages.filter((m) => m.binary);
  }

  /** parsed JSON text messages (those that parse) */
  get json(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const t of this.texts) {
      try {
        out.push(JSON.parse(t) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
    return out;
  }

  send(data: string | Buffer): void {
    this.ws.send(data);
  }

  sendJson(v: unknown): void {
    this.ws.send(JSON.stringify(v));
  }

  /** Resolves when `check` holds (re-checked on every message), or rejects after `ms`. */
  async until<T>(what: string, check: () => T, ms = 5000): Promise<NonNullable<T>> {
    const end = Date.now() + ms;
    for (;;) {
      const v = check();
      if (v) return v as NonNullable<T>;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

export interface WsTapServerOptions {
  /** serve wss with this certificate */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** called for each new connection */
  onConnection?: (c: TapConnection) => void;
  perMessageDeflate?: boolean;
  /** answer the upgrade with this HTTP status instead (e.g. 403) */
  rejectStatus?: number;
}

export class WsTapServer {
  readonly connections: TapConnection[] = [];
  private waiting: ((c: TapConnection) => void)[] = [];

  private constructor(
    private readonly wss: WebSocketServer,
    private readonly server: net.Server,
    readonly port: number,
    readonly secure: boolean,
  ) {}

  static async start(opts: WsTapServerOptions = {}): Promise<WsTapServer> {
    const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }) : (await import('node:http')).createServer();
    const wss = new WebSocketServer({
      server,
      perMessageDeflate: opts.perMessageDeflate ?? false,
      maxPayload: 64 * 1024 * 1024,
      ...(opts.rejectStatus ? { verifyClient: (_info: unknown, cb: (ok: boolean, code?: number) => void) => cb(false, opts.rejectStatus) } : {}),
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const s = new WsTapServer(wss, server, (server.address() as AddressInfo).port, Boolean(opts.tls));
    wss.on('connection', (ws, req) => {
      const c = new TapConnection(ws, req.headers, req.url ?? '/');
      s.connections.push(c);
      opts.onConnection?.(c);
      for (const w of s.waiting.splice(0)) w(c);
    });
    return s;
  }

  url(path = '/tap'): string {
    return `${this.secure ? 'wss' : 'ws'}://127.0.0.1:${this.port}${path}`;
  }

  /** The next connection (or the first one not yet taken, in order). */
  async connection(index: number, ms = 5000): Promise<TapConnection> {
    const end = Date.now() + ms;
    while (this.connections.length <= index) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for connection #${index + 1}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiting.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.connections[index]!;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Echo server behaviour of mod_audio_stream's examples: each binary frame back as streamAudio. */
export function echoAsStreamAudio(c: TapConnection, sampleRate: number): void {
  c.ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    c.ws.send(JSON.stringify({ type: 'streamAudio', data: { audioDataType: 'raw', sampleRate, audioData: data.toString('base64') } }));
  });
}

/** Each binary frame straight back. */
export function echoBinary(c: TapConnection): void {
  c.ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) c.ws.send(data);
  });
}

// ---------------------------------------------------------------------------------------------
// raw servers that misbehave

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export type RawBehaviour =
  /** accept TCP, never answer anything */
  | 'silent'
  /** complete the handshake, then send a masked text frame */
  | 'masked'
  /** complete the handshake, then half a frame, then vanish */
  | 'mid-frame'
  /** complete the handshake, then never read again (and never answer pings) */
  | 'no-read'
  /** complete the handshake announcing an extension nobody asked for */
  | 'extension';

export class RawServer {
  readonly sockets: net.Socket[] = [];
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(behaviour: RawBehaviour): Promise<RawServer> {
    const sockets: net.Socket[] = [];
    const server = net.createServer((sock) => {
      sockets.push(sock);
      sock.on('error', () => {});
      if (behaviour === 'silent') return;
      let buf = '';
      const onData = (d: Buffer): void => {
        buf += d.toString('latin1');
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        const key = /sec-websocket-key:\s*(\S+)/i.exec(buf)?.[1] ?? '';
        const accept = crypto.createHash('sha1').update(key + GUID).digest('base64');
        const ext = behaviour === 'extension' ? 'Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n' : '';
        sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${ext}\r\n`);
        if (behaviour === 'masked') {
          const payload = Buffer.from('hello');
          const mask = Buffer.from([1, 2, 3, 4]);
          const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
          sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
        } else if (behaviour === 'mid-frame') {
          // a binary frame announcing 1000 bytes, 10 of them sent, then the socket goes
          setTimeout(() => {
            sock.write(Buffer.concat([Buffer.from([0x82, 126, 0x03, 0xe8]), Buffer.alloc(10)]));
            setTimeout(() => sock.destroy(), 50);
          }, 300);
        } else if (behaviour === 'no-read') {
          sock.pause();
        }
      };
      sock.on('data', onData);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const s = new RawServer(server, (server.address() as AddressInfo).port);
    (s.sockets as net.Socket[]).push(...sockets);
    server.on('connection', (sock) => s.sockets.push(sock));
    return s;
  }

  url(path = '/tap'): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
