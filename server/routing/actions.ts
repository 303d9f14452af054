/** The Actions a script returns, built one way for every context (the real one and tests' fakes). Pure. */
import type { Action, RelayOptions, Target } from './api.js';

export function replyAction(status: number, reason?: string, headers?: [string, string][]): Action {
  return { kind: 'reply', status, ...(reason !== undefined && { reason }), ...(headers !== undefined && { headers }) };
}

export function relayAction(targets?: Target[] | null, opts: RelayOptions = {}): Action {
  return { kind: 'relay', targets: targets ?? null, taps: opts.taps ?? [] };
}

export const saveAction = (): Action => ({ kind: 'save' });
export const dropAction = (): Action => ({ kind: 'drop' });
export const localAction = (app: string, params: Record<string, string>): Action => ({ kind: 'local', app, params });
