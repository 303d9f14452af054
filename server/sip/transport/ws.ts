/**
 * SIP over WebSocket (RFC 7118) on an HTTP(S) server we share with the web app: upgrades on
 * one path, subprotocol `sip`. Each connection is a flow; requests to a client registered on
 * it must go back over it, and its closing is reported so its registrations go too.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
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
}

export class WsTransport {
  private readonly wss: WebSocketServer;
  private readonly pinger: NodeJS.Timeout;
  private readonly alive = new WeakSet<WebSocket>();

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
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
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
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.receive(buf, source);
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.flowClosed(flow));
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
