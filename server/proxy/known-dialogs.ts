/**
 * Which in-dialog requests the proxy relays: only those of dialogs established through it
 * (Kamailio's is_known_dlg()). The proxy tells this class what it forwards and what comes
 * back; it keeps the dialog identities in a bounded DialogSet:
 *   - INVITE: an early dialog per provisional response with a To tag (until the INVITE could
 *     no longer ring, Timer C), confirmed by a 2xx for `dialogTimeout`, refreshed by every
 *     in-dialog request, forgotten when a BYE gets its final response.
 *   - SUBSCRIBE / REFER (RFC 6665): by the subscriber's tag from the moment the request is
 *     forwarded (a NOTIFY may overtake the 2xx), for the subscription's Expires once a 2xx
 *     came (REFER's implicit subscription: `dialogTimeout`), forgotten on a failure or on a
 *     NOTIFY saying the subscription is terminated.
 */
import type { SipRequest, SipResponse } from '../sip/message.js';
import { DialogSet } from './dialog-set.js';

export interface KnownDialogsOptions {
  /** ms a confirmed dialog lives without any in-dialog request (refreshed by each) */
  dialogTimeout: number;
  /** ms an early dialog (a ringing INVITE) lives: Timer C */
  earlyTimeout: number;
  /** ms a forwarded SUBSCRIBE/REFER waits for its answer (Timer F) */
  pendingTimeout: number;
  /** most dialogs kept */
  max: number;
  now?: () => number;
}

const SUBSCRIPTION = new Set(['SUBSCRIBE', 'REFER']);

export class KnownDialogs {
  private readonly set: DialogSet;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly o: KnownDialogsOptions) {
    this.set = new DialogSet({ max: o.max });
    this.now = o.now ?? Date.now;
    this.sweeper = setInterval(() => this.set.sweep(this.now()), 60_000);
    this.sweeper.unref();
  }

  /** An in-dialog request may be relayed: its dialog went through us (and is refreshed). */
  allows(req: SipRequest): boolean {
    const callId = req.callId();
    const from = req.fromTag();
    const to = req.toTag();
    if (!this.set.has(callId, from, to, this.now())) return false;
    if (from && to && !SUBSCRIPTION.has(req.method)) this.set.add(callId, from, to, this.now() + this.o.dialogTimeout);
    return true;
  }

  /** An initial dialog-creating request is forwarded. */
  forwarded(req: SipRequest): void {
    const tag = req.fromTag();
    if (tag && SUBSCRIPTION.has(req.method)) this.set.addHalf(req.callId(), tag, this.now() + this.o.pendingTimeout);
  }

  /** A response passes upstream for a request we forwarded (initial or in-dialog). */
  response(req: SipRequest, res: SipResponse): void {
    const callId = req.callId();
    const from = req.fromTag();
    const status = res.status;
    if (!from) return;
    const initial = req.toTag() === null;
    if (initial && req.method === 'INVITE') {
      const to = res.toTag();
      if (!to || status < 101 || status >= 300) return;
      this.set.add(callId, from, to, this.now() + (status < 200 ? this.o.earlyTimeout : this.o.dialogTimeout));
      return;
    }
    if (initial && SUBSCRIPTION.has(req.method)) {
      if (status >= 300) this.set.deleteHalf(callId, from);
      else if (status >= 200) this.set.addHalf(callId, from, this.now() + this.subscriptionLife(req, res));
      return;
    }
    if (status < 200) return;
    if (req.method === 'BYE') this.set.delete(callId, from, req.toTag());
    else if (req.method === 'NOTIFY' && /^\s*terminated/i.test(req.get('subscription-state') ?? '')) {
      // the subscriber is the NOTIFY's To; its tag keys the subscription
      const subscriber = req.toTag();
      if (subscriber) this.set.deleteHalf(callId, subscriber);
    }
  }

  get size(): number {
    return this.set.size;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** RFC 6665 §4.1.2.1: the 2xx's Expires is the subscription's duration; REFER has none. */
  private subscriptionLife(req: SipRequest, res: SipResponse): number {
    const expires = Number(res.get('expires') ?? req.get('expires'));
    return req.method === 'SUBSCRIBE' && Number.isFinite(expires) && expires > 0
      ? (expires + 32) * 1000 // a refresh may arrive up to a transaction time late
      : this.o.dialogTimeout;
  }
}
