/** Server transactions (RFC 3261 §17.2, with the Accepted state of RFC 6026 §7.1). */
import type { SipRequest, SipResponse } from '../message.js';
import { isReliable, type Destination } from '../transport/types.js';
import type { Timers } from './timers.js';

export interface ServerTxHost {
  readonly timers: Timers;
  send(buf: Buffer, dest: Destination): boolean;
  /**
   * the transaction reached Completed on an unreliable transport: absorb retransmissions
   * (for Timer J, or briefly for a response that depends on no state)
   */
  linger(key: string, finalResponse: Buffer, dest: Destination, brief: boolean): void;
  terminated(tx: ServerTransaction): void;
}

export type ServerTxState = 'trying' | 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';

export abstract class ServerTransaction {
  state: ServerTxState;
  /** last response sent, for retransmissions */
  protected last: Buffer | null = null;
  lastStatus = 0;

  constructor(
    readonly key: string,
    readonly request: SipRequest,
    /** where responses go (§18.2.2) */
    readonly dest: Destination,
    protected readonly host: ServerTxHost,
    initial: ServerTxState,
  ) {
    this.state = initial;
  }

  get reliable(): boolean {
    return isReliable(this.dest.transport);
  }

  /** Sends a response from the TU. */
  abstract respond(res: SipResponse): void;
  /** The same request came again. */
  abstract retransmission(): void;

  protected transmit(res: SipResponse): Buffer {
    const buf = res.toBuffer();
    this.lastStatus = res.status;
    if (!this.host.send(buf, this.dest)) this.transportError();
    return buf;
  }

  /** §17.2.4: a failed send terminates the transaction. */
  protected transportError(): void {
    this.terminate();
  }

  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.host.terminated(this);
  }
}

/** §17.2.2, Figure 8. */
export class NonInviteServerTransaction extends ServerTransaction {
  constructor(key: string, request: SipRequest, dest: Destination, host: ServerTxHost) {
    super(key, request, dest, host, 'trying');
  }

  respond(res: SipResponse): void {
    if (this.state !== 'trying' && this.state !== 'proceeding') return;
    const buf = this.transmit(res);
    if ((this.state as ServerTxState) === 'terminated') return; // the send failed (§17.2.4)
    if (res.status < 200) {
      // "the TU passes a provisional response ... the transaction MUST enter Proceeding"
      this.state = 'proceeding';
      this.last = buf;
      return;
    }
    // "any final response ... MUST enter the Completed state" and Timer J fires after 64*T1
    // for unreliable transports, zero for reliable ones.
    this.state = 'completed';
    // A stateless response (a digest challenge) is kept only briefly (T4, not Timer J):
    // RFC 3261 §8.2.7 lets a UAS answer statelessly (Kamailio's www_challenge does, with
    // sl_send_reply), and a retransmission arriving later is just challenged afresh, the
    // request doing nothing but that. It is kept at all because a copy of the request that
    // crossed our answer in the network (a message lives there at most T4, §17.1.2.2) should
    // get the very same answer: a client that compares them (SIPp) takes a second, different
    // challenge for an unexpected message. A final response that did something (a REGISTER's
    // 200) keeps its Timer J: a retransmitted REGISTER must not be processed twice.
    if (!this.reliable) this.host.linger(this.key, buf, this.dest, res.stateless);
    this.terminate();
  }

  retransmission(): void {
    // Trying: "any retransmissions of the request received while in this state MUST be
    // discarded"; Proceeding: the last provisional "MUST be passed to the transport layer".
    if (this.state === 'proceeding' && this.last) this.host.send(this.last, this.dest);
  }
}

/** §17.2.1, Figure 7, with RFC 6026's Accepted state for 2xx. */
export class InviteServerTransaction extends ServerTransaction {
  private timerG: NodeJS.Timeout | null = null;
  private timerH: NodeJS.Timeout | null = null;
  private timerL: NodeJS.Timeout | null = null;
  /** set when a CANCEL matched this transaction (§9.2) */
  cancelled = false;
  /** called when Timer H fires: the final response was never acknowledged */
  onAckTimeout: (() => void) | null = null;

  constructor(key: string, request: SipRequest, dest: Destination, host: ServerTxHost) {
    super(key, request, dest, host, 'proceeding');
  }

  respond(res: SipResponse): void {
    const status = res.status;
    if (this.state === 'accepted') {
      // RFC 6026 §7.1: 2xx retransmissions from the TU are passed on in Accepted.
      if (status >= 200 && status < 300) this.transmit(res);
      return;
    }
    if (this.state !== 'proceeding') return;
    const buf = this.transmit(res);
    if ((this.state as ServerTxState) !== 'proceeding') return; // the send failed
    if (status < 200) {
      this.last = buf;
      return;
    }
    this.last = buf;
    const timers = this.host.timers;
    if (status < 300) {
      this.state = 'accepted';
      this.timerL = setTimeout(() => this.terminate(), timers.L);
      return;
    }
    this.state = 'completed';
    if (!this.reliable) {
      // Timer G: retransmit at T1, doubling up to T2, until an ACK or Timer H.
      let interval = timers.T1;
      const g = (): void => {
        if (this.state !== 'completed' || !this.last) return;
        this.host.send(this.last, this.dest);
        interval = Math.min(interval * 2, timers.T2);
        this.timerG = setTimeout(g, interval);
      };
      this.timerG = setTimeout(g, interval);
    }
    this.timerH = setTimeout(() => {
      this.onAckTimeout?.();
      this.terminate();
    }, timers.H);
  }

  retransmission(): void {
    // Proceeding: resend the last provisional; Completed: the final. Accepted absorbs it.
    if ((this.state === 'proceeding' || this.state === 'completed') && this.last) {
      this.host.send(this.last, this.dest);
    }
  }

  /** An ACK for our non-2xx final response (§17.2.1: Completed -> Confirmed). */
  ack(): void {
    if (this.state !== 'completed') return;
    this.state = 'confirmed';
    this.clearTimers();
    // Timer I: T4 for unreliable transports (absorb ACK retransmissions), zero for reliable.
    if (this.reliable) this.terminate();
    else setTimeout(() => this.terminate(), this.host.timers.T4).unref();
  }

  private clearTimers(): void {
    if (this.timerG) clearTimeout(this.timerG);
    if (this.timerH) clearTimeout(this.timerH);
    if (this.timerL) clearTimeout(this.timerL);
    this.timerG = this.timerH = this.timerL = null;
  }

  override terminate(): void {
    this.clearTimers();
    super.terminate();
  }
}
