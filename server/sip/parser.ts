/**
 * Bytes to SIP messages (RFC 3261 §7, §18.3), then the checks a proxy makes before it acts
 * (§16.3 step 1). Pure: no I/O. Anything wrong comes back as a SipParseError, never a throw,
 * along with as much of a request as a 400 reply needs (RFC 4475 §3.1.2).
 */
import { SipParseError } from './errors.js';
import { isDigits, isToken, isWord, splitList } from './grammar.js';
import { headerKey, LIST_VALUED, SINGLE_VALUED } from './headers.js';
import { SipRequest, SipResponse, type Header, type SipMessageAny } from './message.js';

export type ParseResult =
  | { kind: 'message'; message: SipMessageAny }
  /** `request` is set when enough of a request was read to reply to it */
  | { kind: 'error'; error: SipParseError; request: SipRequest | null }
  /** CRLF keep-alives (RFC 5626 §4.4.1) and empty datagrams */
  | { kind: 'keepalive' };

const EMPTY = Buffer.alloc(0);

/**
 * Parses one message from a datagram or a WebSocket message (message-framed transports:
 * RFC 3261 §18.3, RFC 7118 §5). Octets after Content-Length are ignored (RFC 4475 dblreq);
 * a Content-Length longer than what arrived is an error (clerr).
 */
export function parseMessage(buf: Buffer): ParseResult {
  let start = 0;
  while (start < buf.length && (buf[start] === 13 || buf[start] === 10)) start++;
  if (start >= buf.length) return { kind: 'keepalive' };
  let headEnd = buf.indexOf('\r\n\r\n', start, 'latin1');
  let sepLen = 4;
  if (headEnd < 0) {
    headEnd = buf.indexOf('\n\n', start, 'latin1');
    sepLen = 2;
  }
  if (headEnd < 0) {
    // No blank line: the whole datagram is headers (tolerated: some senders omit it when
    // there is no body).
    headEnd = buf.length;
    sepLen = 0;
  }
  const head = buf.toString('latin1', start, headEnd);
  let msg: SipMessageAny;
  let lineError: SipParseError | null;
  try {
    ({ msg, lineError } = parseHead(head));
  } catch (e) {
    return { kind: 'error', error: asParseError(e), request: null };
  }
  const request = msg instanceof SipRequest ? msg : null;
  if (lineError) return { kind: 'error', error: lineError, request };
  try {
    const bodyStart = Math.min(headEnd + sepLen, buf.length);
    const available = buf.length - bodyStart;
    const cl = msg.getAll('content-length');
    let length = available;
    if (cl.length > 1) throw new SipParseError('more than one Content-Length');
    if (cl.length === 1) {
      const v = cl[0]!.trim();
      if (!isDigits(v)) throw new SipParseError('bad Content-Length');
      length = Number(v);
      if (length > available) throw new SipParseError('Content-Length larger than the message');
    }
    msg.body = length === 0 ? EMPTY : buf.subarray(bodyStart, bodyStart + length);
    validate(msg);
  } catch (e) {
    return { kind: 'error', error: asParseError(e), request };
  }
  return { kind: 'message', message: msg };
}

function asParseError(e: unknown): SipParseError {
  if (e instanceof SipParseError) return e;
  return new SipParseError(e instanceof Error ? e.message : String(e));
}

/**
 * Start line and headers; header lines unfolded (RFC 3261 §7.3.1). Only an unreadable start
 * line throws: a broken header is reported after the others are read, so that a request
 * still gets its 400 with the headers a reply copies.
 */
