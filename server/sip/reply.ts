/** Responses built from requests (RFC 3261 §8.2.6). Pure. */
import { isJsSpace } from './grammar.js';
import { displayName } from './headers.js';
import { newTag } from './ids.js';
import { SipResponse, type Header, type SipRequest } from './message.js';

const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  200: 'OK', 202: 'Accepted', 300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout', 410: 'Gone',
  413: 'Request Entity Too Large', 415: 'Unsupported Media Type', 416: 'Unsupported URI Scheme',
  420: 'Bad Extension', 421: 'Extension Required', 423: 'Interval Too Brief',
  480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected',
  483: 'Too Many Hops', 484: 'Address Incomplete', 486: 'Busy Here', 487: 'Request Terminated',
  488: 'Not Acceptable Here', 491: 'Request Pending', 500: 'Server Internal Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Server Time-out',
  505: 'Version Not Supported', 513: 'Message Too Large', 600: 'Busy Everywhere', 603: 'Decline',
  604: 'Does Not Exist Anywhere', 606: 'Not Acceptable',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status < 200 ? 'Progress' : status < 300 ? 'OK' : 'Error');
}

export const SERVER_NAME = 'sip-webrtc-gateway';

export interface ReplyOptions {
  reason?: string;
  /**
   * To tag of a response we originate (§8.2.6.2: a UAS MUST add one when the request has
   * none); default: a fresh tag. null: leave To as it is.
   */
  toTag?: string | null;
  headers?: [string, string][];
  body?: Buffer;
  contentType?: string;
}

/** The Server header of everything we answer (shared: headers are never changed in place). */
const SERVER_HEADER: Header = { key: 'server', name: 'Server', value: SERVER_NAME };

/** Option header names (`Contact`, `WWW-Authenticate`...) -> stored key and written name. */
const optionNames = new Map<string, { key: string; name: string }>();

function optionName(name: string): { key: string; name: string } {
  let n = optionNames.get(name);
  if (n === undefined) {
    const key = name.toLowerCase();
    n = { key, name: displayName(key) };
    if (optionNames.size < 1000) optionNames.set(name, n);
  }
  return n;
}

/** Does a To value carry a tag parameter: /;\s*tag\s*=/i, the test §8.2.6.2 needs, by hand. */
function hasTagParam(v: string): boolean {
  for (let i = v.indexOf(';'); i >= 0; i = v.indexOf(';', i + 1)) {
    let j = i + 1;
    while (isJsSpace(v.charCodeAt(j))) j++;
    if ((v.charCodeAt(j) | 32) !== 116 || (v.charCodeAt(j + 1) | 32) !== 97 || (v.charCodeAt(j + 2) | 32) !== 103) continue;
    j += 3;
    while (isJsSpace(v.charCodeAt(j))) j++;
    if (v.charCodeAt(j) === 61) return true;
  }
  return false;
}

/**
 * A response to `req`: Via, From, To, Call-ID and CSeq copied (§8.2.6.2), Timestamp echoed
 * in a 100 (§8.2.6.1). Works on requests that failed validation too: it copies raw values.
 */
export function makeResponse(req: SipRequest, status: number, opts: ReplyOptions = {}): SipResponse {
  const headers: Header[] = [];
  for (const h of req.headers) {
    switch (h.key) {
      case 'via':
      case 'from':
      case 'call-id':
      case 'cseq':
        // compact forms (v, f, i) are written out in full in what we send
        headers.push(h.name.length === 1 ? { key: h.key, name: displayName(h.key), value: h.value } : h);
        break;
      case 'to': {
        let value = h.value;
        if (opts.toTag !== null && status > 100 && !hasTagParam(value)) value += ';tag=' + (opts.toTag ?? newTag());
        headers.push({ key: 'to', name: 'To', value });
        break;
      }
      case 'timestamp':
        if (status === 100) headers.push({ key: h.key, name: 'Timestamp', value: h.value });
        break;
    }
  }
  headers.push(SERVER_HEADER);
  if (opts.headers !== undefined) {
    for (const [name, value] of opts.headers) {
      const n = optionName(name);
      headers.push({ key: n.key, name: n.name, value });
    }
  }
  const res = new SipResponse(status, opts.reason ?? reasonPhrase(status), headers, opts.body);
  if (opts.body && opts.body.length > 0 && opts.contentType) res.set('content-type', opts.contentType);
  return res;
}
