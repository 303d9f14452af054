/**
 * Running a routing script's request side: its stages in order, then `request`; a SipError
 * thrown by any of them becomes the reply it names (drachtio-srf's SipError), anything else
 * is the caller's to handle (the proxy answers 500). Pure.
 */
import { SipError } from '../sip/errors.js';
import type { Action, RequestContext, RoutingScript, Stage } from './api.js';

/** A script with more stages in front of its own (drachtio's `srf.use()`), e.g. auth before routing. */
export function use(script: RoutingScript, ...stages: Stage[]): RoutingScript {
  return { ...script, stages: [...stages, ...(script.stages ?? [])] };
}

/** The action of a SipError: its status, reason and headers as the reply. */
export function replyFor(ctx: RequestContext, e: SipError): Action {
  return ctx.reply(e.status, e.reason, e.headers.length > 0 ? e.headers : undefined);
}

/** The stages, then `request`: the Action for this request. Throws what is not a SipError. */
export async function runRequest(script: RoutingScript, ctx: RequestContext): Promise<Action> {
  const stages = script.stages ?? [];
  const at = async (i: number): Promise<Action> => {
    const stage = stages[i];
    if (!stage) return script.request(ctx);
    let called = false;
    return stage(ctx, () => {
      // a stage that calls next() twice would route the request twice
      if (called) throw new Error(`routing stage ${i} called next() twice`);
      called = true;
      return at(i + 1);
    });
  };
  try {
    return await at(0);
  } catch (e) {
    if (e instanceof SipError) return replyFor(ctx, e);
    throw e;
  }
}
