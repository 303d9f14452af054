/** The `sip` object a routing script gets: flags, queries, and the actions it may return. */
import type { Logger } from 'pino';
import type { Binding } from '../registrar/binding.js';
import type { AuthRefusal } from '../registrar/authenticator.js';
import type { Registrar } from '../registrar/registrar.js';
import type { CidrSet } from '../net/address-class.js';
import { checkMediaFlags, type MediaFlags } from '../media/flags.js';
import type { Action, BranchContext, RelayOptions, RequestContext, RoutingScript, Target } from '../routing/api.js';
import { parseNameAddr } from '../sip/address.js';
import type { SipRequest } from '../sip/message.js';
import { isWebSocket, type Destination, type Source, type TransportKind } from '../sip/transport/types.js';
import { parseUri, unescapeUri, uriTransport } from '../sip/uri.js';
import type { Locality } from './locality.js';
import { dropAction, localAction, relayAction, replyAction, saveAction } from '../routing/actions.js';

/** The route preprocessing result (§16.4): Route entries of ours consumed, flow token of the last. */
export interface RouteInfo {
  routed: boolean;
  token: string | null;
  tokenTransport: TransportKind;
}

/**
 * A branch to a registered contact: to the address the REGISTER came from when it showed
 * NAT (or came over a connection), else to the contact itself (resolved by the proxy).
 */
export function targetFromBinding(b: Binding): Target {
  const r = b.received;
  return {
    uri: b.contact,
    dest: b.nat ? { transport: r.transport, address: r.address, port: r.port, flowId: r.flowId } : null,
    flags: b.flags,
    binding: b,
  };
}

/**
 * Whether a tap asked for in SIP may start (issue 10): implemented by the taps' URL policy
 * (server/taps/sip-tap-gate.ts). Logs its refusals itself.
 */
export interface TapGate {
  mayTap(spec: string | Record<string, unknown>, trusted: boolean, log: Logger): boolean;
}

/** What the script context consults besides the request: who we are, users, policies. */
export interface ScriptEnv {
  locality: Locality;
  registrar: Registrar;
  /** sip.trustedPeers: trunks and PBXs that send without authenticating (allow_source_address) */
  trustedPeers: CidrSet;
  /** answers mayTap() (the taps' URL policy); null: every tap from SIP refused */
  tapGate: TapGate | null;
}

/** Identity headers a caller may not write itself: the gateway asserts identity (RFC 3325 §5). */
const IDENTITY_HEADERS = ['p-asserted-identity', 'p-preferred-identity'];

export class ScriptContext implements RequestContext {
  flags = 0;
  branchFlags = 0;
  authUser: string | null = null;
  readonly method: string;
  readonly proto: TransportKind;
  readonly source: Source;
  readonly routed: boolean;
  /**
   * The request came from an authenticated user or a trusted peer: what the script's route
   * [AUTH] establishes (routing/script.ts); it alone may start taps and wsbridge.
   */
  trusted = false;
  private childLog: Logger | null = null;
  /** why proxyAuthorize() failed: the reply proxyChallenge() sends */
  private refusal: AuthRefusal | null = null;
  private readonly locality: Locality;
  private readonly registrar: Registrar;

  constructor(
    readonly req: SipRequest,
    readonly route: RouteInfo,
    private readonly parentLog: Logger,
    private readonly env: ScriptEnv,
  ) {
    this.locality = env.locality;
    this.registrar = env.registrar;
    this.method = req.method;
    this.source = req.source!;
    this.proto = this.source.transport;
    this.routed = route.routed;
  }

  /** The request's logger, bound to its Call-ID. pino's child() costs more than routing a
   *  REGISTER and most requests log nothing at the configured level, so it is made on first use. */
  get log(): Logger {
    return (this.childLog ??= this.parentLog.child({ callId: this.req.get('call-id') }));
  }

  setFlag(flag: number): void {
    this.flags |= flag;
  }
  resetFlag(flag: number): void {
    this.flags &= ~flag;
  }
  isFlagSet(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }
  setBranchFlag(flag: number): void {
    this.branchFlags |= flag;
  }
  isBranchFlagSet(flag: number): boolean {
    return (this.branchFlags & flag) !== 0;
  }

