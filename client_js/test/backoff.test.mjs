import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, DEFAULT_RECONNECT, normalizeReconnect } from '../src/backoff.js';
import { UsageError } from '../src/errors.js';

test('delays start at minDelay and their ceiling doubles up to maxDelay', () => {
  /** With random pinned high, delays follow the ceiling 2, 4, 8 … × minDelay, capped. */
  const settings = { minDelay: 500, maxDelay: 15000 };
  const high = () => 0.999999;
  const ceilings = [0, 1, 2, 3, 4, 5, 10, 100].map((attempt) => backoffDelay(attempt, settings, high));
  assert.deepEqual(ceilings, [1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
  assert.equal(backoffDelay(7, settings, () => 0), 500);
});

test('jitter spreads delays between minDelay and the ceiling', () => {
  /** Random values map linearly into [minDelay, ceiling]. */
  const settings = { minDelay: 100, maxDelay: 10000 };
  assert.equal(backoffDelay(2, settings, () => 0.5), 450);
  for (let i = 0; i < 200; i += 1) {
    const delay = backoffDelay(i % 12, settings);
    assert.ok(delay >= 100 && delay <= 10000, String(delay));
  }
});

test('reconnect settings are checked and completed', () => {
  /** Missing fields take defaults; false turns reconnecting off; bad values are usage errors. */
  assert.deepEqual(normalizeReconnect({ minDelay: 10 }), { minDelay: 10, maxDelay: DEFAULT_RECONNECT.maxDelay });
  assert.deepEqual(normalizeReconnect(true), { minDelay: 500, maxDelay: 15000 });
  assert.equal(normalizeReconnect(false), null);
  assert.throws(() => normalizeReconnect({ minDelay: 100, maxDelay: 50 }), UsageError);
  assert.throws(() => normalizeReconnect({ minDelay: -1 }), /0 <= minDelay <= maxDelay, got minDelay -1/);
  assert.throws(() => normalizeReconnect({ minDelay: 'soon' }), UsageError);
});
