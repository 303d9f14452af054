/**
 * The response context of a forwarded request (RFC 3261 §16.7): its branches, their
 * responses, and the choice of the best final response.
 */
import type { MediaFlags } from '../media/flags.js';
import type { Target } from '../routing/api.js';
import { flagNames } from '../routing/flags.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { makeResponse } from '../sip/reply.js';
import type { ClientTransaction } from '../sip/transaction/client-transaction.js';
import type { ServerTransaction } from '../sip/transaction/server-transaction.js';
import type { Destination } from '../sip/transport/types.js';
import type { BranchView, ForwardedCall } from './hooks.js';
import type { ScriptContext } from './script-context.js';

export type BranchState = 'pending' | 'proceeding' | 'done';

export class Branch implements BranchView {
  state: BranchState = 'pending';
  tx: ClientTransaction | null = null;
  final: SipResponse | null = null;
  /** a CANCEL is owed as soon as a provisional arrives (§9.1: not before) */
  cancelWanted: string | null = null;
  timerC: NodeJS.Timeout | null = null;
  media: MediaFlags | null = null;

  constructor(
    readonly index: number,
    readonly target: Target,
    readonly request: SipRequest,
    readonly dest: Destination,
    public flags: number,
  ) {}

  get flagNames(): string[] {
    return flagNames(this.flags);
  }

  clearTimerC(): void {
    if (this.timerC) clearTimeout(this.timerC);
    this.timerC = null;
  }
}

export class ResponseContext {
  readonly branches: Branch[] = [];
  finalSent = false;
  /** a 2xx was forwarded (INVITE: further 2xx are still forwarded, §16.7 step 5) */
  answered = false;
  cancelled = false;
  /** the calls floor's handle on this request's call (the one an initial INVITE starts, or the dialog's) */
  call: ForwardedCall | null = null;
  /** this request is the initial INVITE of its call (not a request inside its dialog) */
  startsCall = false;
  /** responses are handled one after the other (their SDP is rewritten asynchronously) */
  chain: Promise<void> = Promise.resolve();

  constructor(
    readonly server: ServerTransaction,
    readonly request: SipRequest,
    /** the routing script's view of the request (flags, logger), for the failure route */
    readonly ctx: ScriptContext,
  ) {}

  get complete(): boolean {
    return this.branches.every((b) => b.state === 'done');
  }
}

/** §16.7 step 6: "SHOULD give preference to 401, 407, 415, 420, and 484 if the 4xx class is chosen" */
const PREFERRED_4XX = [401, 407, 415, 420, 484];

/**
 * The best of the final responses: any 6xx, else the lowest class; within a class the RFC's
 * preferred codes, then an answer from a phone (486, 404...) over our own failures to reach
 * it (408 timeout, 503 unreachable).
 */
export function chooseBest(finals: SipResponse[]): SipResponse {
  const six = finals.find((r) => r.status >= 600);
  if (six) return six;
  let best = finals[0]!;
  for (const r of finals) {
    const cls = Math.floor(r.status / 100);
    const bestCls = Math.floor(best.status / 100);
    if (cls < bestCls) best = r;
    else if (cls === bestCls && rank(r.status) < rank(best.status)) best = r;
  }
  return best;
}

function rank(status: number): number {
  const p = PREFERRED_4XX.indexOf(status);
  if (p >= 0) return p;
  if (status === 408 || status === 503) return 100;
  return 50;
}

/**
 * What goes upstream when every branch failed and `best` was chosen: a 503 becomes 500
 * (§16.7 step 6), a 401/407 carries every branch's challenge (step 7).
 */
export function upstreamFinal(request: SipRequest, best: SipResponse, finals: SipResponse[]): SipResponse {
  if (best.status === 503) {
    // step 6: "the proxy SHOULD generate a 500" rather than pass 503 upstream
    return makeResponse(request, 500, { reason: 'Server Internal Error (downstream unavailable)' });
  }
  if (best.status !== 401 && best.status !== 407) return best;
  // step 7: collect every challenge of every branch
  const out = best.clone();
  for (const key of ['www-authenticate', 'proxy-authenticate']) {
    const all = finals.flatMap((f) => (f.status === 401 || f.status === 407 ? f.getAll(key) : []));
    out.remove(key);
    for (const v of all) out.append(key, v);
  }
  return out;
}
