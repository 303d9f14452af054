/**
 * The stateful proxy (RFC 3261 §16): validates a request (§16.3), consumes our Route entries
 * (§16.4), asks the routing script what to do, and forwards to every target in parallel
 * (§16.5-16.6), choosing the best final response (§16.7); CANCEL per §16.10. SDP on the way
 * through is handed to the media layer (rtpengine's offer/answer), and the proxy can end a
 * call itself (BYE both ways) when its media or a browser's connection goes.
 */
import type { Logger } from 'pino';
import type { Call } from '../../calls/call.js';
import type { CallRegistry } from '../../calls/call-registry.js';
import { SdpError, type MediaService } from '../../media/media-service.js';
import type { Side } from '../../media/media-session.js';
import type { Action, BranchContext, RoutingScript, Target } from '../../routing/api.js';
import { flagNames } from '../../routing/flags.js';
import type { Registrar } from '../../registrar/registrar.js';
import { parseNameAddr } from '../address.js';
import { newBranch } from '../ids.js';
import type { SipRequest, SipResponse } from '../message.js';
import { makeResponse } from '../reply.js';
import { buildCancel } from '../requests.js';
import type { ClientTxUser } from '../transaction/client-transaction.js';
import { InviteServerTransaction, type ServerTransaction } from '../transaction/server-transaction.js';
import type { Timers } from '../transaction/timers.js';
import type { TransactionLayer, TransactionUser } from '../transaction/transaction-layer.js';
import type { SipInterface, TransportLayer } from '../transport/transport-layer.js';
import { isWebSocket, viaTransport, type Destination, type TransportKind } from '../transport/types.js';
import { uriTransport } from '../uri.js';
import { buildBye, dialogFrom } from './dialog.js';
import type { LocalEndpoint } from './local-endpoint.js';
import type { Locality } from './locality.js';
import { destinationFromToken, flowToken, recordRoutes } from './record-route.js';
import type { Resolver } from './resolver.js';
import { Branch, chooseBest, ResponseContext } from './response-context.js';
import { ScriptContext, type RouteInfo, type TapGate } from './script-context.js';

export interface ProxyDeps {
  transactions: TransactionLayer;
  transports: TransportLayer;
  locality: Locality;
  resolver: Resolver;
  registrar: Registrar;
  calls: CallRegistry;
  script: RoutingScript;
  timers: Timers;
  log: Logger;
  /** the media bridge; null: SDP passes through untouched */
  media: MediaService | null;
  /** calls the gateway answers itself (wsbridge) */
  local: LocalEndpoint;
  /** starts an audio tap the routing script asked for (it waits for the answer itself) */
  startTap?: (call: Call, spec: string | Record<string, unknown>, log: Logger) => void;
  /** answers the script's sip.mayTap() (the taps' URL policy); none: every tap from SIP refused */
  tapGate?: TapGate;
  /** Max-Forwards for requests that come without one */
  maxForwards: number;
}

/** Requests that create dialogs, and so get Record-Route (§16.6 step 4). */
const DIALOG_CREATING = new Set(['INVITE', 'SUBSCRIBE', 'REFER']);
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, MESSAGE, NOTIFY, REFER, SUBSCRIBE, PRACK';
const IGNORE: ClientTxUser = { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} };

const other = (s: Side): Side => (s === 'caller' ? 'callee' : 'caller');

export class Proxy implements TransactionUser {
  private readonly contexts = new Map<ServerTransaction, ResponseContext>();
  /** shutting down: new calls are refused (503 with Retry-After), calls up go on */
  draining = false;

  constructor(private readonly d: ProxyDeps) {
    d.media?.on('end', (callId, reason) => {
      const call = this.d.calls.get(callId);
      if (call) this.hangup(call, reason);
    });
  }

  onRequest(req: SipRequest, tx: ServerTransaction | null): void {
    void this.handle(req, tx, null);
  }

  onCancel(cancel: SipRequest, tx: ServerTransaction, invite: InviteServerTransaction | null): void {
    void this.handle(cancel, tx, invite);
  }

