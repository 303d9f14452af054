/**
 * What to tell the user when something ends or fails: SIP status codes and JsSIP causes in
 * plain words (pure; no DOM, no JsSIP).
 */

/** Why a call ended, as the UI and the call history show it. */
export interface CallOutcome {
  /** history bucket */
  kind: 'completed' | 'cancelled' | 'missed' | 'declined' | 'busy' | 'failed';
  /** one short sentence for the call screen */
  message: string;
  /** the SIP status behind it, when there was one */
  status?: number;
}

const STATUS_TEXT: Record<number, string> = {
  403: 'The call was refused (403 Forbidden).',
  404: 'Nobody with that number or address (404 Not Found).',
  408: 'No answer (408 Request Timeout).',
  410: 'That number is gone (410 Gone).',
  480: 'No answer: the person is unavailable or not registered (480).',
  484: 'The number is incomplete (484).',
  486: 'Busy (486 Busy Here).',
  487: 'The call was cancelled (487).',
  488: 'No common audio codec with the other side (488 Not Acceptable Here).',
  500: 'The server failed (500).',
  502: 'The server could not reach the other side (502 Bad Gateway).',
  503: 'The service is unavailable (503).',
  504: 'The server timed out reaching the other side (504).',
  600: 'Busy everywhere (600).',
  603: 'The call was declined (603 Decline).',
  604: 'That number does not exist anywhere (604).',
  606: 'The other side cannot accept this call\'s media (606 Not Acceptable).',
};

/**
 * An outgoing call that failed before it was answered.
 * `status` is the final response code when the remote side sent one; `cause` is JsSIP's.
 */
export function outgoingFailure(status: number | null, cause: string): CallOutcome {
  if (cause === 'Canceled') return { kind: 'cancelled', message: 'Call cancelled.' };
  if (status !== null && status >= 300) {
    const message = STATUS_TEXT[status] ?? `The call failed (${status}).`;
    const kind = status === 486 || status === 600 ? 'busy' : status === 603 ? 'declined' : 'failed';
    return { kind, message, status };
  }
  return { kind: 'failed', message: causeText(cause) };
}

/** An incoming call that ended before we answered it. */
export function incomingFailure(originator: string, cause: string): CallOutcome {
  if (originator === 'local') {
    if (cause === 'Rejected' || cause === 'Busy') return { kind: 'declined', message: 'Call declined.' };
    return { kind: 'failed', message: causeText(cause) };
  }
  if (cause === 'Canceled') return { kind: 'missed', message: 'Missed call: the caller hung up.' };
  return { kind: 'missed', message: `Missed call (${causeText(cause)})` };
}

/** A call that was answered, then ended. */
export function endedCall(originator: string, cause: string): CallOutcome {
  if (cause === 'Terminated') {
    return { kind: 'completed', message: originator === 'local' ? 'Call ended.' : 'The other side hung up.' };
  }
  return { kind: 'failed', message: causeText(cause) };
}

/** JsSIP's causes (JsSIP.C.causes) in words. */
export function causeText(cause: string): string {
  switch (cause) {
    case 'Connection Error': return 'The connection to the server was lost.';
    case 'Request Timeout': return 'The server did not answer in time.';
    case 'Busy': return 'Busy.';
    case 'Rejected': return 'The call was refused.';
    case 'Redirected': return 'The call was redirected elsewhere (not supported here).';
    case 'Unavailable': return 'No answer: the person is unavailable.';
    case 'Not Found': return 'Nobody with that number or address.';
    case 'Address Incomplete': return 'The number is incomplete.';
    case 'Incompatible SDP': return 'No common audio codec with the other side.';
    case 'Missing SDP': return 'The other side sent no media description.';
    case 'Authentication Error': return 'The server refused our credentials.';
    case 'Terminated': return 'Call ended.';
    case 'WebRTC Error': return 'The browser could not set up audio (WebRTC error).';
    case 'Canceled': return 'Call cancelled.';
    case 'No Answer': return 'No answer.';
    case 'Expires': return 'The call expired unanswered.';
    case 'No ACK': return 'The call was not confirmed by the other side (no ACK).';
    case 'Dialog Error': return 'The call broke down (dialog error).';
    case 'User Denied Media Access': return 'Microphone access was denied: allow the microphone for this site and try again.';
    case 'Bad Media Description': return 'The browser rejected the server\'s media description (Bad Media Description).';
    case 'RTP Timeout': return 'Audio stopped arriving (RTP timeout).';
    case 'Media Failed': return 'Audio could not be connected (ICE/DTLS failed).';
    default: return cause ? `The call failed (${cause}).` : 'The call failed.';
  }
}

/** Why REGISTER failed, for the status bar. */
export function registrationFailure(status: number | null, reason: string | null, cause: string): string {
  if (status === 401 || status === 403 || status === 407 || cause === 'Authentication Error') {
    const code = status !== null ? ` (${status}${reason ? ` ${reason}` : ''})` : '';
    return `Wrong user name or password${code}.`;
  }
  if (status === 404) return `Unknown user (404${reason ? ` ${reason}` : ''}).`;
  if (cause === 'Connection Error') return 'Cannot reach the server.';
  if (cause === 'Request Timeout') return 'The server did not answer the registration in time.';
  if (status !== null) return `Registration refused (${status}${reason ? ` ${reason}` : ''}).`;
  return `Registration failed (${cause}).`;
}

/** Seconds as m:ss, or h:mm:ss from one hour. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${String(m).padStart(2, '0')}:${sec}`;
}
