/**
 * The stateful proxy core (RFC 3261 §16): validates a request (§16.3), consumes our Route
 * entries (§16.4), runs the routing script (its stages, then its route), and forwards to
 * every target in parallel (§16.5-16.6), choosing the best final response (§16.7); CANCEL
 * per §16.10. Calls are not its business: at named hooks (./hooks.ts) the calls floor above
 * keeps the call, rewrites the SDP and ends calls; the core only forwards.
 */
import type { Logger } from 'pino';
import type { CidrSet } from '../net/address-class.js';
import type { Registrar } from '../registrar/registrar.js';
import type { Action, RoutingScript, TapRequest, Target } from '../routing/api.js';
import { flagNames } from '../routing/flags.js';
import { replyFor, runRequest } from '../routing/stages.js';
import { parseNameAddr } from '../sip/address.js';
import { dialogFrom } from '../sip/dialog.js';
import { SipError } from '../sip/errors.js';
import { newBranch } from '../sip/ids.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { makeResponse } from '../sip/reply.js';
import { buildCancel } from '../sip/requests.js';
import type { ClientTxUser } from '../sip/transaction/client-transaction.js';
import type { InviteServerTransaction, ServerTransaction } from '../sip/transaction/server-transaction.js';
import type { Timers } from '../sip/transaction/timers.js';
import type { TransactionLayer } from '../sip/transaction/transaction-layer.js';
import type { SipInterface, TransportLayer } from '../sip/transport/transport-layer.js';
import { viaTransport, type Destination, type TransportKind } from '../sip/transport/types.js';
import { forwardAck } from './ack-forwarding.js';
import type { FlowTokens } from './flow-token.js';
import type { ProxyHooks } from './hooks.js';
import type { KnownDialogs } from './known-dialogs.js';
import type { Locality } from './locality.js';
import { nextHop, resolveTarget } from './next-hop.js';
import { recordRoutes } from './record-route.js';
import type { Resolver } from './resolver.js';
import { Branch, chooseBest, ResponseContext, upstreamFinal } from './response-context.js';
import { isBehindNat, isForUs, preprocessRoutes, setMaxForwards } from './route-set.js';
import { runBranchRoute, ScriptContext, type ScriptEnv, type TapGate } from './script-context.js';

export interface ProxyDeps {
  transactions: TransactionLayer;
  transports: TransportLayer;
  locality: Locality;
  resolver: Resolver;
  registrar: Registrar;
  script: RoutingScript;
  timers: Timers;
  log: Logger;
  /** the calls floor: call bookkeeping, media offer/answer, taps, the local endpoint */
  hooks: ProxyHooks;
  /** shutting down: new calls are refused (503 with Retry-After), calls up go on */
  draining: () => boolean;
  /** Max-Forwards for requests that come without one */
  maxForwards: number;
  /** most branches one request forks into (a user with many contacts, a script's targets) */
  maxBranches: number;
  /** signs and reads the flow tokens of our Record-Route entries */
  tokens: FlowTokens;
  /** the dialogs established through us: the only ones whose requests are relayed */
  dialogs: KnownDialogs;
  /** answers the script's sip.mayTap() (the taps' URL policy); none: every tap from SIP refused */
  tapGate?: TapGate;
  /** sip.trustedPeers: sources the script may let through without authentication */
  trustedPeers: CidrSet;
}

/** Requests that create dialogs, and so get Record-Route (§16.6 step 4). */
const DIALOG_CREATING = new Set(['INVITE', 'SUBSCRIBE', 'REFER']);
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, MESSAGE, NOTIFY, REFER, SUBSCRIBE, PRACK';
const IGNORE: ClientTxUser = { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} };

export class ProxyCore {
  private readonly contexts = new Map<ServerTransaction, ResponseContext>();
  private readonly scriptEnv: ScriptEnv;

  constructor(private readonly d: ProxyDeps) {
    this.scriptEnv = { locality: d.locality, registrar: d.registrar, trustedPeers: d.trustedPeers, tapGate: d.tapGate ?? null };
    // what no transaction claims: new requests and ACKs for 2xx, CANCELs, stray responses
    d.transactions.on('request', (req, tx) => void this.handle(req, tx, null));
    d.transactions.on('cancel', (cancel, tx, invite) => void this.handle(cancel, tx, invite));
    // A response for no transaction of ours (a late 2xx retransmission, or not ours at all,
    // like RFC 4475 bcast): nothing can route it back reliably, so it is dropped.
    d.transactions.on('stray', (res) => d.log.debug({ status: res.status, callId: res.get('call-id') }, 'stray response dropped'));
  }

