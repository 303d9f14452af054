/**
 * The call controller at the proxy's hooks (server/proxy/hooks.ts): keeps the Call of each
 * forwarded INVITE dialog, hands its SDP to the media layer on the way through (rtpengine's
 * offer/answer: each branch's offer, the answer, re-offers in the dialog, a late offer's
 * answer in the ACK), starts the taps the routing script asked for, and ends calls the gateway
 * decides to end (media timeout or failure, a connection gone, the API, shutdown): BYE both
 * ways once answered, else the ringing INVITE abandoned.
 */
import type { Logger } from 'pino';
import type { MediaFlags, MediaMode } from '../media/flags.js';
import type { MediaService } from '../media/media-service.js';
import { SdpError } from '../media/sdp.js';
import type { BranchView, CallStart, ForwardedCall, ProxyHooks } from '../proxy/hooks.js';
import type { TapRequest } from '../routing/api.js';
import { buildBye, otherSide, type Dialog, type Side } from '../sip/dialog.js';
import { SipError } from '../sip/errors.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { ServerTransaction } from '../sip/transaction/server-transaction.js';
import type { TransactionLayer } from '../sip/transaction/transaction-layer.js';
import type { TransportLayer } from '../sip/transport/transport-layer.js';
import { viaTransport } from '../sip/transport/types.js';
import type { Call } from './call.js';
import type { CallRegistry } from './call-registry.js';
import type { LocalEndpoint } from './local-endpoint.js';

/** Starts an audio tap a call asked for (the taps floor implements it; it waits for the answer itself). */
export type TapStarter = (call: Call, request: TapRequest, log: Logger) => void;

export interface CallMediaDeps {
  calls: CallRegistry;
  /** the media bridge; null: SDP passes through untouched */
  media: MediaService | null;
  /** calls the gateway answers itself (wsbridge) */
  local: LocalEndpoint;
  transactions: TransactionLayer;
  transports: TransportLayer;
  /** null: taps asked for by calls are refused (no taps floor) */
  startTap: TapStarter | null;
  log: Logger;
}

/** What the media layer does with the SDP of one request and its responses. */
interface MediaPlan {
  /** the side that sent the request */
  requester: Side;
  /** the request carried the offer (its responses answer it); false: a response will offer */
  requestOffered: boolean;
}

const IGNORE = { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} };

export class CallMedia implements ProxyHooks {
  /** calls not yet answered: how to abandon their INVITE, and the caller's connection */
  private readonly ringing = new Map<Call, { abandon: (reason: string) => void; flowId: string | null }>();

  constructor(private readonly d: CallMediaDeps) {
    d.media?.on('end', (callId, reason) => {
      const call = d.calls.get(callId);
      if (call) this.hangup(call, reason);
    });
  }

  // ---- the proxy's hooks ----

  callStarted(start: CallStart): ForwardedCall {
    const req = start.req;
    const from = req.from();
    const s = req.source!;
    const call = this.d.calls.create(req.callId(), req.fromTag() ?? '', { uri: from.uriText, display: from.display, transport: s.transport, address: s.address, port: s.port }, req.to().uriText, start.flags);
    this.ringing.set(call, { abandon: start.abandon, flowId: s.flowId });
    call.onEnd(() => this.ringing.delete(call));
    for (const tap of start.taps) {
      if (this.d.startTap) this.d.startTap(call, tap, start.log);
      else start.log.warn('an audio tap was asked for, but this gateway runs no taps');
    }
    return this.initialInvite(call, req, start.log);
  }

  inDialog(req: SipRequest, log: Logger): ForwardedCall | null {
    const call = this.d.calls.find(req.callId(), req.fromTag(), req.toTag());
    return call ? this.dialogRequest(call, req, log) : null;
  }

  async ackOut(ack: SipRequest, out: SipRequest, log: Logger): Promise<void> {
    const call = this.d.calls.find(ack.callId(), ack.fromTag(), ack.toTag());
    if (!call?.media || !this.d.media) return;
    try {
      out.body = Buffer.from(await this.d.media.answer(call.id, sideOf(call, ack), call.answeredLeg ?? 0, ack.body.toString('latin1')), 'latin1');
    } catch (e) {
      log.warn({ err: e }, 'media refused the answer in an ACK');
    }
  }

