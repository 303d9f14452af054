/**
 * What a routing script sees and returns. The script decides; the core acts: it returns an
 * Action (reply, relay, save, local, drop) and never touches sockets, transactions or media
 * itself. Stages (drachtio's `use()`) run before `request` and may answer first (auth, rate
 * limits); a SipError thrown anywhere in the script becomes that reply.
 */
import type { Logger } from 'pino';
import type { MediaFlags } from '../media/flags.js';
import type { Binding } from '../registrar/binding.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { Destination, Source, TransportKind } from '../sip/transport/types.js';

/**
 * An audio tap a call asks for: mod_audio_stream's command ("start <ws-url> <mono|mixed|stereo>
 * <8k|16k> [metadata]") or the HTTP API's start options. It starts with the call and
 * attaches once the call is answered.
 */
export type TapRequest = string | Record<string, unknown>;

export interface RelayOptions {
  /** audio taps to start with the call (initial INVITE only) */
  taps?: TapRequest[];
}

export type Action =
  | { kind: 'reply'; status: number; reason?: string; headers?: [string, string][] }
  /** forward statefully: to these targets (parallel forking), or by Route / Request-URI */
  | { kind: 'relay'; targets: Target[] | null; taps: TapRequest[] }
  /** registrar: authenticate and save the contacts (with the branch flags set) */
  | { kind: 'save' }
  /** the gateway answers the call itself into an application (wsbridge) */
  | { kind: 'local'; app: string; params: Record<string, string> }
  | { kind: 'drop' };

/** One place a request can be forked to. */
export interface Target {
  /** the branch's Request-URI */
  uri: string;
  /** where to send it; null: resolve from the URI */
  dest: Destination | null;
  /** branch flags (restored from the binding by lookup) */
  flags: number;
  /** the registration this target came from, if any */
  binding: Binding | null;
}

export interface RequestContext {
  readonly req: SipRequest;
  readonly method: string;
  /** transport the request arrived on (`proto` in OpenSIPS) */
  readonly proto: TransportKind;
  readonly source: Source;
  /** loose_route(): the request carried a Route set through us, now consumed by the core */
  readonly routed: boolean;
  readonly log: Logger;
  /** the user a stage authenticated the request as (proxy_authorize's $au); null: not authenticated */
  authUser: string | null;
  /**
   * The request came from an authenticated user or a trusted peer (sip.trustedPeers): what
   * may start taps and wsbridge. Set by the script's authentication (see routing/script.ts).
   */
  trusted: boolean;

  setFlag(flag: number): void;
  resetFlag(flag: number): void;
  isFlagSet(flag: number): boolean;
  /** branch flags for REGISTER: saved with the contacts */
  setBranchFlag(flag: number): void;
  isBranchFlagSet(flag: number): boolean;

  /** is_myself: the URI (default: the Request-URI) names this gateway or its domain */
  isMyself(uri?: string): boolean;
  hasToTag(): boolean;
  /** a user of ours (whether registered or not) */
  isUser(user: string): boolean;
  /** lookup("location"): targets for a user (default: the Request-URI's); null when not ours */
  lookup(user?: string): Promise<Target[] | null>;

  // ---- route[AUTH] (Kamailio's default script) ----
  /** $fU: the user part of From, unescaped; null when From has none */
  readonly fromUser: string | null;
  /** allow_source_address(): the request comes from sip.trustedPeers (a trunk, a PBX) */
  isTrustedPeer(): boolean;
  /**
   * proxy_authorize(): digest credentials in Proxy-Authorization, checked against `users`
   * (fresh nonce, unused nonce-count); true sets `authUser` ($au). Failures are logged and
   * counted against the source (flood guard).
   */
  proxyAuthorize(): boolean;
  /** proxy_challenge(): the 407 with a fresh challenge (or the 403 a wrong password gets) */
  proxyChallenge(): Action;
  /** The 403 for credentials of another user than From ($au != $fU); logged and counted as a failure. */
  forbidAuthId(): Action;
  /** consume_credentials(): Proxy-Authorization is not forwarded */
  consumeCredentials(): void;
  /** removes P-Asserted-Identity / P-Preferred-Identity a caller wrote (only we assert identity) */
  removeIdentity(): void;
  /** P-Asserted-Identity (RFC 3325) for the authenticated user, towards the callee */
  assertIdentity(): void;

  reply(status: number, reason?: string, headers?: [string, string][]): Action;
  /** t_relay: to the targets (parallel forking), or by Route / Request-URI; `taps` start with the call */
  relay(targets?: Target[] | null, opts?: RelayOptions): Action;
  save(): Action;
  drop(): Action;
  /** Answer the call in the gateway, into an application: 'wsbridge' (params: uri, headers, contentType). */
  answerLocally(app: string, params: Record<string, string>): Action;
  /**
   * May this request start a tap (or wsbridge) to where `spec` points: a URL, a
   * mod_audio_stream command or the API's options. True only when the request is `trusted`
   * and the URL matches taps.allowedUrls; a refusal is logged (say nothing more to the caller).
   * The address is checked again, after resolving, when the tap connects.
   */
  mayTap(spec: string | Record<string, unknown>): boolean;
}

export interface BranchContext {
  readonly index: number;
  readonly target: Target;
  /** the target is a WebSocket client (its contact has transport=ws/wss, or its flow is one) */
  readonly toWebSocket: boolean;
  setFlag(flag: number): void;
  isFlagSet(flag: number): boolean;
  /** how the media layer handles this leg (typed rtpengine_offer / rtpengine_answer modes) */
  media: MediaFlags | null;
}

export interface FailureContext {
  /** the best final response of all branches (§16.7 step 6) */
  readonly status: number;
  readonly response: SipResponse;
}

/**
 * A stage before `request` (drachtio's `use()`, OpenSIPS's proxy_authorize/pike_check at the
 * top of route{}): return `next()` to go on, or an Action (e.g. `ctx.reply(407, ..., [[
 * 'Proxy-Authenticate', ...]])`) to answer here. A stage may mark the context (`ctx.authUser`,
 * flags) for the stages and the route after it.
 */
export type Stage = (ctx: RequestContext, next: () => Promise<Action>) => Action | Promise<Action>;

/**
 * The routes of an OpenSIPS script: `stages` run first, in order; `request` is route{},
 * `branch` is branch_route[] (run once per outgoing branch), `failure` is failure_route[] (run
 * when every branch failed; it may relay again or change the reply; null forwards the best
 * response). `request` and `failure` may throw SipError(status, reason, headers) to reply.
 */
export interface RoutingScript {
  stages?: Stage[];
  request(ctx: RequestContext): Action | Promise<Action>;
  branch?(ctx: RequestContext, branch: BranchContext): void;
  failure?(ctx: RequestContext, failure: FailureContext): Action | null | Promise<Action | null>;
}
