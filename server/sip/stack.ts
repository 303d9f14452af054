/**
 * From transports to transactions: parse, refuse what is not SIP (400/505 where a reply can
 * be routed, silence otherwise), stamp the top Via (RFC 3581), and hand the message on.
 */
import type { Logger } from 'pino';
import type { SipRequest, SipResponse } from './message.js';
import { parseMessage } from './parser.js';
import { makeResponse } from './reply.js';
import type { TransactionLayer } from './transaction/transaction-layer.js';
import type { Destination, Source } from './transport/types.js';
import { formatVia } from './via.js';

export interface StackOptions {
  /** answer every request at its source port (OpenSIPS force_rport) */
  forceRport: boolean;
}

export interface StackCounters {
  received: number;
  malformed: number;
  keepalives: number;
}

export class SipStack {
  readonly counters: StackCounters = { received: 0, malformed: 0, keepalives: 0 };

  constructor(
    readonly transactions: TransactionLayer,
    private readonly opts: StackOptions,
    private readonly log: Logger,
  ) {}

  /** Entry point of every datagram and WebSocket message. Never throws. */
  receive = (buf: Buffer, source: Source): void => {
    this.counters.received++;
    try {
      this.dispatch(buf, source);
    } catch (e) {
      // A bug of ours must not take the process down with one message.
      this.log.error({ err: e, from: `${source.address}:${source.port}` }, 'failed to process a message');
    }
  };

  private dispatch(buf: Buffer, source: Source): void {
    const parsed = parseMessage(buf);
    if (parsed.kind === 'keepalive') {
      this.counters.keepalives++;
      return;
    }
    if (parsed.kind === 'error') {
      this.counters.malformed++;
      const req = parsed.request;
      this.log.debug({ from: `${source.transport}:${source.address}:${source.port}`, error: parsed.error.message }, 'malformed message');
      // RFC 4475 §3.1.2: requests get 400 (505 for the version) when a reply can be sent;
      // responses and unreadable requests are dropped.
      if (req && req.method !== 'ACK') {
        req.source = source;
        const res = makeResponse(req, parsed.error.status, { reason: reasonFor(parsed.error.status, parsed.error.message) });
        this.transactions.send(res.toBuffer(), { ...source, flowId: source.flowId });
      }
      return;
    }
    const msg = parsed.message;
    msg.source = source;
    if (msg.isRequest()) {
      this.stampVia(msg, source);
      this.transactions.receiveRequest(msg, this.responseDestination(msg, source));
    } else {
      this.transactions.receiveResponse(msg as SipResponse);
    }
  }

  /**
   * RFC 3261 §18.2.1 and RFC 3581 §4: note the source address in `received` when it differs
   * from the sent-by host, and the source port in `rport` when the client asked for it.
   */
  private stampVia(req: SipRequest, source: Source): void {
    const via = req.via();
    const wantsRport = via.params.has('rport');
    const differs = via.host !== source.address && via.host !== `[${source.address}]`;
    if (!differs && !wantsRport) return;
    const stamped = { ...via, params: new Map(via.params) };
    if (differs) stamped.params.set('received', source.address);
    if (wantsRport) stamped.params.set('rport', String(source.port));
    // what parseVia would make of the new text is `stamped` itself: keep it
    req.replaceTopVia(formatVia(stamped), stamped);
  }

  /**
   * §18.2.2 with RFC 3581: back over the same connection for reliable transports; for UDP
   * to the source address, at the source port when rport (or force_rport) says so.
   */
  private responseDestination(req: SipRequest, source: Source): Destination {
    if (source.transport !== 'udp') return { transport: source.transport, address: source.address, port: source.port, flowId: source.flowId };
    const via = req.via();
    const port = this.opts.forceRport || via.params.has('rport') ? source.port : (via.port ?? 5060);
    return { transport: 'udp', address: source.address, port, flowId: null };
  }
}

function reasonFor(status: number, detail: string): string {
  const base = status === 505 ? 'Version Not Supported' : 'Bad Request';
  // the reason phrase says what was wrong, without control characters from the input
  return `${base} (${detail.replace(/[^\x20-\x7e]/g, '?').slice(0, 80)})`;
}
