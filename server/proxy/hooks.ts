/**
 * The seam between the RFC 3261 §16 proxy core and the calls floor above it (drachtio's
 * split: signalling treats SDP as an opaque body, a separate controller does the media). The
 * proxy forwards; at a few named points of a forwarded INVITE dialog it calls these hooks,
 * which keep the call, rewrite SDP (rtpengine's offer/answer), start taps and end calls. The
 * proxy imports nothing from the calls, media or taps floors; the calls floor implements this.
 */
import type { Logger } from 'pino';
import type { MediaFlags } from '../media/flags.js';
import type { TapRequest } from '../routing/api.js';
import type { Dialog } from '../sip/dialog.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { ServerTransaction } from '../sip/transaction/server-transaction.js';
import type { Destination } from '../sip/transport/types.js';

/** One outgoing branch of a forwarded request, as the hooks see it. */
export interface BranchView {
  readonly index: number;
  /** the request as it goes out: a hook may rewrite its body (the SDP offer) */
  readonly request: SipRequest;
  readonly dest: Destination;
  /** the branch flags' names (for the call's record) */
  readonly flagNames: string[];
  /** the media modes the branch route chose; null: the media layer's defaults */
  readonly media: MediaFlags | null;
}

/** What the proxy tells the calls floor when an initial INVITE starts a call. */
export interface CallStart {
  readonly req: SipRequest;
  /** the request's message flags' names */
  readonly flags: string[];
  /** the taps the relay action asked for: started with the call, they wait for its answer */
  readonly taps: TapRequest[];
  readonly log: Logger;
  /** gives up on the INVITE while it rings (cancels its branches, 480 upstream): a hang-up before the answer */
  abandon(reason: string): void;
}

/**
 * The calls floor's handle on one forwarded request of a call: the initial INVITE that
 * starts it, or a request inside its dialog (re-INVITE, UPDATE, BYE). The proxy calls it in
 * this order: branchAdded per branch, requestOut once, then per response responseIn (SDP
 * only), progress or branchFailed, answered (first 2xx), and ended when the request fails
 * as a whole.
 */
export interface ForwardedCall {
  /** a branch was built (§16.6): the call records its leg */
  branchAdded(branch: BranchView): void;
  /**
   * Before any branch is sent: rewrites each branch's SDP offer (rtpengine_offer); a BYE
   * ends the call here. Throws SipError to refuse the request with that status.
   */
  requestOut(branches: readonly BranchView[]): Promise<void>;
  /** A response with SDP came back on a branch: rewrites it (the answer, or a 2xx's late offer). */
  responseIn(branch: BranchView, res: SipResponse): Promise<void>;
  /** A provisional or 2xx response is about to go upstream: the call's state follows it. */
  progress(branch: BranchView, res: SipResponse): void;
  /** The first 2xx (§16.7 step 5): the dialog is up on this branch, the others are cancelled. */
  answered(branch: BranchView, dialog: Dialog): Promise<void>;
  /** A branch ended with a final response other than 2xx. */
  branchFailed(branch: BranchView, status: number): void;
  /** The request failed as a whole (best failure sent upstream, cancelled, refused). */
  ended(reason: string): void;
}

export interface ProxyHooks {
  /** An initial INVITE is about to be forwarded: the call it starts, or null to carry it as plain signalling. */
  callStarted(start: CallStart): ForwardedCall | null;
  /** A request inside a dialog is about to be forwarded: its call's handle, or null. */
  inDialog(req: SipRequest, log: Logger): ForwardedCall | null;
  /** An ACK for a 2xx is forwarded: rewrites the SDP it carries (the answer to a 2xx's late offer, §13.2.1). */
  ackOut(ack: SipRequest, out: SipRequest, log: Logger): Promise<void>;
  /** A request inside a dialog the gateway answered itself: true when the calls floor took it. */
  localRequest(req: SipRequest, tx: ServerTransaction | null): boolean;
  /** The routing script answers an initial INVITE in the gateway (wsbridge): resolves with the status sent. */
  answerLocally(req: SipRequest, tx: ServerTransaction, app: string, params: Record<string, string>, callerFlags: string[]): Promise<number>;
}