  get activeContexts(): number {
    return this.contexts.size;
  }

  private async handle(req: SipRequest, tx: ServerTransaction | null, invite: InviteServerTransaction | null): Promise<void> {
    try {
      await this.process(req, tx, invite);
    } catch (e) {
      this.d.log.error({ err: e, callId: req.get('call-id'), method: req.method }, 'request processing failed');
      if (tx && tx.state !== 'terminated' && tx.state !== 'completed') this.reply(tx, 500, 'Server Internal Error');
    }
  }

  private async process(req: SipRequest, tx: ServerTransaction | null, invite: InviteServerTransaction | null): Promise<void> {
    const uri = req.requestUri();
    // §16.3 step 2: "If the Request-URI has a URI whose scheme is not understood by the
    // proxy, the proxy SHOULD reject the request with a 416 (Unsupported URI Scheme)"
    if (uri.scheme !== 'sip' && uri.scheme !== 'sips') return this.reply(tx, 416);
    // step 3: "If the request does not contain a Max-Forwards header field, this check is
    // passed. ... If the field value is zero (0), the element MUST NOT forward the request."
    const mf = req.get('max-forwards');
    if (mf !== undefined && Number(mf) === 0 && !isForUs(req, this.d.locality)) return this.reply(tx, 483);
    // step 5: "If the request contains a Proxy-Require header field ... with one or more
    // option-tags this element does not understand, the element MUST return a 420"
    const proxyRequire = req.getAll('proxy-require');
    if (proxyRequire.length > 0) return this.reply(tx, 420, undefined, [['Unsupported', proxyRequire.join(', ')]]);
    if (this.d.draining() && req.method === 'INVITE' && req.toTag() === null) {
      return this.reply(tx, 503, 'Service Unavailable (shutting down)', [['Retry-After', '30']]);
    }
    const route = preprocessRoutes(req, this.d.locality);
    // in a dialog the gateway itself answered: the local endpoint is the UAS
    if (req.toTag() !== null && this.d.hooks.localRequest(req, tx)) return;
    // The gateway anchors media: an INVITE must offer SDP it can read (RFC 4475 invut)
    if (req.method === 'INVITE' && req.body.length > 0 && !isSdp(req.contentType())) {
      return this.reply(tx, 415, undefined, [['Accept', 'application/sdp']]);
    }
    const ctx = new ScriptContext(req, route, this.d.log, this.scriptEnv);
    let action: Action;
    try {
      action = await runRequest(this.d.script, ctx);
    } catch (e) {
      ctx.log.error({ err: e }, 'routing script failed');
      action = ctx.reply(500, 'Routing Script Error');
    }
    await this.execute(action, ctx, tx, invite);
  }

  private async execute(action: Action, ctx: ScriptContext, tx: ServerTransaction | null, invite: InviteServerTransaction | null): Promise<void> {
    const req = ctx.req;
    switch (action.kind) {
      case 'drop':
        if (tx) tx.terminate();
        return;
      case 'reply': {
        const headers = [...(action.headers ?? [])];
        if (req.method === 'OPTIONS' && action.status === 200) {
          headers.push(['Allow', ALLOW], ['Accept', 'application/sdp'], ['Supported', 'path, outbound']);
        }
        this.reply(tx, action.status, action.reason, headers);
        // OPTIONS answered 200 are keep-alives and monitoring pings (a phone every 30 s, a
        // load balancer every second): a line each would bury the log, as in Kamailio's
        if (req.method !== 'OPTIONS' || action.status !== 200) this.logOutcome(ctx, action.status);
        else if (this.d.log.isLevelEnabled('debug')) ctx.log.debug({ method: 'OPTIONS', status: 200 }, 'transaction');
        return;
      }
      case 'save': {
        if (!tx) return;
        const res = await this.d.registrar.register(req, ctx.branchFlags);
        tx.respond(res);
        this.logOutcome(ctx, res.status, { aor: req.to().uri.user });
        return;
      }
      case 'local': {
        if (!tx || req.method !== 'INVITE') return this.reply(tx, 405);
        const status = await this.d.hooks.answerLocally(req, tx, action.app, action.params, flagNames(ctx.flags));
        this.logOutcome(ctx, status, { app: action.app });
        return;
      }
      case 'relay':
        // No open relay: a To tag and a Route naming us are not enough, the dialog must be one
        // that was set up through us (Call-ID and both tags)
        if (req.toTag() !== null && req.method !== 'CANCEL' && !this.d.dialogs.allows(req)) return this.unknownDialog(ctx, tx);
        if (req.method === 'ACK') return forwardAck(ctx, this.d, ctx.log);
        if (req.method === 'CANCEL') return this.cancel(ctx, tx!, invite);
        return this.forward(ctx, tx!, action.targets, action.taps);
    }
  }

