/**
 * A stand-in for the proxy's ScriptContext (server/proxy/script-context.ts) to drive a routing
 * script without a proxy: the request is real, the answers the context would look up
 * (is_myself, trusted peers, credentials, the location table, the tap policy) are set by the
 * test, and the calls that change the request or the registration are recorded.
 */
import pino, { type Logger } from 'pino';
import type { MediaFlags } from '../../server/media/flags.js';
import type { Action, BranchContext, RelayOptions, RequestContext, Target } from '../../server/routing/api.js';
import type { SipRequest } from '../../server/sip/message.js';
import type { Source, TransportKind } from '../../server/sip/transport/types.js';
import { unescapeUri } from '../../server/sip/uri.js';
import { dropAction, localAction, relayAction, replyAction, saveAction } from '../../server/routing/actions.js';

export interface FakeAnswers {
  /** is_myself for the Request-URI (default true) */
  myself?: boolean;
  /** loose_route(): a Route set naming us was consumed (default false) */
  routed?: boolean;
  /** allow_source_address() (default false) */
  trustedPeer?: boolean;
  /** proxy_authorize(): the user the credentials prove, or null for none / wrong ones (default null) */
  authorizedAs?: string | null;
  /** lookup(): null for not a user of ours, [] for not registered now (default []) */
  targets?: Target[] | null;
  /** the tap policy's answer (default false) */
  mayTap?: boolean;
}

/** What the fake's proxyChallenge() returns: the 407 the real context builds from the authenticator. */
export const CHALLENGE: Action = { kind: 'reply', status: 407, reason: 'Proxy Authentication Required', headers: [['Proxy-Authenticate', 'Digest realm="gw.example.com", nonce="n0", qop="auth", algorithm=MD5']] };

const silent: Logger = pino({ level: 'silent' });

export class FakeScriptContext implements RequestContext {
  readonly method: string;
  readonly proto: TransportKind;
  readonly source: Source;
  readonly routed: boolean;
  readonly log = silent;
  authUser: string | null = null;
  trusted = false;
  flags = 0;
  branchFlags = 0;
  /** calls that act on the request or ask a policy, in order: 'consumeCredentials', 'mayTap <spec>', ... */
  readonly calls: string[] = [];

  constructor(readonly req: SipRequest, private readonly answers: FakeAnswers = {}) {
    this.method = req.method;
    this.source = req.source!;
    this.proto = this.source.transport;
    this.routed = answers.routed ?? false;
  }

  setFlag(flag: number): void {
    this.calls.push(`setFlag ${flag}`);
    this.flags |= flag;
  }
  resetFlag(flag: number): void {
    this.flags &= ~flag;
  }
  isFlagSet(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }
  setBranchFlag(flag: number): void {
    this.calls.push(`setBranchFlag ${flag}`);
    this.branchFlags |= flag;
  }
  isBranchFlagSet(flag: number): boolean {
    return (this.branchFlags & flag) !== 0;
  }

  isMyself(): boolean {
    return this.answers.myself ?? true;
  }
  hasToTag(): boolean {
    return this.req.toTag() !== null;
  }
  isUser(): boolean {
    return this.answers.targets !== null;
  }
  async lookup(user?: string): Promise<Target[] | null> {
    this.calls.push(`lookup ${user ?? unescapeUri(this.req.requestUri().user ?? '')}`);
    return this.answers.targets === undefined ? [] : this.answers.targets;
  }

  get fromUser(): string | null {
    const u = this.req.from().uri.user;
    return u === null ? null : unescapeUri(u);
  }
  isTrustedPeer(): boolean {
    return this.answers.trustedPeer ?? false;
  }
  proxyAuthorize(): boolean {
    this.calls.push('proxyAuthorize');
    const user = this.answers.authorizedAs ?? null;
    if (user !== null) this.authUser = user;
    return user !== null;
  }
  proxyChallenge(): Action {
    this.calls.push('proxyChallenge');
    return CHALLENGE;
  }
  forbidAuthId(): Action {
    this.calls.push('forbidAuthId');
    return this.reply(403, 'Forbidden auth ID');
  }
  consumeCredentials(): void {
    this.calls.push('consumeCredentials');
  }
  removeIdentity(): void {
    this.calls.push('removeIdentity');
  }
  assertIdentity(): void {
    this.calls.push(`assertIdentity ${this.authUser ?? '-'}`);
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
  answerLocally(app: string, params: Record<string, string>): Action {
    return localAction(app, params);
  }
  mayTap(spec: string | Record<string, unknown>): boolean {
    this.calls.push(`mayTap ${typeof spec === 'string' ? spec : JSON.stringify(spec)}`);
    return this.answers.mayTap ?? false;
  }
}

/** A place lookup() found: a registered contact with its saved branch flags. */
export function target(uri: string, flags = 0): Target {
  return { uri, dest: null, flags, binding: null };
}

/** The branch_route view of one outgoing branch, as the proxy's runBranchRoute builds it. */
export function fakeBranch(t: Target, toWebSocket: boolean): BranchContext & { flags: number } {
  const b = {
    index: 0,
    target: t,
    toWebSocket,
    flags: t.flags,
    media: null as MediaFlags | null,
    setFlag(f: number) {
      b.flags |= f;
    },
    isFlagSet(f: number) {
      return (b.flags & f) !== 0;
    },
  };
  return b;
}