  onStrayResponse(res: SipResponse): void {
    // A response for no transaction of ours (a late 2xx retransmission, or not ours at all,
    // like RFC 4475 bcast): nothing can route it back reliably, so it is dropped.
    this.d.log.debug({ status: res.status, callId: res.get('call-id') }, 'stray response dropped');
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
    if (mf !== undefined && Number(mf) === 0 && !this.isForUs(req)) return this.reply(tx, 483);
    // step 5: "If the request contains a Proxy-Require header field ... with one or more
    // option-tags this element does not understand, the element MUST return a 420"
    const proxyRequire = req.getAll('proxy-require');
    if (proxyRequire.length > 0) return this.reply(tx, 420, undefined, [['Unsupported', proxyRequire.join(', ')]]);
    if (this.draining && req.method === 'INVITE' && req.toTag() === null) {
      return this.reply(tx, 503, 'Service Unavailable (shutting down)', [['Retry-After', '30']]);
    }
    const route = this.preprocessRoutes(req);
    // in a dialog the gateway itself answered: the local endpoint is the UAS
    if (req.toTag() !== null && this.d.local.owns(req)) return this.d.local.inDialog(req, tx);
    // The gateway anchors media: an INVITE must offer SDP it can read (RFC 4475 invut)
    if (req.method === 'INVITE' && req.body.length > 0 && !isSdp(req.contentType())) {
      return this.reply(tx, 415, undefined, [['Accept', 'application/sdp']]);
    }
    const ctx = new ScriptContext(req, route, this.d.log, this.d.locality, this.d.registrar, this.d.tapGate);
    let action: Action;
    try {
      action = await this.d.script.request(ctx);
    } catch (e) {
      ctx.log.error({ err: e }, 'routing script failed');
      action = ctx.reply(500, 'Routing Script Error');
    }
    await this.execute(action, ctx, tx, invite);
  }

  /** Requests we answer ourselves even with Max-Forwards 0 (§16.3 step 3; RFC 4475 zeromf). */
  private isForUs(req: SipRequest): boolean {
    if (req.method === 'REGISTER') return true;
    const uri = req.requestUri();
    return req.method === 'OPTIONS' && uri.user === null && this.d.locality.isMyself(uri);
  }

