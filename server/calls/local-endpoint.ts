/**
 * Calls the gateway answers itself (wsbridge: the caller talks to a WebSocket server). A
 * small UAS (RFC 3261 §12.1.1, §15): it answers the INVITE with the media layer's SDP once
 * the application behind it is ready, keeps the dialog, answers in-dialog requests, and
 * sends the BYE when the application ends first.
 */
import type { Logger } from 'pino';
import type { MediaService } from '../media/media-service.js';
import { SdpError } from '../media/sdp.js';
import { buildBye, uasDialog, type Dialog } from '../sip/dialog.js';
import { newTag } from '../sip/ids.js';
import type { SipRequest } from '../sip/message.js';
import { makeResponse } from '../sip/reply.js';
import type { ServerTransaction } from '../sip/transaction/server-transaction.js';
import type { TransactionLayer } from '../sip/transaction/transaction-layer.js';
import type { TransportLayer } from '../sip/transport/transport-layer.js';
import { viaTransport } from '../sip/transport/types.js';
import type { Call } from './call.js';
import type { CallRegistry } from './call-registry.js';

/** An application a call can be answered into. */
export interface LocalApp {
  /** codecs it can speak, preferred first (lower-case SDP names) */
  codecs: string[];
  /** Starts it for an answered call; resolves once it is ready (e.g. its WebSocket is open). */
  start(call: Call, params: Record<string, string>): Promise<LocalAppSession>;
}

export interface LocalAppSession {
  /** resolves with a reason when the application side ends the call */
  ended: Promise<string>;
  stop(reason: string): void;
}

/** A call answered here: its dialog (we are the callee side), our answer, the application. */
interface LocalDialog {
  call: Call;
  dialog: Dialog;
  answer: string;
  session: LocalAppSession | null;
}

export class LocalEndpoint {
  private readonly dialogs = new Map<string, LocalDialog>();
  private readonly apps = new Map<string, LocalApp>();

  constructor(
    private readonly d: {
      transactions: TransactionLayer;
      transports: TransportLayer;
      calls: CallRegistry;
      media: MediaService | null;
      log: Logger;
      /** the applications calls can be answered into, by name (the routing script's answerLocally) */
      apps?: Record<string, LocalApp>;
    },
  ) {
    for (const [name, app] of Object.entries(d.apps ?? {})) this.apps.set(name, app);
  }

  register(name: string, app: LocalApp): void {
    this.apps.set(name, app);
  }

  has(app: string): boolean {
    return this.apps.has(app);
  }

  private key(callId: string, tag: string | null): string {
    return `${callId}\n${tag ?? ''}`;
  }

  /** An in-dialog request for a call we answered ourselves (its To tag is ours). */
  owns(req: SipRequest): boolean {
    return this.dialogs.has(this.key(req.callId(), req.toTag()));
  }

