/**
 * name-addr / addr-spec with header parameters: From, To, Contact, Route, Record-Route,
 * Refer-To (RFC 3261 §20.10, §25.1).
 */
import { SipParseError } from './errors.js';
import { formatParams, isJsSpace, isTokenChar, isWs, parseParams, quote, scanQuoted, skipWs, unquote, type Params } from './grammar.js';
import { formatUri, parseUri, type SipUri } from './uri.js';

export interface NameAddr {
  /** display name, unquoted; null when absent */
  display: string | null;
  uri: SipUri;
  /** the URI text as written (between the angle brackets) */
  uriText: string;
  params: Params;
}

/** isDisplayTokens: only token characters and SP/HTAB in `value` from `from` to `to`. */
function isDisplayTokens(value: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = value.charCodeAt(i);
    if (!isTokenChar(c) && !isWs(c)) return false;
  }
  return true;
}

/** A character that /[,?\s]/ matches: not allowed in a URI outside angle brackets. */
function isCommaQuestionOrSpace(c: number): boolean {
  return c === 44 || c === 63 || isJsSpace(c);
}

export function parseNameAddr(value: string): NameAddr {
  let i = skipWs(value, 0);
  let display: string | null = null;
  let uriText: string;
  if (value.charCodeAt(i) === 34) {
    const end = scanQuoted(value, i);
    display = unquote(value.slice(i, end));
    i = skipWs(value, end);
    if (value.charCodeAt(i) !== 60) throw new SipParseError('display name without <URI>');
  }
  const lt = value.charCodeAt(i) === 60 ? i : value.indexOf('<', i);
  if (lt >= 0 && (display !== null || isDisplayTokens(value, i, lt))) {
    if (display === null && lt > i) {
      const d = value.slice(i, lt).trim().replace(/\s+/g, ' ');
      display = d.length > 0 ? d : null;
    }
    const gt = value.indexOf('>', lt + 1);
    if (gt < 0) throw new SipParseError('unterminated <URI>');
    uriText = value.slice(lt + 1, gt);
    i = gt + 1;
  } else {
    // addr-spec form: the URI ends at the first ';', and may not hold ',', ';' or '?'
    // (RFC 3261 §20: such URIs MUST be enclosed in angle brackets).
    let end = value.indexOf(';', i);
    if (end < 0) end = value.length;
    let uriEnd = end;
    while (uriEnd > i && isJsSpace(value.charCodeAt(uriEnd - 1))) uriEnd--;
    for (let k = i; k < uriEnd; k++) {
      if (isCommaQuestionOrSpace(value.charCodeAt(k))) throw new SipParseError('URI with , ? or spaces must be in <>');
    }
    uriText = value.slice(i, uriEnd);
    i = end;
  }
  const uri = parseUri(uriText);
  const params: Params = new Map();
  if (i < value.length) {
    i = parseParams(value, i, params, false);
    if (i < value.length) throw new SipParseError('trailing characters after address');
  }
  return { display, uri, uriText, params };
}

export function formatNameAddr(a: { display?: string | null; uri: SipUri | string; params?: Params }): string {
  const uri = typeof a.uri === 'string' ? a.uri : formatUri(a.uri);
  const display = a.display ? quote(a.display) + ' ' : '';
  return `${display}<${uri}>${a.params ? formatParams(a.params) : ''}`;
}

/** The `tag` parameter of From/To, or null. */
export function tagOf(a: NameAddr): string | null {
  return a.params.get('tag') ?? null;
}
