/**
 * The chainable subscription returned by `Telegraphy.subscribe(topic)`.
 *
 *     Telegraphy.subscribe('shop.Order')
 *       .filter({status: 'open'})
 *       .onCreate(showNew).onUpdate(refresh).onDelete(remove)
 *       .onAny(log);
 *
 * Handlers are chosen by `event.meta.event_type`; `onAny` handlers see every
 * event. `filter()` and `exclude()` lookups go to the router as SUBSCRIBE
 * options `{filter: {...}, exclude: {...}}`.
 *
 * Timing: the chain subscribes in a microtask after `subscribe()` returns, so
 * the calls chained in the same statement shape the first SUBSCRIBE. A later
 * `filter()`/`exclude()` subscribes again with the new options (after the
 * current microtask too).
 *
 * @module subscription
 */

import { isPlainObject } from './codec.js';
import { CallbackError, UsageError } from './errors.js';
import { canonicalJson } from './session.js';

/** Event types of Django model events. */
export const EventType = Object.freeze({ CREATE: 'create', UPDATE: 'update', DELETE: 'delete' });

/**
 * One chain of handlers on one topic. Create it with `client.subscribe(topic)`.
 */
export class Subscription {
  /**
   * @param {{_session: Object, _reportError: function(Error): void, _forgetChain: function(Subscription): void}} client
   * @param {string} topic
   */
  constructor(client, topic) {
    if (typeof topic !== 'string' || topic.length === 0) {
      throw new UsageError('topic must be a non-empty string, got ' + JSON.stringify(topic));
    }
    this._client = client;
    this._topic = topic;
    /** @type {Map<string, Function[]>} event type → handlers */
    this._byType = new Map();
    this._any = [];
    this._filter = null;
    this._exclude = null;
    this._attachedOptions = null;
    this._syncScheduled = false;
    this._cancelled = false;
    this._dispatch = (event, info) => this._deliver(event, info);
    this._scheduleSync();
  }

  /** @returns {string} the topic */
  get topic() {
    return this._topic;
  }

  /** @returns {boolean} false once cancel() was called */
  get active() {
    return !this._cancelled;
  }

  /**
   * The SUBSCRIBE options this chain asks for.
   * @returns {{filter?: Object, exclude?: Object}}
   */
  get options() {
    const options = {};
    if (this._filter) options.filter = this._filter;
    if (this._exclude) options.exclude = this._exclude;
    return options;
  }

  /**
   * Call `fn(event, info)` for events whose `meta.event_type` is `eventType`.
   * @param {string} eventType e.g. "create" or a custom type
   * @param {function(Object, Object): void} fn
   * @returns {Subscription} this
   */
  on(eventType, fn) {
    if (typeof eventType !== 'string' || eventType.length === 0) {
      throw new UsageError('event type must be a non-empty string, got ' + JSON.stringify(eventType));
    }
    checkHandler(fn, eventType);
    if (!this._byType.has(eventType)) {
      this._byType.set(eventType, []);
    }
    this._byType.get(eventType).push(fn);
    return this;
  }

  /** @param {function(Object, Object): void} fn @returns {Subscription} this */
  onCreate(fn) {
    return this.on(EventType.CREATE, fn);
  }

  /** @param {function(Object, Object): void} fn @returns {Subscription} this */
  onUpdate(fn) {
    return this.on(EventType.UPDATE, fn);
  }

  /** @param {function(Object, Object): void} fn @returns {Subscription} this */
  onDelete(fn) {
    return this.on(EventType.DELETE, fn);
  }

  /**
   * Call `fn(event, info)` for every event of the topic, after the typed handlers.
   * @param {function(Object, Object): void} fn
   * @returns {Subscription} this
   */
  onAny(fn) {
    checkHandler(fn, 'any');
    this._any.push(fn);
    return this;
  }

  /**
   * Keep only events matching these Django-style lookups, e.g.
   * `{status: 'open', priority__gte: 3}`. Repeated calls merge the lookups.
   * The router evaluates them (sent as the `filter` SUBSCRIBE option).
   * @param {Object} lookups
   * @returns {Subscription} this
   */
  filter(lookups) {
    this._filter = mergeLookups(this._filter, lookups, 'filter');
    this._scheduleSync();
    return this;
  }

  /**
   * Drop events matching all of these lookups (sent as the `exclude`
   * SUBSCRIBE option). Repeated calls merge the lookups into one set.
   * @param {Object} lookups
   * @returns {Subscription} this
   */
  exclude(lookups) {
    this._exclude = mergeLookups(this._exclude, lookups, 'exclude');
    this._scheduleSync();
    return this;
  }

  /**
   * Stop this chain: its handlers are dropped, and the WAMP subscription is
   * ended when no other handler shares it. Calling it twice is harmless.
   */
  cancel() {
    if (this._cancelled) {
      return;
    }
    this._cancelled = true;
    if (this._attachedOptions) {
      this._client._session.removeHandler(this._topic, this._attachedOptions, this._dispatch);
      this._attachedOptions = null;
    }
    this._client._forgetChain(this);
  }

  _scheduleSync() {
    if (this._syncScheduled || this._cancelled) {
      return;
    }
    this._syncScheduled = true;
    Promise.resolve().then(() => {
      this._syncScheduled = false;
      this._sync();
    });
  }

  /** Register the dispatcher under the current options, moving it if they changed. */
  _sync() {
    if (this._cancelled) {
      return;
    }
    const options = this.options;
    if (this._attachedOptions && canonicalJson(options) === canonicalJson(this._attachedOptions)) {
      return;
    }
    try {
      this._client._session.addHandler(this._topic, options, this._dispatch);
    } catch (err) {
      this._client._reportError(err);
      return;
    }
    if (this._attachedOptions) {
      this._client._session.removeHandler(this._topic, this._attachedOptions, this._dispatch);
    }
    this._attachedOptions = options;
  }

  _deliver(event, info) {
    const meta = event && typeof event === 'object' ? event.meta : null;
    const eventType = meta && typeof meta === 'object' ? meta.event_type : undefined;
    const typed = typeof eventType === 'string' ? this._byType.get(eventType) || [] : [];
    this._run(typed, event, info, eventType);
    this._run(this._any, event, info, 'any');
  }

  _run(handlers, event, info, label) {
    for (const fn of handlers.slice()) {
      try {
        fn(event, info);
      } catch (err) {
        this._client._reportError(new CallbackError(
          label + ' handler for topic ' + JSON.stringify(this._topic), err));
      }
    }
  }
}

function checkHandler(fn, label) {
  if (typeof fn !== 'function') {
    throw new UsageError(label + ' handler must be a function, got ' + (fn === null ? 'null' : typeof fn));
  }
}

function mergeLookups(current, lookups, method) {
  if (!isPlainObject(lookups)) {
    throw new UsageError(method + '() takes an object of lookups, e.g. {status: "open"}');
  }
  try {
    JSON.stringify(lookups);
  } catch (err) {
    throw new UsageError(method + '() lookups must be JSON-serializable');
  }
  const merged = Object.assign({}, current || {}, lookups);
  return Object.keys(merged).length > 0 ? merged : null;
}