  isMyself(uri?: string): boolean {
    try {
      return this.locality.isMyself(uri === undefined ? this.req.requestUri() : parseUri(uri));
    } catch {
      return false;
    }
  }

  hasToTag(): boolean {
    return this.req.toTag() !== null;
  }

  isUser(user: string): boolean {
    return this.registrar.isUser(user);
  }

  async lookup(user?: string): Promise<Target[] | null> {
    const u = user ?? unescapeUri(this.req.requestUri().user ?? '');
    if (!this.registrar.isUser(u)) return null;
    return (await this.registrar.lookup(u)).map(targetFromBinding);
  }

  reply(status: number, reason?: string, headers?: [string, string][]): Action {
    return replyAction(status, reason, headers);
  }

  relay(targets?: Target[] | null, opts: RelayOptions = {}): Action {
    return relayAction(targets, opts);
  }

  save(): Action {
    return saveAction();
  }

  drop(): Action {
    return dropAction();
  }

  mayTap(spec: string | Record<string, unknown>): boolean {
    return this.env.tapGate?.mayTap(spec, this.trusted, this.log) ?? false;
  }

  get fromUser(): string | null {
    try {
      const u = this.req.from().uri.user;
      return u === null ? null : unescapeUri(u);
    } catch {
      return null;
    }
  }

  isTrustedPeer(): boolean {
    return this.env.trustedPeers.has(this.source.address);
  }

  proxyAuthorize(): boolean {
    const result = this.registrar.auth.check(this.req, 'proxy');
    if (result.ok) {
      this.authUser = result.user;
      this.refusal = null;
      return true;
    }
    this.refusal = result;
    return false;
  }

  proxyChallenge(): Action {
    const r = this.refusal ?? this.registrar.auth.check(this.req, 'proxy');
    if (r.ok) return this.reply(500, 'Server Internal Error'); // proxyChallenge() after a success: a script bug
    return this.reply(r.status, r.reason, r.headers);
  }

  forbidAuthId(): Action {
    this.registrar.auth.refuse(this.req, this.authUser, `authenticated as ${this.authUser ?? '?'} but From is ${this.fromUser ?? '?'}`);
    return this.reply(403, 'Forbidden auth ID');
  }

  consumeCredentials(): void {
    this.req.remove('proxy-authorization');
  }

  removeIdentity(): void {
    for (const h of IDENTITY_HEADERS) this.req.remove(h);
  }

  assertIdentity(): void {
    if (this.authUser === null) return;
    const display = this.registrar.auth.account(this.authUser)?.displayName;
    const name = display ? `"${display.replace(/["\\\r\n]/g, '')}" ` : '';
    const realm = this.registrar.auth.realm;
    const host = realm.includes(':') && !realm.startsWith('[') ? `[${realm}]` : realm;
    this.req.set('p-asserted-identity', `${name}<sip:${this.authUser}@${host}>`);
  }

  answerLocally(app: string, params: Record<string, string>): Action {
    return localAction(app, params);
  }
}

/** What branch_route may set on an outgoing branch (the proxy's Branch). */
export interface RoutedBranch {
  readonly index: number;
  readonly target: Target;
  readonly dest: Destination;
  flags: number;
  media: MediaFlags | null;
}

/** branch_route for one outgoing branch: the script sets its flags and its media modes. */
export function runBranchRoute(script: RoutingScript, ctx: ScriptContext, br: RoutedBranch): void {
  const target = br.target;
  let toWebSocket = isWebSocket(br.dest.transport);
  try {
    toWebSocket ||= ['ws', 'wss'].includes(uriTransport(parseNameAddr(`<${target.uri}>`).uri) ?? '');
  } catch {
    // an unreadable target URI: it fails when sent
  }
  const bctx: BranchContext = {
    index: br.index,
    target,
    toWebSocket,
    setFlag: (f) => { br.flags |= f; },
    isFlagSet: (f) => (br.flags & f) !== 0,
    media: null,
  };
  try {
    script.branch?.(ctx, bctx);
    // a script in plain JavaScript skips the compiler: an unknown media mode is named here
    br.media = bctx.media && checkMediaFlags(bctx.media);
  } catch (e) {
    ctx.log.error({ err: e }, 'branch route failed');
  }
}
