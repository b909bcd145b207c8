/**
 * Reconnect delays: exponential growth with jitter, kept between a floor and a cap.
 *
 * Pure: the random source is passed in, so tests can pin it.
 *
 * @module backoff
 */

import { UsageError } from './errors.js';

/** Default reconnect delays, in milliseconds. */
export const DEFAULT_RECONNECT = Object.freeze({ minDelay: 500, maxDelay: 15000 });

/**
 * Check and complete reconnect settings.
 * @param {?Object|boolean} reconnect `{minDelay, maxDelay}` in ms, or false to never reconnect
 * @returns {?{minDelay: number, maxDelay: number}} null when reconnecting is off
 * @throws {UsageError} on negative or inverted delays
 */
export function normalizeReconnect(reconnect) {
  if (reconnect === false || reconnect === null) {
    return null;
  }
  const settings = Object.assign({}, DEFAULT_RECONNECT, reconnect === true ? {} : reconnect);
  const { minDelay, maxDelay } = settings;
  if (typeof minDelay !== 'number' || !(minDelay >= 0) || typeof maxDelay !== 'number' || !(maxDelay >= minDelay)) {
    throw new UsageError('reconnect needs 0 <= minDelay <= maxDelay, got minDelay '
      + minDelay + ' and maxDelay ' + maxDelay);
  }
  return { minDelay, maxDelay };
}

/**
 * The delay before reconnect attempt number `attempt` (0 for the first retry).
 *
 * The ceiling doubles with each attempt, from 2 × minDelay up to maxDelay; the
 * delay is drawn uniformly between minDelay and that ceiling, so clients that
 * lost the same server do not all come back at the same instant.
 *
 * @param {number} attempt 0, 1, 2, …
 * @param {{minDelay: number, maxDelay: number}} settings
 * @param {function(): number=} random a source of numbers in [0, 1); Math.random by default
 * @returns {number} milliseconds, within [minDelay, maxDelay]
 */
export function backoffDelay(attempt, settings, random) {
  const draw = random || Math.random;
  const exponent = Math.min(Math.max(attempt, 0), 30) + 1;
  const ceiling = Math.min(settings.maxDelay, settings.minDelay * Math.pow(2, exponent));
  const delay = settings.minDelay + draw() * (ceiling - settings.minDelay);
  return Math.min(settings.maxDelay, Math.max(settings.minDelay, Math.round(delay)));
}
