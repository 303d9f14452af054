/**
 * A bare SIP endpoint over UDP for tests: sends raw messages and collects what comes back,
 * so a test can assert on the exact response a request got.
 */
import dgram from 'node:dgram';
import { headerKey } from '../../server/sip/headers.js';
import { SipResponse, type SipMessageAny } from '../../server/sip/message.js';
import { parseMessage } from '../../server/sip/parser.js';

/**
 * Responses to broken requests copy their broken headers (RFC 3261 §8.2.6.2 says copy), so a
 * strict parse may fail: read the status line and raw headers then.
 */
function lenientResponse(buf: Buffer): SipResponse | null {
  const text = buf.toString('latin1');
  const m = /^SIP\/2\.0 (\d{3}) ?([^\r\n]*)\r?\n/.exec(text);
  if (!m) return null;
  const head = text.slice(m[0].length).split(/\r?\n\r?\n/)[0] ?? '';
  const headers = head.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => {
    const i = l.indexOf(':');
    const name = l.slice(0, i).trim();
    return { key: headerKey(name), name, value: l.slice(i + 1).trim() };
  });
  return new SipResponse(Number(m[1]), m[2] ?? '', headers);
}

export class UdpSipClient {
  private readonly socket = dgram.createSocket('udp4');
  readonly received: SipMessageAny[] = [];
  private waiters: (() => void)[] = [];

  /** the loopback address it is bound to */
  address = '127.0.0.1';

  static async open(address = '127.0.0.1'): Promise<UdpSipClient> {
    const c = new UdpSipClient();
    c.address = address;
    await new Promise<void>((r) => c.socket.bind(0, address, () => r()));
    c.socket.on('message', (buf) => {
      const p = parseMessage(buf);
      if (p.kind === 'message') c.received.push(p.message);
      else {
        const r = lenientResponse(buf);
        if (r) c.received.push(r);
      }
      for (const w of c.waiters.splice(0)) w();
    });
    return c;
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(text: string | Buffer, port: number, host = '127.0.0.1'): void {
    const buf = typeof text === 'string' ? Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1') : text;
    this.socket.send(buf, port, host);
  }

  /** The first message satisfying `match` (already received or arriving within timeoutMs). */
  async waitFor(match: (m: SipMessageAny) => boolean, timeoutMs = 5000): Promise<SipMessageAny> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      const left = end - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a SIP message');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The final response to the request with this Call-ID and CSeq method. */
  async finalResponse(callId: string, method = 'INVITE', timeoutMs = 5000): Promise<SipResponse> {
    const isIt = (m: SipMessageAny): boolean =>
      !m.isRequest() && (m as SipResponse).status >= 200 && m.get('call-id') === callId && (m.get('cseq') ?? '').trim().endsWith(method);
    return (await this.waitFor(isIt, timeoutMs)) as SipResponse;
  }

  close(): void {
    this.socket.close();
  }
}

let seq = 0;

/** A minimal valid request from `client` to `port` (edit the text for variations). */
export function request(method: string, ruri: string, client: UdpSipClient, opts: { callId?: string; headers?: string[]; body?: string; toTag?: string } = {}): { text: string; callId: string } {
  const callId = opts.callId ?? `test-${process.pid}-${++seq}@127.0.0.1`;
  const body = opts.body ?? '';
  const lines = [
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${client.address}:${client.port};branch=z9hG4bK-t${seq}-${Date.now()};rport`,
    'Max-Forwards: 70',
    `From: <sip:tester@127.0.0.1>;tag=t${seq}`,
    `To: <${ruri}>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:tester@${client.address}:${client.port}>`,
    ...(opts.headers ?? []),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ];
  return { text: lines.join('\r\n'), callId };
}
