/** server/security/flood-guard.ts on a fake clock: rate and auth-failure bans, their end, trusted peers, bounded memory. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FloodGuard, type FloodGuardOptions } from '../../server/security/flood-guard.js';

interface Line { level: 'info' | 'warn'; obj: Record<string, unknown>; msg: string }

function rig(over: Partial<FloodGuardOptions> = {}): { guard: FloodGuard; lines: Line[]; clock: { t: number } } {
  const lines: Line[] = [];
  const clock = { t: 1_000_000 };
  const log = {
    info: (obj: object, msg: string) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
  };
  const opts: FloodGuardOptions = {
    floodWindow: 2, floodMaxMessages: 10, authFailureWindow: 60, maxAuthFailures: 3, banTime: 30, maxTrackedSources: 100, trustedPeers: [], ...over,
  };
  return { guard: new FloodGuard(opts, log, () => clock.t), lines, clock };
}

describe('FloodGuard', () => {
  it('bans a source over the message rate, drops its messages, and lets others through', () => {
    const { guard, lines } = rig();
    for (let i = 0; i < 10; i++) assert.equal(guard.admit('198.18.0.2'), true);
    assert.equal(guard.admit('198.18.0.2'), false, 'the 11th message in the window');
    assert.equal(guard.admit('198.18.0.2'), false);
    assert.equal(guard.admit('127.0.0.1'), true);
    const ban = lines.filter((l) => l.msg === 'source banned');
    assert.equal(ban.length, 1, 'one line when the ban starts');
    assert.deepEqual([ban[0]!.obj.source, ban[0]!.obj.reason, ban[0]!.obj.banSeconds], ['198.18.0.2', 'flood', 30]);
  });

  it('counts per window: a steady rate under the limit is never banned', () => {
    const { guard, clock } = rig();
    for (let s = 0; s < 100; s++) {
      for (let i = 0; i < 10; i++) assert.equal(guard.admit('198.18.0.2'), true);
      clock.t += 2000;
    }
  });

  it('ends the ban after banTime with one line saying how much it dropped', () => {
    const { guard, lines, clock } = rig();
    for (let i = 0; i < 11; i++) guard.admit('198.18.0.2');
    guard.admit('198.18.0.2');
    clock.t += 29_000;
    guard.sweep();
    assert.equal(guard.isBanned('198.18.0.2'), true);
    clock.t += 1_000;
    guard.sweep();
    assert.equal(guard.isBanned('198.18.0.2'), false);
    const end = lines.filter((l) => l.msg === 'ban ended');
    assert.equal(end.length, 1);
    assert.deepEqual([end[0]!.obj.source, end[0]!.obj.dropped, end[0]!.obj.bannedSeconds], ['198.18.0.2', 1, 30]);
    assert.equal(guard.admit('198.18.0.2'), true);
  });

  it('logs every auth failure and bans after maxAuthFailures in the window', () => {
    const { guard, lines } = rig();
    guard.authFailed({ address: '198.18.0.2', port: 5062, transport: 'udp' }, '1000', 'wrong password');
    guard.authFailed({ address: '198.18.0.2', port: 5062, transport: 'udp' }, '1001', 'unknown user');
    assert.equal(guard.isBanned('198.18.0.2'), false);
    guard.authFailed({ address: '198.18.0.2', port: 5062, transport: 'udp' }, '1002', 'wrong password');
    assert.equal(guard.isBanned('198.18.0.2'), true);
    const failed = lines.filter((l) => l.msg === 'auth failed');
    assert.equal(failed.length, 3);
    assert.deepEqual(failed[0]!.obj, { source: '198.18.0.2', port: 5062, transport: 'udp', user: '1000', reason: 'wrong password' });
    assert.equal(lines.find((l) => l.msg === 'source banned')!.obj.reason, 'auth-failures');
  });

  it('forgets auth failures older than the window (a phone with a stale password is not banned)', () => {
    const { guard, clock } = rig();
    for (let i = 0; i < 20; i++) {
      guard.authFailed({ address: '203.0.113.9' }, '1000');
      clock.t += 30_000; // two per minute, the limit is three
    }
    assert.equal(guard.isBanned('203.0.113.9'), false);
  });

  it('never counts nor bans trusted peers', () => {
    const { guard } = rig({ trustedPeers: ['198.18.0.0/30'] });
    for (let i = 0; i < 100; i++) assert.equal(guard.admit('198.18.0.2'), true);
    for (let i = 0; i < 10; i++) guard.authFailed({ address: '198.18.0.2' }, 'x');
    assert.equal(guard.isBanned('198.18.0.2'), false);
    assert.equal(guard.stats.tracked, 0);
  });

  it('keeps at most maxTrackedSources counters and forgets them after their window', () => {
    const { guard, clock } = rig({ maxTrackedSources: 100 });
    for (let i = 0; i < 5000; i++) guard.admit(`198.18.${i >> 8}.${i & 255}`);
    assert.equal(guard.stats.tracked, 100);
    clock.t += 2000;
    guard.sweep();
    assert.equal(guard.stats.tracked, 0);
  });

  it('keeps at most maxTrackedSources bans, ending the oldest first', () => {
    const { guard } = rig({ maxTrackedSources: 100, maxAuthFailures: 1 });
    for (let i = 0; i < 150; i++) guard.authFailed({ address: `198.19.0.${i}` }, 'x');
    assert.equal(guard.stats.banned, 100);
    assert.equal(guard.isBanned('198.19.0.0'), false);
    assert.equal(guard.isBanned('198.19.0.149'), true);
  });
});
