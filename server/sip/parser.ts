/**
 * Bytes to SIP messages (RFC 3261 §7, §18.3), then the checks a proxy makes before it acts
 * (§16.3 step 1). Pure: no I/O. Anything wrong comes back as a SipParseError, never a throw,
 * along with as much of a request as a 400 reply needs (RFC 4475 §3.1.2).
 */
import { SipParseError } from './errors.js';
import { isDigits, isJsSpace, isTokenRange, isWordRange, splitList, trimmedSlice } from './grammar.js';
import { headerKey, headerNameAt, LIST_VALUED, SINGLE_VALUED, type HeaderName } from './headers.js';
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
  // One latin1 decode of the whole message: the head is scanned in place, by index, and the
  // body stays a view of the buffer. `text` index i is buffer index start + i.
  const text = buf.toString('latin1', start);
  let headEnd = text.indexOf('\r\n\r\n');
  let sepLen = 4;
  if (headEnd < 0) {
    headEnd = text.indexOf('\n\n');
    sepLen = 2;
  }
  if (headEnd < 0) {
    // No blank line: the whole datagram is headers (tolerated: some senders omit it when
    // there is no body).
    headEnd = text.length;
    sepLen = 0;
  }
  let head: Head;
  try {
    head = parseHead(text, headEnd);
  } catch (e) {
    return { kind: 'error', error: asParseError(e), request: null };
  }
  const msg = head.msg;
  const request = msg instanceof SipRequest ? msg : null;
  if (head.lineError) return { kind: 'error', error: head.lineError, request };
  try {
    const bodyStart = Math.min(start + headEnd + sepLen, buf.length);
    const available = buf.length - bodyStart;
    let length = available;
    if (head.contentLengths > 1) throw new SipParseError('more than one Content-Length');
    if (head.contentLengths === 1) {
      const v = msg.get('content-length')!.trim();
      if (!isDigits(v)) throw new SipParseError('bad Content-Length');
      length = Number(v);
      if (length > available) throw new SipParseError('Content-Length larger than the message');
    }
    msg.body = length === 0 ? EMPTY : buf.subarray(bodyStart, bodyStart + length);
    validate(msg, head.duplicate);
  } catch (e) {
    return { kind: 'error', error: asParseError(e), request };
  }
  return { kind: 'message', message: msg };
}

function asParseError(e: unknown): SipParseError {
  if (e instanceof SipParseError) return e;
  return new SipParseError(e instanceof Error ? e.message : String(e));
}

interface Head {
  msg: SipMessageAny;
  lineError: SipParseError | null;
  /** how many Content-Length headers */
  contentLengths: number;
  /** the first SINGLE_VALUED key (in that set's order) that came more than once, or null */
  duplicate: string | null;
}

/** The SINGLE_VALUED keys in order, each with its bit in the masks parseHead keeps. */
const SINGLE_ORDER = [...SINGLE_VALUED];

/** 1 << (index of `key` in SINGLE_VALUED), or 0: a switch, every header of every message asks. */
function singleBit(key: string): number {
  switch (key) {
    case 'call-id': return 1;
    case 'cseq': return 2;
    case 'from': return 4;
    case 'to': return 8;
    case 'max-forwards': return 16;
    case 'content-length': return 32;
    case 'content-type': return 64;
    case 'expires': return 128;
    default: return 0;
  }
}

/** LIST_VALUED.has(key), as a switch. */
function isListValued(key: string): boolean {
  return key === 'via' || key === 'contact' || key === 'route' || key === 'record-route';
}

// the switches above spell out the two sets of headers.ts: they must say the same
for (const key of SINGLE_VALUED) if (singleBit(key) !== 1 << SINGLE_ORDER.indexOf(key)) throw new Error(`singleBit is missing ${key}`);
if (SINGLE_VALUED.size !== 8 || LIST_VALUED.size !== 4 || ![...LIST_VALUED].every(isListValued)) throw new Error('parser.ts: update singleBit / isListValued');

/**
 * Start line and headers of `s` up to `end`, header lines unfolded (RFC 3261 §7.3.1). Only an
 * unreadable start line throws: a broken header is reported after the others are read, so
 * that a request still gets its 400 with the headers a reply copies.
 *
 * Lines and values are found by index and each value is sliced once, already trimmed; only a
 * folded header (rare) is built up as a string. `line` below means [ls, le): the text between
 * two LFs, without one trailing CR.
 */