  localRequest(req: SipRequest, tx: ServerTransaction | null): boolean {
    if (!this.d.local.owns(req)) return false;
    this.d.local.inDialog(req, tx);
    return true;
  }

  answerLocally(req: SipRequest, tx: ServerTransaction, app: string, params: Record<string, string>, callerFlags: string[]): Promise<number> {
    return this.d.local.answer(req, tx, app, params, callerFlags);
  }

  // ---- the two kinds of forwarded request ----

  /** The initial INVITE: its branches are the call's legs, their SDP goes through the media layer. */
  private initialInvite(call: Call, req: SipRequest, log: Logger): ForwardedCall {
    const media = this.d.media;
    let plan: MediaPlan | null = null;
    return {
      branchAdded: (br) => {
        call.legs.push({ index: br.index, uri: br.request.uri, dest: br.dest, flags: br.flagNames, media: br.media, status: 0 });
      },
      requestOut: async (branches) => {
        if (!media) return;
        if (!call.media) {
          call.media = true;
          call.onEnd(() => media.delete(call.id));
        }
        const sdp = sdpOf(req);
        plan = { requester: 'caller', requestOffered: sdp !== null };
        if (sdp === null) return; // late offer: the answer's 2xx offers
        for (const br of branches) br.request.body = Buffer.from(await offer(media, call.id, 'caller', br.index, sdp, br.media?.offer ?? null), 'latin1');
      },
      responseIn: async (br, res) => {
        if (plan) await this.mediaForResponse(call, plan, br.index, res, br.media?.answer ?? null, log);
      },
      progress: (br, res) => this.progress(call, br, res),
      answered: async (br, dialog) => {
        call.dialog = dialog;
        // the other branches' legs go and the answered one is wired in the call's media queue,
        // behind the answer's own wiring: the 2xx does not wait for the worker's replies
        if (call.media && media) media.select(call.id, br.index).catch((e: unknown) => log.warn({ err: e }, 'media: selecting the answered branch failed'));
      },
      branchFailed: (br, status) => {
        const leg = call.legs.find((l) => l.index === br.index);
        if (leg) leg.status = status;
        if (call.media) void media?.dropBranch(call.id, br.index);
      },
      ended: (reason) => this.d.calls.end(call, reason),
    };
  }

  /** A request inside the call's dialog: a re-offer goes through the media layer, a BYE ends the call. */
  private dialogRequest(call: Call, req: SipRequest, log: Logger): ForwardedCall {
    const media = this.d.media;
    const side = sideOf(call, req);
    if (call.dialog) call.dialog[side].cseq = Math.max(call.dialog[side].cseq, req.cseq().seq);
    let plan: MediaPlan | null = null;
    const none = (): void => {};
    return {
      branchAdded: none,
      requestOut: async (branches) => {
        if (media && call.media && (req.method === 'INVITE' || req.method === 'UPDATE')) {
          const sdp = sdpOf(req);
          plan = { requester: side, requestOffered: sdp !== null };
          if (sdp !== null) {
            const out = await offer(media, call.id, side, call.answeredLeg ?? 0, sdp, flagsTowards(call, otherSide(side)));
            for (const br of branches) br.request.body = Buffer.from(out, 'latin1');
          }
        }
        if (req.method === 'BYE') this.d.calls.end(call, 'bye');
      },
      responseIn: async (_br, res) => {
        if (plan) await this.mediaForResponse(call, plan, call.answeredLeg ?? 0, res, flagsTowards(call, plan.requester), log);
      },
      progress: none,
      answered: async () => {},
      branchFailed: none,
      ended: none,
    };
  }

  /** Rewrites the SDP of a response: the answer to our offer, or an offer (late offer). */
  private async mediaForResponse(call: Call, plan: MediaPlan, branch: number, res: SipResponse, offerMode: MediaMode | null, log: Logger): Promise<void> {
    const media = this.d.media!;
    const responder = otherSide(plan.requester);
    const sdp = res.body.toString('latin1');
    try {
      res.body = Buffer.from(plan.requestOffered ? await media.answer(call.id, responder, branch, sdp) : await media.offer(call.id, responder, branch, sdp, offerMode), 'latin1');
    } catch (e) {
      // the answer names nothing we can bridge: the call cannot carry audio
      log.warn({ err: e, status: res.status }, 'media refused the SDP of a response');
      if (res.status >= 200) setImmediate(() => this.hangup(call, `media: ${(e as Error).message}`));
    }
  }

