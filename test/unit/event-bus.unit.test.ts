/**
 * The event bus's memory for subscribers that reconnect (Last-Event-ID, ?since=): the last
 * `keep` events in order, whatever number a client sends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventBus } from '../../server/events/event-bus.js';

const ids = (bus: EventBus, since: number): number[] => bus.since(since).map((e) => e.id);

test('a reconnecting subscriber gets the events after its last one, in order, up to the last `keep`', () => {
  const bus = new EventBus(5);
  for (let i = 0; i < 12; i++) bus.publish('call.started', { i });
  assert.deepEqual(ids(bus, 9), [10, 11, 12]);
  assert.deepEqual(ids(bus, 0), [8, 9, 10, 11, 12], 'older ones are forgotten');
  assert.deepEqual(ids(bus, 12), []);
  assert.deepEqual(bus.since(10).map((e) => e.data.i), [10, 11]);
});

test('hostile Last-Event-IDs: fractions, negatives, huge numbers give what they mean, never a wrong event', () => {
  const bus = new EventBus(5);
  for (let i = 0; i < 7; i++) bus.publish('registration.added', {});
  assert.deepEqual(ids(bus, 5.5), [6, 7]);
  assert.deepEqual(ids(bus, -1e300), [3, 4, 5, 6, 7]);
  assert.deepEqual(ids(bus, 1e300), []);
  assert.deepEqual(ids(bus, Number.MAX_SAFE_INTEGER), []);
});