function parseHead(s: string, end: number): Head {
  let eol = s.indexOf('\n');
  if (eol < 0 || eol > end) eol = end;
  const start = parseStartLine(s, eol > 0 && s.charCodeAt(eol - 1) === 13 ? eol - 1 : eol);
  const msg = start.msg;
  const headers = msg.headers;
  let lineError = start.lineError;
  let seen = 0;
  let repeated = 0;
  let contentLengths = 0;
  // the header being read: name, key, value bounds, and the value text once folded
  let pending: HeaderName | null = null;
  let valueStart = 0;
  let valueEnd = 0;
  let folded: string | null = null;
  let pos = eol + 1;
  for (;;) {
    let ls = -1;
    let le = -1;
    if (pos < end) {
      ls = pos;
      let lf = s.indexOf('\n', pos);
      if (lf < 0 || lf > end) lf = end;
      pos = lf + 1;
      le = s.charCodeAt(lf - 1) === 13 ? lf - 1 : lf;
      if (le <= ls) continue;
      const c0 = s.charCodeAt(ls);
      if (c0 === 32 || c0 === 9) {
        // folded continuation: LWS = [*WSP CRLF] 1*WSP, replaced by one SP
        if (pending === null) lineError ??= new SipParseError('continuation line without a header');
        else folded = (folded ?? s.slice(valueStart, valueEnd)) + ' ' + trimmedSlice(s, ls, le);
        continue;
      }
    }
    // a header line, or the end: the pending header is complete
    if (pending !== null) {
      const key = pending.key;
      const value = folded !== null ? folded.trim() : trimmedSlice(s, valueStart, valueEnd);
      const bit = singleBit(key);
      if (bit !== 0) {
        if ((seen & bit) !== 0) repeated |= bit;
        seen |= bit;
        if (bit === 32) contentLengths++;
      }
      if (isListValued(key) && value.indexOf(',') >= 0) {
        let parts: string[];
        try {
          parts = splitList(value);
          if (parts.some((p) => p.length === 0)) throw new SipParseError(`empty element in ${key}`);
        } catch (e) {
          lineError ??= asParseError(e);
          parts = [value];
        }
        for (const part of parts) headers.push({ key, name: pending.name, value: part });
      } else {
        headers.push({ key, name: pending.name, value });
      }
      pending = null;
      folded = null;
    }
    if (ls < 0) break;
    const colon = s.indexOf(':', ls);
    // the name: what precedes the colon, trailing white space removed, all token chars
    let nameEnd = colon >= ls && colon < le ? colon : ls;
    while (nameEnd > ls && isJsSpace(s.charCodeAt(nameEnd - 1))) nameEnd--;
    if (!isTokenRange(s, ls, nameEnd)) {
      lineError ??= new SipParseError('bad header line');
      continue;
    }
    pending = headerNameAt(s, ls, nameEnd);
    valueStart = colon + 1;
    valueEnd = le;
  }
  let duplicate: string | null = null;
  if (repeated !== 0) {
    for (let b = 0; b < SINGLE_ORDER.length; b++) {
      if ((repeated & (1 << b)) !== 0) {
        duplicate = SINGLE_ORDER[b]!;
        break;
      }
    }
  }
  return { msg, lineError, contentLengths, duplicate };
}

/**
 * The start line is s[0, le). A request with a wrong SIP version still has its headers read,
 * so that it can get its 505 (RFC 4475 badvers): the version error is returned, not thrown.
 */
function parseStartLine(s: string, le: number): { msg: SipMessageAny; lineError: SipParseError | null } {
  if (s.startsWith('SIP/')) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)
    const line = s.slice(0, le);
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
  let sp1 = s.indexOf(' ');
  if (sp1 >= le) sp1 = -1;
  let sp2 = sp1 < 0 ? -1 : s.indexOf(' ', sp1 + 1);
  if (sp2 >= le) sp2 = -1;
  if (sp2 < 0 || !isTokenRange(s, 0, sp1)) throw new SipParseError('malformed Request-Line');
  const method = s.slice(0, sp1);
  const sp3 = s.indexOf(' ', sp2 + 1);
  if (sp3 >= 0 && sp3 < le) {
    // extra spaces (RFC 4475 lwsstart, trws, lwsruri): still a request we can answer 400
    const parts = s.slice(0, le).split(' ');
    return { msg: new SipRequest(method, parts.find((p, i) => i > 0 && p.length > 0) ?? '', []), lineError: new SipParseError('malformed Request-Line') };
  }
  const msg = new SipRequest(method, s.slice(sp1 + 1, sp2), []);
  let lineError: SipParseError | null = null;
  if (!(le - sp2 === 8 && s.startsWith('SIP/2.0', sp2 + 1))) {
    const version = s.slice(sp2 + 1, le);
    if (!/^SIP\/\d+\.\d+$/i.test(version)) lineError = new SipParseError('malformed SIP version');
    else if (version.toUpperCase() !== 'SIP/2.0') lineError = new SipParseError('SIP version not supported', 505);
  }
  return { msg, lineError };
}

/** The checks of §16.3 step 1 and §8.2 that every request and response must pass. */
function validate(msg: SipMessageAny, duplicate: string | null): void {
  if (duplicate !== null) throw new SipParseError(`more than one ${duplicate} header`);
  msg.via();
  const callId = msg.callId();
  let from = 0;
  let to = callId.length;
  while (from < to && isJsSpace(callId.charCodeAt(from))) from++;
  while (to > from && isJsSpace(callId.charCodeAt(to - 1))) to--;
  const at = callId.indexOf('@', from);
  if (at >= 0 && at < to ? !(isWordRange(callId, from, at) && isWordRange(callId, at + 1, to)) : !isWordRange(callId, from, to)) {
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