  private progress(call: Call, br: BranchView, res: SipResponse): void {
    if (call.state === 'ended' || call.state === 'answered') return;
    const leg = call.legs.find((l) => l.index === br.index);
    if (leg) leg.status = res.status;
    const tag = res.toTag();
    if (tag && res.status < 200 && call.earlyTags.size < 32) call.earlyTags.add(tag);
    if (res.status >= 200 && res.status < 300) {
      call.state = 'answered';
      call.answeredLeg = br.index;
      call.answeredAt = Date.now();
      call.toTag = res.toTag();
    } else if (res.status === 180 || res.status === 181 || res.status === 182) {
      if (call.state === 'calling') call.state = 'ringing';
    } else if (res.body.length > 0) {
      call.state = 'early';
    }
    this.d.calls.updated(call);
  }

  // ---- ending calls from the middle ----

  /**
   * Ends a call the gateway decided to end (RTP timeout, media failure, a connection gone,
   * the API): BYE to both sides when answered, else the branches cancelled and the caller
   * told. Idempotent.
   */
  hangup(call: Call, reason: string): void {
    if (call.state === 'ended') return;
    if (this.d.local.hangupCall(call, reason)) return;
    this.d.log.info({ callId: call.callId, call: call.id, reason }, 'gateway ends the call');
    if (call.state === 'answered' && call.dialog) {
      for (const to of ['callee', 'caller'] as const) this.sendBye(call.dialog, to, reason);
    } else {
      this.ringing.get(call)?.abandon(reason);
    }
    this.d.calls.end(call, reason);
  }

  private sendBye(dialog: Dialog, to: Side, reason: string): void {
    const dest = dialog[to].dest;
    const iface = this.d.transports.interfaceFor(dest.transport);
    if (!iface || !dialog[to].target) return;
    const bye = buildBye(dialog, to, { transport: viaTransport(iface.transport), host: iface.host, port: iface.port }, reason);
    this.d.transactions.request(bye, dest, IGNORE);
  }

  /** A connection closed: calls ringing from it, and calls whose dialog runs over it, end. */
  flowClosed(flowId: string): void {
    for (const [call, r] of [...this.ringing]) {
      if (r.flowId === flowId && call.state !== 'answered') this.hangup(call, 'caller connection closed');
    }
    for (const call of this.d.calls.list()) {
      const d = call.dialog;
      if (d && (d.caller.dest.flowId === flowId || d.callee.dest.flowId === flowId)) this.hangup(call, 'WebSocket connection closed');
    }
  }
}

/** The SDP a request carries, or null. */
function sdpOf(req: SipRequest): string | null {
  return req.body.length > 0 && req.contentType() === 'application/sdp' ? req.body.toString('latin1') : null;
}

/** media.offer with its refusal as the SIP reply it asks for (488, 500...). */
async function offer(media: MediaService, key: string, side: Side, branch: number, sdp: string, mode: MediaMode | null): Promise<string> {
  try {
    return await media.offer(key, side, branch, sdp, mode);
  } catch (e) {
    if (e instanceof SdpError) throw new SipError(e.status, e.message);
    throw e;
  }
}

/** Which side of the call sent this in-dialog request: its From tag is the caller's or not. */
function sideOf(call: Call, req: SipRequest): Side {
  return req.fromTag() === call.fromTag ? 'caller' : 'callee';
}

/** The modes of the leg a re-offer goes to: the branch's offer modes describe the callee. */
function flagsTowards(call: Call, to: Side): MediaMode | null {
  const leg = call.legs.find((l) => l.index === (call.answeredLeg ?? 0));
  const flags: MediaFlags | null | undefined = leg?.media;
  return (to === 'callee' ? flags?.offer : flags?.answer) ?? null;
}
