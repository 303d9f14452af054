/**
 * Requests for unit tests that call the server's logic directly (no sockets): SIP text parsed
 * by the real parser, with the source address a transport would have set.
 */
import assert from 'node:assert/strict';
import type { SipRequest } from '../../server/sip/message.js';
import { parseMessage } from '../../server/sip/parser.js';
import type { Source, TransportKind } from '../../server/sip/transport/types.js';

/** Where a request came from: a connection-oriented one gets a flow id, as the transports give. */
export function sourceOf(transport: TransportKind, address: string, port: number): Source {
  return { transport, address, port, localAddress: '192.0.2.1', localPort: 5060, flowId: transport === 'udp' ? null : `${transport}-${address}-${port}` };
}

/** Parses a request written as lines (CRLF-joined, Content-Length added) and sets its source. */
export function parseRequest(lines: readonly string[], source: Source): SipRequest {
  const text = [...lines, 'Content-Length: 0', '', ''].join('\r\n');
  const r = parseMessage(Buffer.from(text, 'latin1'));
  if (r.kind !== 'message' || !r.message.isRequest()) assert.fail(`not a request: ${r.kind === 'error' ? r.error.message : r.kind}`);
  const req = r.message;
  req.source = source;
  return req;
}