  /** Answers an initial INVITE into `appName`. */
  async answer(req: SipRequest, tx: ServerTransaction, appName: string, params: Record<string, string>, callerFlags: string[]): Promise<number> {
    const app = this.apps.get(appName);
    const media = this.d.media;
    if (!app || !media) return this.fail(tx, 404, `No ${appName} here`);
    if (req.body.length === 0) return this.fail(tx, 488, 'An offer is required');
    const s = req.source!;
    const from = req.from();
    const call = this.d.calls.create(req.callId(), req.fromTag() ?? '', { uri: from.uriText, display: from.display, transport: s.transport, address: s.address, port: s.port }, req.to().uriText, callerFlags);
    call.media = true;
    call.onEnd(() => media.delete(call.id));
    let sdp: string;
    let session: LocalAppSession;
    try {
      sdp = await media.answerAsEndpoint(call.id, req.body.toString('latin1'), app.codecs);
    } catch (e) {
      this.d.calls.end(call, 'no common codec');
      return this.fail(tx, e instanceof SdpError ? e.status : 500, (e as Error).message);
    }
    try {
      session = await app.start(call, params);
    } catch (e) {
      // ssrf (issue 10): a plain 503, the same for "not allowed", "refused", "no such host" or
      // an HTTP status: a reason here would make us a port scanner. The detail is logged once.
      this.d.log.warn({ callId: req.callId(), app: appName, reason: (e as Error).message, code: (e as { code?: unknown }).code }, 'local application failed: 503');
      this.d.calls.end(call, `${appName} unavailable`);
      tx.respond(makeResponse(tx.request, 503));
      return 503;
    }
    if (tx.state !== 'proceeding') {
      session.stop('caller gone');
      this.d.calls.end(call, 'cancelled');
      return 487;
    }
    const localTag = newTag();
    const iface = this.d.transports.interfaceFor(s.transport) ?? this.d.transports.interfaces[0]!;
    const contact = `<sip:${appName}@${iface.host}:${iface.port}${iface.transport === 'udp' ? '' : `;transport=${iface.transport}`}>`;
    const ok = makeResponse(req, 200, {
      toTag: localTag,
      headers: [['Contact', contact], ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE']],
      body: Buffer.from(sdp, 'latin1'),
      contentType: 'application/sdp',
    });
    const dialog: LocalDialog = {
      call,
      dialog: uasDialog(req, ok, { transport: s.transport, address: s.address, port: s.port, flowId: s.flowId }, contact),
      answer: sdp,
      session,
    };
    this.dialogs.set(this.key(dialog.dialog.callId, localTag), dialog);
    call.state = 'answered';
    call.answeredAt = Date.now();
    call.toTag = localTag;
    call.onEnd(() => {
      this.dialogs.delete(this.key(dialog.dialog.callId, localTag));
      dialog.session?.stop(call.endReason ?? 'call ended');
    });
    this.d.calls.updated(call);
    tx.respond(ok);
    void session.ended.then((why) => this.hangup(dialog, why));
    return 200;
  }

  private fail(tx: ServerTransaction, status: number, reason: string): number {
    tx.respond(makeResponse(tx.request, status, { headers: [['Warning', `399 gateway "${reason.replace(/["\\]/g, "'").slice(0, 120)}"`]] }));
    return status;
  }

  /** Requests inside a dialog we are the UAS of. */
  inDialog(req: SipRequest, tx: ServerTransaction | null): void {
    const dialog = this.dialogs.get(this.key(req.callId(), req.toTag()));
    if (!dialog) return;
    if (req.method === 'ACK' || !tx) return; // the ACK for our 2xx ends the INVITE exchange
    switch (req.method) {
      case 'BYE':
        tx.respond(makeResponse(req, 200, { toTag: null }));
        dialog.session?.stop('caller hung up');
        dialog.session = null;
        this.d.calls.end(dialog.call, 'bye');
        return;
      case 'INVITE':
      case 'UPDATE':
        // a re-offer (hold, refresh): we keep sending what we send; answer as before
        tx.respond(makeResponse(req, 200, { toTag: null, body: Buffer.from(dialog.answer, 'latin1'), contentType: 'application/sdp' }));
        return;
      case 'INFO':
      case 'OPTIONS':
      case 'NOTIFY':
        tx.respond(makeResponse(req, 200, { toTag: null }));
        return;
      default:
        tx.respond(makeResponse(req, 501, { toTag: null }));
    }
  }

  /** The application ended first: BYE to the caller (§15.1.1). */
  hangup(dialog: LocalDialog, reason: string): void {
    if (dialog.call.state === 'ended') return;
    dialog.session = null;
    const caller = dialog.dialog.caller;
    const iface = this.d.transports.interfaceFor(caller.dest.transport);
    // no usable Contact: BYE cannot be sent, the call ends when the caller hangs up
    if (iface && caller.target) {
      const bye = buildBye(dialog.dialog, 'caller', { transport: viaTransport(iface.transport), host: iface.host, port: iface.port }, reason);
      this.d.transactions.request(bye, caller.dest, { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} });
    }
    this.d.log.info({ callId: dialog.dialog.callId, reason }, 'local call ended by its application');
    this.d.calls.end(dialog.call, reason);
  }

  /** Ends a call we answered (API hangup, media failure). */
  hangupCall(call: Call, reason: string): boolean {
    for (const dialog of this.dialogs.values()) {
      if (dialog.call !== call) continue;
      dialog.session?.stop(reason);
      this.hangup(dialog, reason);
      return true;
    }
    return false;
  }

  close(): void {
    for (const dialog of this.dialogs.values()) dialog.session?.stop('shutdown');
    this.dialogs.clear();
  }
}