  /** §12.2.2: "If the UAS ... does not find a matching dialog ... it SHOULD return a 481". An ACK gets nothing. */
  private unknownDialog(ctx: ScriptContext, tx: ServerTransaction | null): void {
    const s = ctx.source;
    ctx.log.info({ method: ctx.method, source: `${s.transport}:${s.address}:${s.port}` }, 'in-dialog request for a dialog not set up through us: refused');
    if (ctx.method !== 'ACK') this.reply(tx, 481, 'Call/Transaction Does Not Exist');
  }

  private reply(tx: ServerTransaction | null, status: number, reason?: string, headers?: [string, string][]): void {
    if (!tx) return;
    tx.respond(makeResponse(tx.request, status, { ...(reason !== undefined && { reason }), ...(headers !== undefined && { headers }) }));
  }

  private logOutcome(ctx: ScriptContext, status: number, extra: object = {}): void {
    // every request passes here: build the line only when it will be written (asking the
    // parent logger, so that a child is not made just to say it will not log)
    if (!this.d.log.isLevelEnabled('info')) return;
    ctx.log.info({ method: ctx.method, status, from: `${ctx.source.transport}:${ctx.source.address}:${ctx.source.port}`, ...extra }, 'transaction');
  }

  // ---- forwarding (§16.6) ----

  private async forward(ctx: ScriptContext, tx: ServerTransaction, targets: Target[] | null, taps: TapRequest[]): Promise<void> {
    const req = ctx.req;
    if (!isLive(tx)) return; // cancelled or gone meanwhile
    let list = targets ?? [await nextHop(ctx, this.d.transports, this.d.resolver, this.d.tokens)].filter((t): t is Target => t !== null);
    if (list.length > this.d.maxBranches) {
      ctx.log.warn({ targets: list.length, max: this.d.maxBranches }, 'too many targets: only the first sip.maxBranches are tried');
      list = list.slice(0, this.d.maxBranches);
    }
    // resolve every destination before the first branch starts, so that a branch failing at
    // once cannot end the response context while others are still being built
    const resolved: { target: Target; dest: Destination }[] = [];
    for (const target of list) {
      const dest = target.dest ?? (await resolveTarget(this.d.resolver, target));
      if (dest) resolved.push({ target, dest });
    }
    if (!isLive(tx)) return;
    if (resolved.length === 0) {
      this.reply(tx, 480, 'Temporarily Unavailable (no reachable destination)');
      this.logOutcome(ctx, 480);
      return;
    }
    const rc = new ResponseContext(tx, req, ctx);
    this.contexts.set(tx, rc);
    if (DIALOG_CREATING.has(req.method) && req.toTag() === null) this.d.dialogs.forwarded(req);
    if (req.method === 'INVITE' && req.toTag() === null) {
      rc.startsCall = true;
      rc.call = this.d.hooks.callStarted({
        req,
        flags: flagNames(ctx.flags),
        taps,
        log: ctx.log,
        abandon: (reason) => {
          if (this.contexts.get(tx) !== rc) return;
          this.abandon(rc, `SIP;text="${reason.slice(0, 80)}"`, 480, `Temporarily Unavailable (${reason.slice(0, 60)})`, reason);
        },
      });
    } else if (req.toTag() !== null) {
      rc.call = this.d.hooks.inDialog(req, ctx.log);
    }
    resolved.forEach(({ target, dest }, i) => this.addBranch(rc, ctx, target, dest, i));
    try {
      await rc.call?.requestOut(rc.branches);
    } catch (e) {
      this.contexts.delete(tx);
      const status = e instanceof SipError ? e.status : 500;
      const why = e instanceof SipError ? e.reason : e instanceof Error ? e.message : String(e);
      ctx.log.warn({ status, reason: why }, 'media refused the offer');
      this.reply(tx, status, undefined, [['Warning', `399 gateway "${why.replace(/["\\]/g, "'").slice(0, 120)}"`]]);
      this.logOutcome(ctx, status);
      if (rc.startsCall) rc.call?.ended(`failed ${status}`);
      return;
    }
    if (!isLive(tx)) return;
    for (const br of rc.branches) this.startBranch(rc, br);
    this.maybeFinish(rc);
  }

