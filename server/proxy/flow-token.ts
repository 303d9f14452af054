/**
 * Flow tokens (the idea of RFC 5626 §5.3) written as the user part of our Record-Route
 * entries, so that in-dialog requests towards a WebSocket client (a `.invalid` contact) or a
 * UDP phone behind NAT find their way: `w<flow id>` names a connection, `u<address port>` a
 * UDP source. Each is signed with an HMAC under the install's secret (RFC 5626 §5.2 asks that
 * a token "cannot be guessed or forged"): a request naming a token we did not mint is not
 * routed by it, so nobody can steer the gateway to an address of their choosing.
 * Pure: the key is given.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Destination, TransportKind } from '../sip/transport/types.js';

/** 12 bytes of HMAC-SHA256: 96 bits, far beyond guessing within a token's lifetime. */
const MAC_BYTES = 12;
const MAC_CHARS = 16; // base64url of 12 bytes

export class FlowTokens {
  constructor(private readonly key: Buffer) {
    if (key.length < 16) throw new Error('flow token key must have at least 16 bytes');
  }

  /** The token naming how to reach `dest`, or null for a destination that needs none. */
  mint(dest: Destination): string | null {
    let body: string;
    if (dest.flowId && dest.transport !== 'udp') body = 'w' + dest.flowId;
    else if (dest.transport === 'udp') body = 'u' + Buffer.from(`${dest.address} ${dest.port}`).toString('base64url');
    else return null;
    return body + '.' + this.mac(body);
  }

  /**
   * The destination a token names, if we minted it; `flowTransport` is the kind of the
   * interface its Record-Route was written for. Null for anything forged or malformed.
   */
  read(token: string, flowTransport: TransportKind): Destination | null {
    const dot = token.lastIndexOf('.');
    if (dot < 2 || token.length - dot - 1 !== MAC_CHARS) return null;
    const body = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const want = Buffer.from(this.mac(body), 'base64url');
    if (given.length !== want.length || !timingSafeEqual(given, want)) return null;
    if (body.startsWith('w')) return { transport: flowTransport, address: '', port: 0, flowId: body.slice(1) };
    if (body.startsWith('u')) {
      const m = /^([0-9a-fA-F.:]+) (\d{1,5})$/.exec(Buffer.from(body.slice(1), 'base64url').toString());
      if (!m) return null;
      return { transport: 'udp', address: m[1]!, port: Number(m[2]) };
    }
    return null;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest().subarray(0, MAC_BYTES).toString('base64url');
  }
}
