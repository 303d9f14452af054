/**
 * The response context of a forwarded request (RFC 3261 §16.7): its branches, their
 * responses, and the choice of the best final response.
 */
import type { MediaFlags } from '../../routing/flags.js';
import type { Target } from '../../routing/api.js';
import type { Call } from '../../calls/call.js';
import type { ScriptContext } from './script-context.js';
import type { SipRequest, SipResponse } from '../message.js';
import type { ClientTransaction } from '../transaction/client-transaction.js';
import type { ServerTransaction } from '../transaction/server-transaction.js';
import type { Destination } from '../transport/types.js';

export type BranchState = 'pending' | 'proceeding' | 'done';

export class Branch {
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

  clearTimerC(): void {
    if (this.timerC) clearTimeout(this.timerC);
    this.timerC = null;
  }
}

/** What the media layer does with the SDP of this request and its responses. */
export interface MediaPlan {
  call: Call;
  /** the side that sent the request */
  requester: 'caller' | 'callee';
  /** the request carried the offer (its responses answer it); false: a response will offer */
  requestOffered: boolean;
}

export class ResponseContext {
  readonly branches: Branch[] = [];
  finalSent = false;
  /** a 2xx was forwarded (INVITE: further 2xx are still forwarded, §16.7 step 5) */
  answered = false;
  cancelled = false;
  /** the call this initial INVITE starts */
  call: Call | null = null;
  media: MediaPlan | null = null;
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