  private iface(transport: TransportKind): SipInterface | undefined {
    return this.d.transports.interfaceFor(transport);
  }

  private addBranch(rc: ResponseContext, ctx: ScriptContext, target: Target, dest: Destination, index: number): void {
    const req = ctx.req;
    const out = req.clone();
    if (target.binding !== null || !ctx.routed) out.uri = target.uri;
    setMaxForwards(req, out, this.d.maxForwards);
    const br = new Branch(index, target, out, dest, target.flags);
    rc.branches.push(br);
    const outIface = this.iface(dest.transport);
    runBranchRoute(this.d.script, ctx, br);
    if (!outIface) return; // no interface for that transport: startBranch fails it with 503
    // §16.6 step 4: Record-Route, double when the request changes interface (RFC 5658)
    if (DIALOG_CREATING.has(req.method) && req.toTag() === null) {
      const source = ctx.source;
      const inIface = this.iface(source.transport) ?? outIface;
      const tokens = this.d.tokens;
      const inToken = source.transport !== 'udp' || isBehindNat(req, source.address) ? tokens.mint({ transport: source.transport, address: source.address, port: source.port, flowId: source.flowId }) : null;
      const outToken = dest.transport !== 'udp' || target.binding?.nat ? tokens.mint(dest) : null;
      const rrs = recordRoutes(inIface, inToken, outIface, outToken);
      for (let i = rrs.length - 1; i >= 0; i--) out.prepend('record-route', rrs[i]!);
    }
    // §16.6 step 8: our Via, with rport so replies come back to the port we send from
    out.prepend('via', `SIP/2.0/${viaTransport(outIface.transport)} ${outIface.host}:${outIface.port};branch=${newBranch()};rport`);
    if (rc.startsCall) rc.call?.branchAdded(br);
    // asked of the parent: ctx.log makes a child logger, for nothing when info is off
    if (this.d.log.isLevelEnabled('info')) ctx.log.info({ branch: index, ruri: out.uri, dest: `${dest.transport}:${dest.address}:${dest.port}`, flags: br.flagNames, media: br.media }, 'branch');
  }

  private startBranch(rc: ResponseContext, br: Branch): void {
    if (!this.iface(br.dest.transport)) {
      this.branchFinal(rc, br, makeResponse(br.request, 503, { reason: `No ${br.dest.transport} transport` }));
      return;
    }
    const user: ClientTxUser = {
      onResponse: (res) => this.queueResponse(rc, br, res),
      onTimeout: () => this.queueResponse(rc, br, makeResponse(br.request, 408)),
      onTransportError: () => this.queueResponse(rc, br, makeResponse(br.request, 503, { reason: 'Destination Unreachable' })),
    };
    if (rc.request.method === 'INVITE') {
      // Timer C (§16.6 step 11): an INVITE may not ring for ever
      br.timerC = setTimeout(() => this.timerC(rc, br), this.d.timers.C);
    }
    br.tx = this.d.transactions.request(br.request, br.dest, user);
  }

  private timerC(rc: ResponseContext, br: Branch): void {
    if (br.state === 'proceeding') this.cancelBranch(br, 'SIP;cause=408;text="Timer C"');
    else if (br.state === 'pending') {
      br.tx?.terminate();
      this.branchFinal(rc, br, makeResponse(br.request, 408));
    }
  }

