/**
 * The numeric codes of a tap's `error` events, one table for every dialect. Codes 1-11 are
 * those of mod_audio_stream's WebSocket client (its libwsc `ErrorCode`), so event consumers
 * written for it read ours unchanged; codes from 100 up are ours (what a gateway in the
 * middle of a call must also report). Every code is documented here, and a unit test checks
 * that each one has its line.
 *
 *   code | name                 | when
 *   -----|----------------------|------------------------------------------------------------
 *      1 | IO                   | the connection failed after it was open (reset, broken pipe,
 *        |                      | the server vanished mid-frame: close 1006)
 *      2 | INVALID_HEADER       | the opening handshake's answer is not a valid 101 (an HTTP
 *        |                      | error status, a bad Sec-WebSocket-Accept, a subprotocol)
 *      3 | SERVER_MASKED        | the server sent a masked frame (RFC 6455 §5.1)
 *      4 | NOT_SUPPORTED        | an extension, opcode or RSV bit we did not negotiate
 *      5 | PING_TIMEOUT         | no pong (nor any other frame) within the heartbeat timeout
 *      6 | CONNECT_FAILED       | TCP connect or name resolution failed (refused, unreachable)
 *      7 | TLS_INIT_FAILED      | the TLS options could not be loaded (CA, cert or key file)
 *      8 | SSL_HANDSHAKE_FAILED | TLS handshake or certificate check failed (untrusted CA,
 *        |                      | expired, hostname mismatch)
 *      9 | SSL_ERROR            | a TLS error after the handshake
 *     10 | TIMEOUT              | the server accepted TCP but never finished the handshake
 *     11 | PROTOCOL             | any other violation of RFC 6455 (invalid UTF-8, bad close
 *        |                      | code, fragmented control frame...)
 *    100 | MESSAGE_TOO_BIG      | one message larger than `maxMessageBytes`
 *    101 | BAD_MESSAGE          | a message we understood but cannot play (bad base64, unknown
 *        |                      | audioDataType, an mp3/ogg/wav that does not decode)
 *    102 | PLAYBACK_OVERFLOW    | audio beyond the playout queue's cap (`maxQueuedMs`): the
 *        |                      | excess is dropped
 *    103 | SLOW_SERVER          | the server does not read: outgoing frames are dropped while
 *        |                      | its send buffer is over `maxBufferedBytes`
 *    104 | MEDIA                | the call's media could not be tapped (no media anchored, the
 *        |                      | call ended before it was answered, no codec we decode)
 *    105 | RECONNECT_GAVE_UP    | reconnection stopped after `reconnect.maxAttempts`
 *    106 | WORKER_DIED          | the tap's worker thread died: the tap ended (the call goes on)
 *    107 | OVERLOADED           | admission control refused the tap: the gateway's taps
 *        |                      | (`taps.maxTaps`), every thread's (`taps.maxPerThread`) or
 *        |                      | the threads' load (`taps.maxLoad`) are at their limit; the
 *        |                      | HTTP API answers 503 {error: "unavailable", code: 107}
 */

export const TapErrorCode = {
  IO: 1,
  INVALID_HEADER: 2,
  SERVER_MASKED: 3,
  NOT_SUPPORTED: 4,
  PING_TIMEOUT: 5,
  CONNECT_FAILED: 6,
  TLS_INIT_FAILED: 7,
  SSL_HANDSHAKE_FAILED: 8,
  SSL_ERROR: 9,
  TIMEOUT: 10,
  PROTOCOL: 11,
  MESSAGE_TOO_BIG: 100,
  BAD_MESSAGE: 101,
  PLAYBACK_OVERFLOW: 102,
  SLOW_SERVER: 103,
  MEDIA: 104,
  RECONNECT_GAVE_UP: 105,
  WORKER_DIED: 106,
  OVERLOADED: 107,
} as const;

export type TapErrorName = keyof typeof TapErrorCode;
export type TapErrorCodeValue = (typeof TapErrorCode)[TapErrorName];

const NAMES = new Map<number, TapErrorName>(Object.entries(TapErrorCode).map(([k, v]) => [v, k as TapErrorName]));

export function errorName(code: number): TapErrorName | undefined {
  return NAMES.get(code);
}

/** An error with a code from the table, as carried by `error` events. */
export class TapError extends Error {
  override readonly name = 'TapError';
  constructor(
    readonly code: TapErrorCodeValue,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Node TLS error codes that mean "the peer's certificate was not accepted". */
const CERT_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT']);

/**
 * The code for an error the `ws` client (or the socket under it) reported. `opened`: the
 * handshake had completed; `tls`: the URL is wss.
 */
export function classifySocketError(err: Error & { code?: string }, opened: boolean, tls: boolean): TapErrorCodeValue {
  const code = err.code ?? '';
  const msg = err.message ?? '';
  // frame-level errors of ws's Receiver (RFC 6455 violations)
  if (code === 'WS_ERR_UNEXPECTED_MASK') return TapErrorCode.SERVER_MASKED;
  if (code === 'WS_ERR_UNEXPECTED_RSV_1' || code === 'WS_ERR_UNEXPECTED_RSV_2_3' || code === 'WS_ERR_INVALID_OPCODE') return TapErrorCode.NOT_SUPPORTED;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH') return TapErrorCode.MESSAGE_TOO_BIG;
  if (code.startsWith('WS_ERR_')) return TapErrorCode.PROTOCOL;
  // the opening handshake
  if (/Opening handshake has timed out/i.test(msg)) return TapErrorCode.TIMEOUT;
  if (/extension/i.test(msg) && /Sec-WebSocket-Extensions|extension/i.test(msg)) return TapErrorCode.NOT_SUPPORTED;
  if (/Unexpected server response|Sec-WebSocket|subprotocol|Invalid Upgrade|Invalid status/i.test(msg)) return TapErrorCode.INVALID_HEADER;
  // TLS
  if (CERT_ERRORS.has(code) || /certificate|altnames|Hostname\/IP does not match/i.test(msg)) return TapErrorCode.SSL_HANDSHAKE_FAILED;
  if (tls && (code.startsWith('ERR_SSL') || code === 'EPROTO' || /SSL|TLS|handshake/i.test(msg))) {
    return opened ? TapErrorCode.SSL_ERROR : TapErrorCode.SSL_HANDSHAKE_FAILED;
  }
  if (!opened && CONNECT_ERRORS.has(code)) return TapErrorCode.CONNECT_FAILED;
  if (!opened && tls && (code === 'ECONNRESET' || /socket hang up/i.test(msg))) return TapErrorCode.SSL_HANDSHAKE_FAILED;
  if (!opened) return TapErrorCode.CONNECT_FAILED;
  return TapErrorCode.IO;
}
