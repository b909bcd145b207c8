/**
 * A minimal named-event emitter for the client's connection events.
 *
 * Listeners run in the order added; a listener that throws does not stop the
 * others: the error goes to the `onListenerError` hook given to the constructor.
 *
 * @module emitter
 */

import { UsageError } from './errors.js';

/** Named events with add/remove/emit. */
export class Emitter {
  /**
   * @param {string[]} names the event names this emitter accepts
   * @param {function(string, *): void=} onListenerError called as (eventName, thrown)
   */
  constructor(names, onListenerError) {
    /** @type {Map<string, Function[]>} */
    this._listeners = new Map(names.map((name) => [name, []]));
    this._onListenerError = onListenerError || null;
  }

  /**
   * Add a listener. Adding the same function twice has no effect.
   * @param {string} name
   * @param {Function} fn
   */
  on(name, fn) {
    const list = this._list(name);
    if (typeof fn !== 'function') {
      throw new UsageError('listener for ' + JSON.stringify(name) + ' must be a function');
    }
    if (list.indexOf(fn) < 0) {
      list.push(fn);
    }
  }

  /**
   * Remove a listener, or every listener of `name` when `fn` is omitted.
   * @param {string} name
   * @param {Function=} fn
   */
  off(name, fn) {
    const list = this._list(name);
    if (fn === undefined) {
      list.length = 0;
      return;
    }
    const index = list.indexOf(fn);
    if (index >= 0) {
      list.splice(index, 1);
    }
  }

  /**
   * Call every listener of `name` with `value`.
   * @param {string} name
   * @param {*} value
   * @returns {number} how many listeners were called
   */
  emit(name, value) {
    const list = this._list(name).slice();
    for (const fn of list) {
      try {
        fn(value);
      } catch (err) {
        if (this._onListenerError) {
          this._onListenerError(name, err);
        }
      }
    }
    return list.length;
  }

  _list(name) {
    const list = this._listeners.get(name);
    if (!list) {
      throw new UsageError('unknown event ' + JSON.stringify(name) + ', expected one of '
        + Array.from(this._listeners.keys()).join(', '));
    }
    return list;
  }
}