  // ---- responses (§16.7) ----

  /** Responses of a context are handled in order: rewriting their SDP takes a moment. */
  private queueResponse(rc: ResponseContext, br: Branch, res: SipResponse): void {
    rc.chain = rc.chain
      .then(() => this.branchResponse(rc, br, res))
      .catch((e: unknown) => rc.ctx.log.error({ err: e, status: res.status }, 'response processing failed'));
  }

  private async branchResponse(rc: ResponseContext, br: Branch, res: SipResponse): Promise<void> {
    // step 3: remove the topmost Via (ours; responses we made up from the branch have it too)
    res.removeFirst('via');
    const status = res.status;
    if (status >= 300) return this.branchFinal(rc, br, res);
    // failures count once the request failed as a whole (finish), not per branch
    this.d.dialogs.response(rc.request, res);
    if (status > 100 && rc.call && res.body.length > 0 && isSdp(res.contentType())) await rc.call.responseIn(br, res);
    if (status < 200) {
      if (br.state === 'pending') br.state = 'proceeding';
      if (br.cancelWanted !== null) this.sendCancel(br, br.cancelWanted);
      if (rc.request.method === 'INVITE' && !rc.cancelled) {
        // "If the proxy receives a provisional response ... it MUST reset Timer C"
        br.clearTimerC();
        br.timerC = setTimeout(() => this.timerC(rc, br), this.d.timers.C);
      }
      if (status === 100) return; // step 5: 100 Trying is not forwarded
      if (rc.startsCall) rc.call?.progress(br, res);
      if (!rc.finalSent) rc.server.respond(res);
      return;
    }
    br.state = 'done';
    br.clearTimerC();
    // step 5: 2xx responses to INVITE are forwarded at once, each of them
    if (!rc.answered) {
      rc.answered = true;
      rc.finalSent = true;
      for (const o of rc.branches) if (o !== br) this.cancelBranch(o, 'SIP;cause=200;text="Call completed elsewhere"');
      this.logOutcome(rc.ctx, status);
      this.contexts.delete(rc.server);
      if (rc.startsCall) await rc.call?.answered(br, dialogFrom(rc.request, rc.server.dest, res, br.dest, (v) => this.isOurRoute(v)));
    }
    if (rc.startsCall) rc.call?.progress(br, res);
    rc.server.respond(res);
  }

  private isOurRoute(value: string): boolean {
    try {
      return this.d.locality.isMyself(parseNameAddr(value).uri);
    } catch {
      return false;
    }
  }

  private branchFinal(rc: ResponseContext, br: Branch, res: SipResponse): void {
    if (br.state === 'done') return;
    br.state = 'done';
    br.final = res;
    br.clearTimerC();
    if (rc.startsCall) rc.call?.branchFailed(br, res.status);
    // step 5: a 6xx ends the search; the other branches are cancelled
    if (res.status >= 600) for (const o of rc.branches) this.cancelBranch(o, `SIP;cause=${res.status}`);
    this.maybeFinish(rc);
  }

  private maybeFinish(rc: ResponseContext): void {
    if (rc.finalSent || !rc.complete || rc.branches.length === 0) return;
    rc.finalSent = true;
    void this.finish(rc);
  }