function parseHead(head: string): { msg: SipMessageAny; lineError: SipParseError | null } {
  let eol = head.indexOf('\n');
  if (eol < 0) eol = head.length;
  const first = head.charCodeAt(eol - 1) === 13 ? head.slice(0, eol - 1) : head.slice(0, eol);
  const start = parseStartLine(first);
  const msg = start.msg;
  let lineError = start.lineError;
  const headers = msg.headers;
  let pos = eol + 1;
  let pendingName = '';
  let pendingValue = '';
  const flush = (): void => {
    if (pendingName === '') return;
    const name = pendingName;
    const key = headerKey(name);
    const value = pendingValue.trim();
    pendingName = '';
    if (LIST_VALUED.has(key) && value.indexOf(',') >= 0) {
      let parts: string[] = [];
      try {
        parts = splitList(value);
        if (parts.some((p) => p.length === 0)) throw new SipParseError(`empty element in ${key}`);
      } catch (e) {
        lineError ??= asParseError(e);
        parts = [value];
      }
      for (const part of parts) headers.push({ key, name, value: part });
    } else {
      headers.push({ key, name, value });
    }
  };
  while (pos < head.length) {
    let end = head.indexOf('\n', pos);
    if (end < 0) end = head.length;
    const line = head.charCodeAt(end - 1) === 13 ? head.slice(pos, end - 1) : head.slice(pos, end);
    pos = end + 1;
    if (line.length === 0) continue;
    const c0 = line.charCodeAt(0);
    if (c0 === 32 || c0 === 9) {
      // folded continuation: LWS = [*WSP CRLF] 1*WSP, replaced by one SP
      if (pendingName === '') lineError ??= new SipParseError('continuation line without a header');
      pendingValue += ' ' + line.trim();
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trimEnd() : '';
    if (!isToken(name)) {
      lineError ??= new SipParseError('bad header line');
      continue;
    }
    pendingName = name;
    pendingValue = line.slice(colon + 1);
  }
  flush();
  return { msg, lineError };
}

/**
 * A request with a wrong SIP version still has its headers read, so that it can get its
 * 505 (RFC 4475 badvers): the version error is returned, not thrown.
 */
function parseStartLine(line: string): { msg: SipMessageAny; lineError: SipParseError | null } {
  if (line.startsWith('SIP/')) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)
    const sp1 = line.indexOf(' ');
    const version = sp1 < 0 ? line : line.slice(0, sp1);
    if (version !== 'SIP/2.0') throw new SipParseError('unsupported SIP version', 505);
    const codeText = line.slice(sp1 + 1, sp1 + 4);
    const after = line.charCodeAt(sp1 + 4);
    if (!/^[1-6]\d\d$/.test(codeText) || (line.length > sp1 + 4 && after !== 32)) {
      throw new SipParseError('bad status code');
    }
    return { msg: new SipResponse(Number(codeText), line.slice(sp1 + 5), []), lineError: null };
  }
  // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly single spaces.
  const parts = line.split(' ');
  const method = parts[0]!;
  if (!isToken(method) || parts.length < 3) throw new SipParseError('malformed Request-Line');
  if (parts.length !== 3) {
    // extra spaces (RFC 4475 lwsstart, trws, lwsruri): still a request we can answer 400
    return { msg: new SipRequest(method, parts.find((p, i) => i > 0 && p.length > 0) ?? '', []), lineError: new SipParseError('malformed Request-Line') };
  }
  const [, uri, version] = parts as [string, string, string];
  const msg = new SipRequest(method, uri, []);
  let lineError: SipParseError | null = null;
  if (!/^SIP\/\d+\.\d+$/i.test(version)) lineError = new SipParseError('malformed SIP version');
  else if (version.toUpperCase() !== 'SIP/2.0') lineError = new SipParseError('SIP version not supported', 505);
  return { msg, lineError };
}

/** The checks of §16.3 step 1 and §8.2 that every request and response must pass. */
function validate(msg: SipMessageAny): void {
  for (const key of SINGLE_VALUED) {
    let n = 0;
    for (const h of msg.headers) if (h.key === key) n++;
    if (n > 1) throw new SipParseError(`more than one ${key} header`);
  }
  msg.via();
  const callId = msg.callId().trim();
  const at = callId.indexOf('@');
  if (at >= 0 ? !(isWord(callId.slice(0, at)) && isWord(callId.slice(at + 1))) : !isWord(callId)) {
    throw new SipParseError('bad Call-ID');
  }
  const cseq = msg.cseq();
  msg.from();
  msg.to();
  if (msg instanceof SipRequest) {
    if (cseq.method !== msg.method) throw new SipParseError('CSeq method does not match the request');
    const uri = msg.requestUri();
    // RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 escruri)
    if (uri.headers !== null) throw new SipParseError('Request-URI with headers');
    const mf = msg.get('max-forwards');
    if (mf !== undefined && !(isDigits(mf) && Number(mf) <= 255)) throw new SipParseError('bad Max-Forwards');
  }
}

export function headerList(pairs: [string, string][]): Header[] {
  return pairs.map(([name, value]) => ({ key: headerKey(name), name, value }));
}
