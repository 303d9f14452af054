/**
 * Matches messages to transactions (RFC 3261 §17.1.3, §17.2.3) and creates them. What no
 * transaction claims is emitted for the transaction user above (the proxy subscribes): new
 * requests, ACKs for 2xx, CANCELs, stray responses.
 */
import { EventEmitter } from 'node:events';
import type { SipRequest, SipResponse } from '../message.js';
import { makeResponse } from '../reply.js';
import type { Destination, Sender } from '../transport/types.js';
import { detach } from '../detach.js';
import { MAGIC_COOKIE } from '../via.js';
import {
  InviteClientTransaction,
  NonInviteClientTransaction,
  type ClientTransaction,
  type ClientTxHost,
  type ClientTxUser,
} from './client-transaction.js';
import { Linger } from './linger.js';
import {
  InviteServerTransaction,
  NonInviteServerTransaction,
  type ServerTransaction,
  type ServerTxHost,
} from './server-transaction.js';
import type { Timers } from './timers.js';

/** What the transaction layer hands up: the transaction user's events (§17, "TU"). */
export interface TransactionEvents {
  /** A request no transaction claims. `tx` is null for ACK, which never has one of its own. */
  request: [req: SipRequest, tx: ServerTransaction | null];
  /** A CANCEL, with the INVITE transaction it cancels when one matched (§9.2). */
  cancel: [cancel: SipRequest, tx: ServerTransaction, invite: InviteServerTransaction | null];
  /** A response no client transaction claims (e.g. a 2xx retransmitted late). */
  stray: [res: SipResponse];
}

export type { Sender };

interface Lingering {
  buf: Buffer;
  dest: Destination;
}

export class TransactionLayer extends EventEmitter<TransactionEvents> implements ServerTxHost, ClientTxHost {
  private readonly servers = new Map<string, ServerTransaction>();
  private readonly clients = new Map<string, ClientTransaction>();
  private readonly completed: Linger<Lingering>;
  /** stateless final responses (digest challenges), kept for T4 only */
  private readonly briefly: Linger<Lingering>;
  constructor(readonly timers: Timers, private readonly sender: Sender) {
    super();
    this.completed = new Linger(timers.J);
    this.briefly = new Linger(Math.min(timers.T4, timers.J));
  }

  send(buf: Buffer, dest: Destination): boolean {
    return this.sender.send(buf, dest);
  }

  linger(key: string, buf: Buffer, dest: Destination, brief: boolean): void {
    // the key is made of slices of the request's text: kept for seconds, it is copied alone
    (brief ? this.briefly : this.completed).set(detach(key), { buf, dest });
  }

  terminated(tx: ServerTransaction | ClientTransaction): void {
    if (this.servers.get(tx.key) === tx) this.servers.delete(tx.key);
    else if (this.clients.get(tx.key) === tx) this.clients.delete(tx.key);
  }

  get stats(): { server: number; client: number; lingering: number } {
    return { server: this.servers.size, client: this.clients.size, lingering: this.completed.size + this.briefly.size };
  }

  /**
   * §17.2.3: the branch (with the magic cookie), the sent-by and the method (ACK matches its
   * INVITE) identify a server transaction; requests from RFC 2543 elements are matched on
   * Request-URI, From tag, Call-ID, CSeq number and top Via instead.
   */
  serverKey(req: SipRequest, method = req.method): string {
    const via = req.via();
    const m = method === 'ACK' ? 'INVITE' : method;
    const branch = via.params.get('branch');
    if (branch && branch.startsWith(MAGIC_COOKIE) && branch.length > MAGIC_COOKIE.length) {
      return `${branch}|${via.host}:${via.port ?? ''}|${m}`;
    }
    return `2543|${req.uri}|${req.fromTag() ?? ''}|${req.callId()}|${req.cseq().seq}|${req.get('via')}|${m}`;
  }

  receiveRequest(req: SipRequest, responseDest: Destination): void {
    const method = req.method;
    const key = this.serverKey(req);
    const tx = this.servers.get(key);
    if (method === 'ACK') {
      if (tx instanceof InviteServerTransaction && tx.state !== 'accepted') {
        tx.ack();
        return;
      }
      // an ACK for a 2xx is its own end-to-end request (§17.2.1: "not part of the transaction")
      this.emit('request', req, null);
      return;
    }
    if (tx) {
      tx.retransmission();
      return;
    }
    const done = this.completed.get(key) ?? this.briefly.get(key);
    if (done) {
      this.sender.send(done.buf, done.dest);
      return;
    }
    if (method === 'INVITE') {
      const itx = new InviteServerTransaction(key, req, responseDest, this);
      this.servers.set(key, itx);
      // §17.2.1: "MUST generate a 100 (Trying) response unless it knows that the TU will
      // generate a provisional or final response within 200 ms" - a proxy cannot know.
      itx.respond(makeResponse(req, 100));
      if (itx.state === 'terminated') return;
      this.emit('request', req, itx);
      return;
    }
    const ntx = new NonInviteServerTransaction(key, req, responseDest, this);
    this.servers.set(key, ntx);
    if (method === 'CANCEL') {
      const invite = this.servers.get(this.serverKey(req, 'INVITE'));
      this.emit('cancel', req, ntx, invite instanceof InviteServerTransaction ? invite : null);
      return;
    }
    this.emit('request', req, ntx);
  }

  /** §17.1.3: a response matches the client transaction of its top Via branch and CSeq method. */
  receiveResponse(res: SipResponse): void {
    const via = res.via();
    const branch = via.params.get('branch') ?? '';
    const tx = this.clients.get(`${branch}|${res.cseq().method}`);
    if (tx) tx.receive(res);
    else this.emit('stray', res);
  }

  /** Creates and starts a client transaction; the request's top Via must carry our branch. */
  request(req: SipRequest, dest: Destination, user: ClientTxUser): ClientTransaction {
    const branch = req.via().params.get('branch') ?? '';
    const key = `${branch}|${req.method}`;
    const tx = req.method === 'INVITE'
      ? new InviteClientTransaction(key, req, dest, this, user)
      : new NonInviteClientTransaction(key, req, dest, this, user);
    this.clients.set(key, tx);
    tx.start();
    return tx;
  }

  close(): void {
    for (const tx of [...this.servers.values()]) tx.terminate();
    for (const tx of [...this.clients.values()]) tx.terminate();
    this.completed.close();
    this.briefly.close();
  }
}