  /** Every branch failed: failure_route, then the best response upstream (§16.7 steps 6-8). */
  private async finish(rc: ResponseContext): Promise<void> {
    const ctx = rc.ctx;
    const finals = rc.branches.map((b) => b.final!).filter(Boolean);
    let best = chooseBest(finals);
    if (!rc.cancelled && this.d.script.failure) {
      try {
        let act: Action | null;
        try {
          act = await this.d.script.failure(ctx, { status: best.status, response: best });
        } catch (e) {
          if (!(e instanceof SipError)) throw e;
          act = replyFor(ctx, e);
        }
        if (act?.kind === 'reply') best = makeResponse(rc.request, act.status, { ...(act.reason !== undefined && { reason: act.reason }), ...(act.headers !== undefined && { headers: act.headers }) });
        else if (act?.kind === 'relay' && act.targets && act.targets.length > 0) {
          // serial forking: new branches in the same response context
          rc.finalSent = false;
          const start = rc.branches.length;
          for (const t of act.targets) {
            const dest = t.dest ?? (await resolveTarget(this.d.resolver, t));
            if (dest) this.addBranch(rc, ctx, t, dest, rc.branches.length);
          }
          const fresh = rc.branches.slice(start);
          if (fresh.length > 0) {
            await rc.call?.requestOut(fresh).catch((e: unknown) => ctx.log.warn({ err: e }, 'media refused a serial branch'));
            for (const br of fresh) this.startBranch(rc, br);
            return this.maybeFinish(rc);
          }
          rc.finalSent = true;
        }
      } catch (e) {
        ctx.log.error({ err: e }, 'failure route failed');
      }
    }
    const out = upstreamFinal(rc.request, best, finals);
    this.d.dialogs.response(rc.request, out);
    rc.server.respond(out);
    this.contexts.delete(rc.server);
    this.logOutcome(ctx, out.status);
    if (rc.startsCall) rc.call?.ended(rc.cancelled ? 'cancelled' : `failed ${out.status}`);
  }

  // ---- CANCEL (§16.10, §9.1) ----

  private cancel(ctx: ScriptContext, cancelTx: ServerTransaction, invite: InviteServerTransaction | null): void {
    if (!invite) {
      this.reply(cancelTx, 481);
      this.logOutcome(ctx, 481);
      return;
    }
    this.reply(cancelTx, 200);
    this.logOutcome(ctx, 200);
    invite.cancelled = true;
    const rc = this.contexts.get(invite);
    if (!rc) {
      // not forwarded yet (still in the routing script): it never will be
      if (invite.state === 'proceeding') invite.respond(makeResponse(invite.request, 487));
      return;
    }
    this.abandon(rc, ctx.req.get('reason') ?? null, 487, 'Request Terminated', 'cancelled');
  }

  /**
   * Gives up on a ringing INVITE: cancels its branches and, if none is even ringing (they may
   * never answer), answers the caller at once.
   */
  private abandon(rc: ResponseContext, reason: string | null, status: number, phrase: string, why: string): void {
    rc.cancelled = true;
    for (const br of rc.branches) this.cancelBranch(br, reason);
    if (!rc.finalSent && (status !== 487 || rc.branches.every((b) => b.state !== 'proceeding'))) {
      rc.finalSent = true;
      if (isLive(rc.server)) rc.server.respond(makeResponse(rc.request, status, { reason: phrase }));
      this.contexts.delete(rc.server);
      if (rc.startsCall) rc.call?.ended(why);
    }
  }

  private cancelBranch(br: Branch, reason: string | null): void {
    if (br.state === 'done' || br.request.method !== 'INVITE') return;
    if (br.state === 'pending') {
      // §9.1: "If no provisional response has been received, the CANCEL request MUST NOT be
      // sent; rather, the client MUST wait for the arrival of a provisional response"
      br.cancelWanted = reason ?? '';
      return;
    }
    this.sendCancel(br, reason ?? '');
  }

  private sendCancel(br: Branch, reason: string): void {
    br.cancelWanted = null;
    if (br.state === 'done') return;
    this.d.transactions.request(buildCancel(br.request, reason || undefined), br.dest, IGNORE);
  }

  /**
   * A connection closed: branches waiting on it fail now (nothing can answer over it). A call
   * whose caller came over it is the calls floor's to end (it subscribes to the same event).
   */
  flowClosed(flowId: string): void {
    for (const rc of [...this.contexts.values()]) {
      if (rc.startsCall && rc.call && rc.server.dest.flowId === flowId) continue;
      for (const br of rc.branches) {
        if (br.dest.flowId !== flowId || br.state === 'done') continue;
        br.tx?.terminate();
        this.queueResponse(rc, br, makeResponse(br.request, 480, { reason: 'Connection Closed' }));
      }
    }
  }

  close(): void {
    for (const rc of this.contexts.values()) for (const br of rc.branches) br.clearTimerC();
    this.contexts.clear();
  }
}

function isSdp(contentType: string | null): boolean {
  return contentType === 'application/sdp';
}

function isLive(tx: ServerTransaction): boolean {
  return !(tx as InviteServerTransaction).cancelled && (tx.state === 'proceeding' || tx.state === 'trying');
}
