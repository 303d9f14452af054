/** Client transactions (RFC 3261 §17.1, with the Accepted state of RFC 6026 §7.2). */
import type { SipRequest, SipResponse } from '../message.js';
import { buildAckForError } from '../requests.js';
import { isReliable, type Destination } from '../transport/types.js';
import type { Timers } from './timers.js';

export interface ClientTxHost {
  readonly timers: Timers;
  send(buf: Buffer, dest: Destination): boolean;
  terminated(tx: ClientTransaction): void;
}

export interface ClientTxUser {
  /** every response the TU should see: provisionals, the final, and 2xx retransmissions */
  onResponse(res: SipResponse, tx: ClientTransaction): void;
  /** Timer B / F fired: the TU acts as if a 408 arrived (§8.1.3.1) */
  onTimeout(tx: ClientTransaction): void;
  /** the transport refused the request (§8.1.3.1: treat as 503) */
  onTransportError(tx: ClientTransaction): void;
}

export type ClientTxState = 'calling' | 'trying' | 'proceeding' | 'completed' | 'accepted' | 'terminated';

export abstract class ClientTransaction {
  state: ClientTxState;
  protected buf: Buffer | null = null;
  protected timers: NodeJS.Timeout[] = [];
  /** the last status received, 0 before any */
  lastStatus = 0;

  constructor(
    readonly key: string,
    readonly request: SipRequest,
    readonly dest: Destination,
    protected readonly host: ClientTxHost,
    protected readonly user: ClientTxUser,
    initial: ClientTxState,
  ) {
    this.state = initial;
  }

  get reliable(): boolean {
    return isReliable(this.dest.transport);
  }

  abstract start(): void;
  abstract receive(res: SipResponse): void;

  protected later(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(fn, ms));
  }

  protected clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** Sends the request; false (and the TU told) when the transport refuses it. */
  protected sendRequest(): boolean {
    this.buf = this.request.toBuffer();
    if (this.host.send(this.buf, this.dest)) return true;
    this.terminate();
    this.user.onTransportError(this);
    return false;
  }

  /**
   * Retransmits at T1, doubling up to `cap`, while `active()` holds (Timers A and E).
   * A timer runs before the datagrams that arrived while the event loop was busy (libuv:
   * timers, then I/O): a response sitting in the socket would not stop it, and a spurious copy
   * of the request would go out (a SIPp UAS aborts a call on an INVITE retransmitted after its
   * 200). So the check waits one turn (setImmediate: after I/O), and a timer that fired later
   * than its own interval (the loop stalled, a backlog is being read) waits that interval once
   * more before sending: the stall is not the network losing the request.
   */
  protected retransmit(cap: number, active: () => boolean): void {
    if (this.reliable) return;
    let interval = this.host.timers.T1;
    let due = 0;
    let postponed = false;
    const arm = (): void => {
      due = Date.now() + interval;
      this.later(interval, tick);
    };
    const send = (): void => {
      if (!active() || !this.buf) return;
      if (!postponed && Date.now() - due > interval) {
        postponed = true;
        arm();
        return;
      }
      postponed = false;
      this.host.send(this.buf, this.dest);
      interval = Math.min(interval * 2, cap);
      arm();
    };
    const tick = (): void => {
      setImmediate(send);
    };
    arm();
  }

  terminate(): void {
    if (this.state === 'terminated') return;
    this.clearTimers();
    this.state = 'terminated';
    this.host.terminated(this);
  }
}

/** §17.1.2, Figure 6. */
export class NonInviteClientTransaction extends ClientTransaction {
  constructor(key: string, request: SipRequest, dest: Destination, host: ClientTxHost, user: ClientTxUser) {
    super(key, request, dest, host, user, 'trying');
  }

  start(): void {
    if (!this.sendRequest()) return;
    const t = this.host.timers;
    // Timer E: T1 doubling to T2; in Proceeding it is reset to T2 (we keep doubling to T2,
    // which reaches the same interval).
    this.retransmit(t.T2, () => this.state === 'trying' || this.state === 'proceeding');
    // Timer F
    this.later(t.F, () => {
      if (this.state !== 'trying' && this.state !== 'proceeding') return;
      this.terminate();
      this.user.onTimeout(this);
    });
  }

  receive(res: SipResponse): void {
    if (this.state === 'completed' || this.state === 'terminated') return; // retransmissions absorbed
    this.lastStatus = res.status;
    if (res.status < 200) {
      this.state = 'proceeding';
      this.user.onResponse(res, this);
      return;
    }
    this.clearTimers();
    this.state = 'completed';
    this.user.onResponse(res, this);
    // Timer K: T4 for unreliable transports, zero for reliable ones
    if (this.reliable) this.terminate();
    else this.later(this.host.timers.T4, () => this.terminate());
  }
}

/** §17.1.1, Figure 5, with RFC 6026's Accepted state. */
export class InviteClientTransaction extends ClientTransaction {
  private ack: Buffer | null = null;

  constructor(key: string, request: SipRequest, dest: Destination, host: ClientTxHost, user: ClientTxUser) {
    super(key, request, dest, host, user, 'calling');
  }

  start(): void {
    if (!this.sendRequest()) return;
    const t = this.host.timers;
    // Timer A: T1 doubling, no cap, while Calling
    this.retransmit(Number.MAX_SAFE_INTEGER, () => this.state === 'calling');
    // Timer B
    this.later(t.B, () => {
      if (this.state !== 'calling') return;
      this.terminate();
      this.user.onTimeout(this);
    });
  }

  receive(res: SipResponse): void {
    const status = res.status;
    switch (this.state) {
      case 'calling':
      case 'proceeding':
        this.lastStatus = status;
        if (status < 200) {
          this.state = 'proceeding';
          this.user.onResponse(res, this);
        } else if (status < 300) {
          // RFC 6026 §7.2: Accepted, Timer M; 2xx retransmissions still reach the TU.
          this.clearTimers();
          this.state = 'accepted';
          this.later(this.host.timers.M, () => this.terminate());
          this.user.onResponse(res, this);
        } else {
          this.clearTimers();
          this.state = 'completed';
          this.sendAck(res);
          this.user.onResponse(res, this);
          // Timer D: >= 32 s for unreliable transports, zero for reliable
          if (this.reliable) this.terminate();
          else this.later(this.host.timers.D, () => this.terminate());
        }
        return;
      case 'accepted':
        if (status >= 200 && status < 300) this.user.onResponse(res, this);
        return;
      case 'completed':
        // "Any retransmissions of the final response ... MUST cause the ACK to be re-passed"
        if (status >= 300 && this.ack) this.host.send(this.ack, this.dest);
        return;
      default:
        return;
    }
  }

  private sendAck(res: SipResponse): void {
    this.ack = buildAckForError(this.request, res).toBuffer();
    this.host.send(this.ack, this.dest);
  }
}
