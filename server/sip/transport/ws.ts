/**
 * SIP over WebSocket (RFC 7118) on an HTTP(S) server we share with the web app: upgrades on
 * one path, subprotocol `sip`. Each connection is a flow; requests to a client registered on
 * it must go back over it, and its closing is reported so its registrations go too.
 *
 * Guarded at the door, before a connection costs anything: the Host must be one of ours
 * (DNS rebinding) and a page's Origin its own host or an allowed one (pages elsewhere must not
 * use a visitor's browser to reach us); at most `maxConnections` connections, `maxPerSource`
 * from one address (503 beyond); banned sources are dropped without an answer. A connection
 * that has not sent a SIP request (a request line; CRLF keep-alives do not count) within
 * `idleTimeout` seconds is closed: browsers and phones register at once.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { hostAllowed, originAllowed } from '../../net/web-origin.js';
import type { Receive } from './udp.js';
import type { Source, TransportKind } from './types.js';

export interface Flow {
  readonly id: string;
  readonly transport: TransportKind;
  readonly remoteAddress: string;
  readonly remotePort: number;
  send(buf: Buffer): boolean;
  close(): void;
}

export interface WsOptions {
  path: string;
  /** seconds between WebSocket pings; a connection that misses one is closed */
  pingInterval: number;
  /** largest SIP message accepted in one frame, bytes */
  maxMessageSize: number;
  /** host names answered (http.allowedHosts); empty: any */
  allowedHosts?: readonly string[];
  /** origins allowed besides the page's own host (http.allowedOrigins) */
  allowedOrigins?: readonly string[];
  /** most connections at once */
  maxConnections?: number;
  /** most connections from one address */
  maxPerSource?: number;
  /** seconds a connection may stay open without sending a SIP request */
  idleTimeout?: number;
  /** true: not held to maxPerSource (a trusted reverse proxy or SBC speaks for many) */
  trusted?: (address: string) => boolean;
  /** false: drop an upgrade from this address without an answer (a banned source) */
  admitSource?: (address: string) => boolean;
  /** a refused upgrade, for the log: who, and why */
  onRefused?: (address: string, why: string) => void;
}

/** The start of a SIP request line (RFC 3261 §7.1): what ends a new connection's idle time. */
const REQUEST_LINE = /^[A-Za-z]+ \S+ SIP\/2\.0\r?\n/;

export class WsTransport {
  private readonly wss: WebSocketServer;
  private readonly pinger: NodeJS.Timeout;
  private readonly alive = new WeakSet<WebSocket>();
  /** connections per remote address, counted from the upgrade request (handshakes included) */
  private readonly perSource = new Map<string, number>();
  private total = 0;

  constructor(
    private readonly kind: 'ws' | 'wss',
    private readonly opts: WsOptions,
    private readonly nextFlowId: () => string,
    private readonly receive: Receive,
    private readonly flowOpened: (flow: Flow) => void,
    private readonly flowClosed: (flow: Flow) => void,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxMessageSize,
      perMessageDeflate: false,
      // RFC 7118 §4.1: the client MUST offer "sip"; we answer only that.
      handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
    });
    this.pinger = setInterval(() => this.ping(), opts.pingInterval * 1000);
    this.pinger.unref();
  }

  /** An HTTP upgrade on our path (the HTTP server routes paths). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim().toLowerCase());
    if (!offered.includes('sip')) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nSubprotocol "sip" required (RFC 7118)\n');
      return;
    }
    const o = this.opts;
    const address = normalizeAddress(req.socket.remoteAddress ?? '');
    if (o.admitSource && !o.admitSource(address)) {
      socket.destroy();
      return;
    }
    const origin = req.headers.origin;
    if (!hostAllowed(req.headers.host, o.allowedHosts ?? [])) return this.refuse(socket, address, 421, 'Misdirected Request', `Host ${req.headers.host?.slice(0, 200) ?? '(none)'} is not one of http.allowedHosts`);
    if (!originAllowed(origin, req.headers.host, o.allowedOrigins ?? [], o.allowedHosts ?? [])) return this.refuse(socket, address, 403, 'Forbidden', `Origin ${origin?.slice(0, 200)} is not this host nor one of http.allowedOrigins`);
    if (o.maxConnections !== undefined && this.total >= o.maxConnections) return this.refuse(socket, address, 503, 'Service Unavailable', `${o.maxConnections} connections open (http.wsMaxConnections)`);
    const mine = this.perSource.get(address) ?? 0;
    if (o.maxPerSource !== undefined && mine >= o.maxPerSource && !o.trusted?.(address)) return this.refuse(socket, address, 503, 'Service Unavailable', `${mine} connections open from this address (http.wsMaxPerSource)`);
    // counted from now: the handshake's callback comes later, and a burst must not overshoot
    this.perSource.set(address, mine + 1);
    this.total++;
    let counted = true;
    const uncount = (): void => {
      if (!counted) return;
      counted = false;
      this.total--;
      const n = (this.perSource.get(address) ?? 1) - 1;
      if (n <= 0) this.perSource.delete(address);
      else this.perSource.set(address, n);
    };
    socket.once('close', uncount);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.once('close', uncount);
      this.accept(ws, req);
    });
  }

  private refuse(socket: Duplex, address: string, status: number, reason: string, why: string): void {
    this.opts.onRefused?.(address, why);
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${reason}\n`);
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const remoteAddress = normalizeAddress(req.socket.remoteAddress ?? '');
    const remotePort = req.socket.remotePort ?? 0;
    const localAddress = normalizeAddress(req.socket.localAddress ?? '');
    const localPort = req.socket.localPort ?? 0;
    const id = this.nextFlowId();
    const flow: Flow = {
      id,
      transport: this.kind,
      remoteAddress,
      remotePort,
      send: (buf) => {
        if (ws.readyState !== ws.OPEN) return false;
        // SIP messages are text; RFC 7118 §5.1 allows either frame type, browsers' stacks
        // expect text.
        ws.send(buf, { binary: false });
        return true;
      },
      close: () => ws.terminate(),
    };
    const source: Source = { transport: this.kind, address: remoteAddress, port: remotePort, localAddress, localPort, flowId: id };
    this.alive.add(ws);
    ws.on('pong', () => this.alive.add(ws));
    let idle: NodeJS.Timeout | null = this.opts.idleTimeout === undefined ? null : setTimeout(() => {
      this.opts.onRefused?.(remoteAddress, `no SIP request within ${this.opts.idleTimeout} s (http.wsIdleTimeout): closed`);
      ws.close(1008, 'no SIP request');
      // a peer that does not answer the close handshake is cut off
      setTimeout(() => ws.terminate(), 2000).unref();
    }, this.opts.idleTimeout * 1000);
    idle?.unref();
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (idle && REQUEST_LINE.test(buf.subarray(0, 256).toString('latin1'))) {
        clearTimeout(idle);
        idle = null;
      }
      this.receive(buf, source);
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      if (idle) clearTimeout(idle);
      this.flowClosed(flow);
    });
    this.flowOpened(flow);
  }

  private ping(): void {
    for (const ws of this.wss.clients) {
      if (!this.alive.has(ws)) {
        ws.terminate();
        continue;
      }
      this.alive.delete(ws);
      ws.ping();
    }
  }

  get connections(): number {
    return this.wss.clients.size;
  }

  close(): void {
    clearInterval(this.pinger);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

/** "::ffff:127.0.0.1" -> "127.0.0.1" */
export function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
