/** A message that is not valid SIP; `status` is the reply a request gets (RFC 3261 §21.4). */
export class SipParseError extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
    this.name = 'SipParseError';
  }
}

/** An error that ends a request with a SIP final response (drachtio-srf's SipError). */
export class SipError extends Error {
  constructor(readonly status: number, readonly reason: string, readonly headers: [string, string][] = []) {
    super(`${status} ${reason}`);
    this.name = 'SipError';
  }
}
