/**
 * A stub resolver for the taps' URL policy: fixed answers per name (each call takes the next
 * answer, the last one repeats), every query recorded. No test asks a real resolver.
 */
import type { LookupFn, ResolvedAddress } from '../../server/taps/url-policy.js';

export function stubDns(answers: Record<string, string[]>): LookupFn & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (host: string): Promise<ResolvedAddress[]> => {
    calls.push(host);
    const list = answers[host];
    if (!list) throw new Error(`ENOTFOUND ${host}`);
    const a = list[Math.min(calls.filter((h) => h === host).length, list.length) - 1]!;
    return [{ address: a, family: a.includes(':') ? 6 : 4 }];
  };
  return Object.assign(fn, { calls });
}