  /**
   * §16.4: a Request-URI we put in a Record-Route comes from a strict router (take the last
   * Route instead); then every top Route entry naming us is removed. The flow token of the
   * last one says how to reach the next hop when that is a WebSocket client.
   */
  private preprocessRoutes(req: SipRequest): RouteInfo {
    const info: RouteInfo = { routed: false, token: null, tokenTransport: 'udp' };
    const ruri = req.requestUri();
    if (ruri.params.has('lr') && this.d.locality.isMyself(ruri)) {
      const routes = req.getAll('route');
      const last = routes[routes.length - 1];
      if (last !== undefined) {
        try {
          req.uri = parseNameAddr(last).uriText;
          req.headers.splice(req.headers.findLastIndex((h) => h.key === 'route'), 1);
        } catch {
          // a broken Route: leave the request as it is
        }
      }
    }
    for (;;) {
      const top = req.get('route');
      if (top === undefined) break;
      let uri;
      try {
        uri = parseNameAddr(top).uri;
      } catch {
        break;
      }
      if (!this.d.locality.isMyself(uri)) break;
      req.removeFirst('route');
      info.routed = true;
      info.token = uri.user;
      const t = uriTransport(uri);
      info.tokenTransport = t === 'ws' || t === 'wss' ? t : 'udp';
    }
    return info;
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
        this.logOutcome(ctx, action.status);
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
        const status = await this.d.local.answer(req, tx, action.app, action.params, flagNames(ctx.flags));
        this.logOutcome(ctx, status, { app: action.app });
        return;
      }
      case 'relay':
        if (req.method === 'ACK') return this.forwardAck(ctx);
        if (req.method === 'CANCEL') return this.cancel(ctx, tx!, invite);
        return this.forward(ctx, tx!, action.targets);
    }
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

  private async forward(ctx: ScriptContext, tx: ServerTransaction, targets: Target[] | null): Promise<void> {
    const req = ctx.req;
    if (!isLive(tx)) return; // cancelled or gone meanwhile
    const list = targets ?? [await this.nextHop(ctx)].filter((t): t is Target => t !== null);
    // resolve every destination before the first branch starts, so that a branch failing at
    // once cannot end the response context while others are still being built
    const resolved: { target: Target; dest: Destination }[] = [];
    for (const target of list) {
      const dest = target.dest ?? (await this.resolveTarget(target));
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
    const dialogCall = req.toTag() !== null ? this.d.calls.find(req.callId(), req.fromTag(), req.toTag()) : undefined;
    if (req.method === 'INVITE' && req.toTag() === null) rc.call = this.startCall(ctx);
    if (rc.call) for (const spec of ctx.taps) this.d.startTap?.(rc.call, spec, ctx.log);
    if (dialogCall?.dialog) {
      const side = sideOf(dialogCall, req);
      dialogCall.dialog[side].cseq = Math.max(dialogCall.dialog[side].cseq, req.cseq().seq);
    }
    resolved.forEach(({ target, dest }, i) => this.addBranch(rc, ctx, target, dest, i));
    try {
      await this.mediaForRequest(rc, ctx, dialogCall);
    } catch (e) {
      this.contexts.delete(tx);
      const status = e instanceof SdpError ? e.status : 500;
      const why = e instanceof Error ? e.message : String(e);
      ctx.log.warn({ status, reason: why }, 'media refused the offer');
      this.reply(tx, status, undefined, [['Warning', `399 gateway "${why.replace(/["\\]/g, "'").slice(0, 120)}"`]]);
      this.logOutcome(ctx, status);
      if (rc.call) this.d.calls.end(rc.call, `failed ${status}`);
      return;
    }
    if (req.method === 'BYE' && dialogCall) this.d.calls.end(dialogCall, 'bye');
    if (!isLive(tx)) return;
    for (const br of rc.branches) this.startBranch(rc, br);
    this.maybeFinish(rc);
  }

  /** Where a request without lookup targets goes: Route, else Request-URI (§16.5, §16.6 step 6-7). */
  private async nextHop(ctx: ScriptContext): Promise<Target | null> {
    const req = ctx.req;
    const top = req.get('route');
    let dest: Destination | null = null;
    if (top === undefined && ctx.route.token) {
      dest = destinationFromToken(ctx.route.token, ctx.route.tokenTransport);
      if (dest?.flowId && !this.d.transports.flow(dest.flowId)) dest = null; // that connection closed
    }
    if (!dest) {
      try {
        const uri = top !== undefined ? parseNameAddr(top).uri : req.requestUri();
        dest = await this.d.resolver.resolve(uri);
      } catch {
        dest = null;
      }
    }
    return dest ? { uri: req.uri, dest, flags: 0, binding: null } : null;
  }

  private async resolveTarget(target: Target): Promise<Destination | null> {
    try {
      return await this.d.resolver.resolve(parseNameAddr(`<${target.uri}>`).uri);
    } catch {
      return null;
    }
  }

  private iface(transport: TransportKind): SipInterface | undefined {
    return this.d.transports.interfaceFor(transport);
  }

  private addBranch(rc: ResponseContext, ctx: ScriptContext, target: Target, dest: Destination, index: number): void {
    const req = ctx.req;
    const out = req.clone();
    if (target.binding !== null || !ctx.routed) out.uri = target.uri;
    // §16.6 step 3: Max-Forwards
    const mf = req.get('max-forwards');
    out.set('max-forwards', String(mf === undefined ? this.d.maxForwards : Math.max(0, Number(mf) - 1)));
    const br = new Branch(index, target, out, dest, target.flags);
    rc.branches.push(br);
    const outIface = this.iface(dest.transport);
    let toWebSocket = isWebSocket(dest.transport);
    try {
      toWebSocket ||= ['ws', 'wss'].includes(uriTransport(parseNameAddr(`<${target.uri}>`).uri) ?? '');
    } catch {
      // an unreadable target URI: it fails when sent
    }
    // branch_route: flags and media handling for this leg
    const bctx: BranchContext = {
      index,
      target,
      toWebSocket,
      setFlag: (f) => { br.flags |= f; },
      isFlagSet: (f) => (br.flags & f) !== 0,
      media: null,
    };
    try {
      this.d.script.branch?.(ctx, bctx);
    } catch (e) {
      ctx.log.error({ err: e }, 'branch route failed');
    }
    br.media = bctx.media;
    if (!outIface) return; // no interface for that transport: startBranch fails it with 503
    // §16.6 step 4: Record-Route, double when the request changes interface (RFC 5658)
    if (DIALOG_CREATING.has(req.method) && req.toTag() === null) {
      const source = ctx.source;
      const inIface = this.iface(source.transport) ?? outIface;
      const inToken = source.transport !== 'udp' ? flowToken({ ...source }) : this.natToken(req, source);
      const outToken = dest.transport !== 'udp' || target.binding?.nat ? flowToken(dest) : null;
      const rrs = recordRoutes(inIface, inToken, outIface, outToken);
      for (let i = rrs.length - 1; i >= 0; i--) out.prepend('record-route', rrs[i]!);
    }
    // §16.6 step 8: our Via, with rport so replies come back to the port we send from
    out.prepend('via', `SIP/2.0/${viaTransport(outIface.transport)} ${outIface.host}:${outIface.port};branch=${newBranch()};rport`);
    if (rc.call) {
      rc.call.legs.push({ index, uri: out.uri, dest, flags: flagNames(br.flags), media: br.media, status: 0 });
    }
    ctx.log.info({ branch: index, ruri: out.uri, dest: `${dest.transport}:${dest.address}:${dest.port}`, flags: flagNames(br.flags), media: br.media }, 'branch');
  }

  /** A UDP client whose Contact names another address than it sends from is behind NAT. */
  private natToken(req: SipRequest, source: { transport: TransportKind; address: string; port: number }): string | null {
    const contact = req.get('contact');
    if (contact === undefined) return null;
    try {
      const host = parseNameAddr(contact).uri.host;
      return host === source.address ? null : flowToken({ transport: 'udp', address: source.address, port: source.port });
    } catch {
      return null;
    }
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
    if (status > 100 && rc.media && res.body.length > 0 && isSdp(res.contentType())) {
      await this.mediaForResponse(rc, br, res);
    }
    if (status < 200) {
      if (br.state === 'pending') br.state = 'proceeding';
      if (br.cancelWanted !== null) this.sendCancel(br, br.cancelWanted);
      if (rc.request.method === 'INVITE' && !rc.cancelled) {
        // "If the proxy receives a provisional response ... it MUST reset Timer C"
        br.clearTimerC();
        br.timerC = setTimeout(() => this.timerC(rc, br), this.d.timers.C);
      }
      if (status === 100) return; // step 5: 100 Trying is not forwarded
      this.updateCall(rc, br, res);
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
      if (rc.call) {
        rc.call.dialog = dialogFrom(rc.request, rc.server.dest, res, br.dest, (v) => this.isOurRoute(v));
        if (rc.call.media) await this.d.media?.select(rc.call.id, br.index);
      }
    }
    this.updateCall(rc, br, res);
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
    if (rc.call) {
      const leg = rc.call.legs.find((l) => l.index === br.index);
      if (leg) leg.status = res.status;
      if (rc.call.media) void this.d.media?.dropBranch(rc.call.id, br.index);
    }
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
        const act = await this.d.script.failure(ctx, { status: best.status, response: best });
        if (act?.kind === 'reply') best = makeResponse(rc.request, act.status, { ...(act.reason !== undefined && { reason: act.reason }), ...(act.headers !== undefined && { headers: act.headers }) });
        else if (act?.kind === 'relay' && act.targets && act.targets.length > 0) {
          // serial forking: new branches in the same response context
          rc.finalSent = false;
          const start = rc.branches.length;
          for (const t of act.targets) {
            const dest = t.dest ?? (await this.resolveTarget(t));
            if (dest) this.addBranch(rc, ctx, t, dest, rc.branches.length);
          }
          const fresh = rc.branches.slice(start);
          if (fresh.length > 0) {
            await this.mediaForRequest(rc, ctx, undefined, fresh).catch((e: unknown) => ctx.log.warn({ err: e }, 'media refused a serial branch'));
            for (const br of fresh) this.startBranch(rc, br);
            return this.maybeFinish(rc);
          }
          rc.finalSent = true;
        }
      } catch (e) {
        ctx.log.error({ err: e }, 'failure route failed');
      }
    }
    let out = best;
    if (best.status === 503) {
      // step 6: "the proxy SHOULD generate a 500" rather than pass 503 upstream
      out = makeResponse(rc.request, 500, { reason: 'Server Internal Error (downstream unavailable)' });
    } else if (best.status === 401 || best.status === 407) {
      // step 7: collect every challenge of every branch
      out = best.clone();
      for (const key of ['www-authenticate', 'proxy-authenticate']) {
        const all = finals.flatMap((f) => (f.status === 401 || f.status === 407 ? f.getAll(key) : []));
        out.remove(key);
        for (const v of all) out.append(key, v);
      }
    }
    rc.server.respond(out);
    this.contexts.delete(rc.server);
    this.logOutcome(ctx, out.status);
    if (rc.call) this.d.calls.end(rc.call, rc.cancelled ? 'cancelled' : `failed ${out.status}`);
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
      if (rc.call) this.d.calls.end(rc.call, why);
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

  // ---- ACK for 2xx: end to end, forwarded statelessly (§16.11 for this one request) ----

  private async forwardAck(ctx: ScriptContext): Promise<void> {
    const req = ctx.req;
    const target = await this.nextHop(ctx);
    if (!target?.dest) return;
    const iface = this.iface(target.dest.transport);
    if (!iface) return;
    const out = req.clone();
    const mf = req.get('max-forwards');
    out.set('max-forwards', String(mf === undefined ? this.d.maxForwards : Math.max(0, Number(mf) - 1)));
    // an ACK carrying the answer to an offer a 2xx made (late offer, RFC 3261 §13.2.1)
    const call = this.d.calls.find(req.callId(), req.fromTag(), req.toTag());
    if (call?.media && this.d.media && req.body.length > 0 && isSdp(req.contentType())) {
      try {
        out.body = Buffer.from(await this.d.media.answer(call.id, sideOf(call, req), call.answeredLeg ?? 0, req.body.toString('latin1')), 'latin1');
      } catch (e) {
        ctx.log.warn({ err: e }, 'media refused the answer in an ACK');
      }
    }
    // The branch must be the same for retransmissions of this ACK: derive it from theirs.
    const theirs = req.via().params.get('branch') ?? req.callId();
    out.prepend('via', `SIP/2.0/${viaTransport(iface.transport)} ${iface.host}:${iface.port};branch=z9hG4bKsl${hash36(theirs)};rport`);
    this.d.transactions.send(out.toBuffer(), target.dest);
  }

  // ---- media (rtpengine offer/answer on the way through) ----

  /** Rewrites the SDP of an outgoing request: each branch's offer, or an in-dialog re-offer. */
  private async mediaForRequest(rc: ResponseContext, ctx: ScriptContext, dialogCall: Call | undefined, branches = rc.branches): Promise<void> {
    const media = this.d.media;
    if (!media) return;
    const req = ctx.req;
    const sdp = req.body.length > 0 && isSdp(req.contentType()) ? req.body.toString('latin1') : null;
    const call = rc.call;
    if (call) {
      if (!call.media) {
        call.media = true;
        call.onEnd(() => media.delete(call.id));
      }
      rc.media = { call, requester: 'caller', requestOffered: sdp !== null };
      if (sdp === null) return; // late offer: the answer's 2xx offers
      for (const br of branches) {
        br.request.body = Buffer.from(await media.offer(call.id, 'caller', br.index, sdp, br.media?.offer ?? null), 'latin1');
      }
      return;
    }
    if (!dialogCall?.media || (req.method !== 'INVITE' && req.method !== 'UPDATE')) return;
    const side = sideOf(dialogCall, req);
    rc.media = { call: dialogCall, requester: side, requestOffered: sdp !== null };
    if (sdp === null) return;
    const out = await media.offer(dialogCall.id, side, dialogCall.answeredLeg ?? 0, sdp, this.flagsTowards(dialogCall, other(side)));
    for (const br of branches) br.request.body = Buffer.from(out, 'latin1');
  }

  /** Rewrites the SDP of a response: the answer to our offer, or an offer (late offer). */
  private async mediaForResponse(rc: ResponseContext, br: Branch, res: SipResponse): Promise<void> {
    const media = this.d.media!;
    const plan = rc.media!;
    const call = plan.call;
    const responder = other(plan.requester);
    const branch = rc.call ? br.index : (call.answeredLeg ?? 0);
    const sdp = res.body.toString('latin1');
    try {
      if (plan.requestOffered) {
        res.body = Buffer.from(await media.answer(call.id, responder, branch, sdp), 'latin1');
      } else {
        const flags = rc.call ? (br.media?.answer ?? null) : this.flagsTowards(call, plan.requester);
        res.body = Buffer.from(await media.offer(call.id, responder, branch, sdp, flags), 'latin1');
      }
    } catch (e) {
      // the answer names nothing we can bridge: the call cannot carry audio
      rc.ctx.log.warn({ err: e, status: res.status }, 'media refused the SDP of a response');
      if (res.status >= 200) setImmediate(() => this.hangup(call, `media: ${(e as Error).message}`));
    }
  }

  /** The flags of the leg a re-offer goes to: the branch's offer flags describe the callee. */
  private flagsTowards(call: Call, to: Side): string | null {
    const leg = call.legs.find((l) => l.index === (call.answeredLeg ?? 0));
    return (to === 'callee' ? leg?.media?.offer : leg?.media?.answer) ?? null;
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
      for (const to of ['callee', 'caller'] as const) {
        const dest = call.dialog[to].dest;
        const iface = this.iface(dest.transport);
        if (!iface || !call.dialog[to].target) continue;
        const bye = buildBye(call.callId, call.dialog, to, { transport: viaTransport(iface.transport), host: iface.host, port: iface.port }, reason);
        this.d.transactions.request(bye, dest, IGNORE);
      }
      this.d.calls.end(call, reason);
      return;
    }
    const rc = [...this.contexts.values()].find((r) => r.call === call);
    if (rc) this.abandon(rc, `SIP;text="${reason.slice(0, 80)}"`, 480, `Temporarily Unavailable (${reason.slice(0, 60)})`, reason);
    this.d.calls.end(call, reason);
  }

  /**
   * A WebSocket connection closed: branches waiting on it fail now (nothing can answer over
   * it), and calls it carried end (BYE to the other side).
   */
  flowClosed(flowId: string): void {
    for (const rc of [...this.contexts.values()]) {
      if (rc.server.dest.flowId === flowId && rc.call) {
        this.hangup(rc.call, 'caller connection closed');
        continue;
      }
      for (const br of rc.branches) {
        if (br.dest.flowId !== flowId || br.state === 'done') continue;
        br.tx?.terminate();
        this.queueResponse(rc, br, makeResponse(br.request, 480, { reason: 'Connection Closed' }));
      }
    }
    for (const call of this.d.calls.list()) {
      const d = call.dialog;
      if (d && (d.caller.dest.flowId === flowId || d.callee.dest.flowId === flowId)) this.hangup(call, 'WebSocket connection closed');
    }
  }

  close(): void {
    for (const rc of this.contexts.values()) for (const br of rc.branches) br.clearTimerC();
    this.contexts.clear();
  }

  // ---- calls ----

  private startCall(ctx: ScriptContext): Call {
    const req = ctx.req;
    const from = req.from();
    const s = ctx.source;
    return this.d.calls.create(
      req.callId(),
      req.fromTag() ?? '',
      { uri: from.uriText, display: from.display, transport: s.transport, address: s.address, port: s.port },
      req.to().uriText,
      flagNames(ctx.flags),
    );
  }

  private updateCall(rc: ResponseContext, br: Branch, res: SipResponse): void {
    const call = rc.call;
    if (!call || call.state === 'ended' || call.state === 'answered') return;
    const leg = call.legs.find((l) => l.index === br.index);
    if (leg) leg.status = res.status;
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
}

function isSdp(contentType: string | null): boolean {
  return contentType === 'application/sdp';
}

function isLive(tx: ServerTransaction): boolean {
  return !(tx as InviteServerTransaction).cancelled && (tx.state === 'proceeding' || tx.state === 'trying');
}

/** Which side of the call sent this in-dialog request: its From tag is the caller's or not. */
function sideOf(call: Call, req: SipRequest): Side {
  return req.fromTag() === call.fromTag ? 'caller' : 'callee';
}

/** FNV-1a, base 36: a short stable digest for derived branch ids. */
function hash36(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}
