/**
 * The WAMP v2 client session as a pure state machine (no network, no timers).
 *
 * Feed it what the router sends (`receive()` / `receiveText()`); it hands the
 * messages to send, as WAMP arrays, to the `send` callback, and reports
 * session changes through `onOpen`, `onClose` and `onError`.
 *
 * One `Session` lives as long as the client: it keeps the wanted subscriptions
 * (topic + options → local handlers) across connections, and subscribes them
 * all again on every WELCOME. Everything tied to one WAMP session (request
 * ids, subscription ids, pending requests) is reset by `open()` and
 * `transportClosed()`.
 *
 * Session resume (see README "Resume"): the router's WELCOME may carry a
 * `resume_token`; `open({resume: true})` presents it in HELLO with the last
 * stream position (`[epoch, offset]`) seen per exact topic. A WELCOME with
 * `resumed: true` lists the subscriptions the router restored: their local
 * handlers are bound to the given ids instead of subscribing again. Every
 * EVENT's position is remembered per handler set and concrete topic, and an
 * EVENT at or before the last position seen (same epoch) is dropped, so
 * replayed events reach each handler once.
 *
 * Order of calls for one connection:
 *
 *     session.open({realm, ticket})     // transport is open: sends HELLO
 *     session.receive(message) …        // every message from the router
 *     session.close()                   // optional: sends GOODBYE
 *     session.transportClosed(info)     // always, once the transport is gone
 *
 * States (every transition is in this file):
 *
 *     closed ─open()─► establishing ─CHALLENGE─► authenticating
 *        ▲                 │ WELCOME                 │ WELCOME
 *        │                 ▼                         ▼
 *        ├──ABORT──── established ◄──────────────────┘
 *        │                 │ close(): GOODBYE sent
 *        │                 ▼
 *        └──GOODBYE─── closing          (router GOODBYE: established ─► closed)
 *
 * @module session
 */

import { MessageType, decode, isPlainObject, marshal, messageName, parse } from './codec.js';
import { CallbackError, ConnectionError, ProtocolError, UsageError, WampError } from './errors.js';

/** Session states. */
export const SessionState = Object.freeze({
  CLOSED: 'closed',
  ESTABLISHING: 'establishing',
  AUTHENTICATING: 'authenticating',
  ESTABLISHED: 'established',
  CLOSING: 'closing',
});

/**
 * Roles and features announced in HELLO.
 * Subscriptions pass their options through untouched, so `match` works;
 * progressive call results are not supported.
 */
export const CLIENT_ROLES = Object.freeze({
  subscriber: { features: { pattern_based_subscription: true } },
  publisher: { features: { publisher_exclusion: true } },
  caller: { features: { progressive_call_results: false } },
  callee: { features: { progressive_call_results: false } },
});

/** Sent in HELLO details as `agent`. */
export const AGENT = 'telegraphy-js/0.1';

// WAMP §"Identifiers": session-scope ids are 1, 2, 3 … up to 2^53.
const MAX_REQUEST_ID = 9007199254740992;

const OPENING = [SessionState.ESTABLISHING, SessionState.AUTHENTICATING];
const OPEN = [SessionState.ESTABLISHED, SessionState.CLOSING];

/**
 * What each incoming message type does, and in which states it is accepted.
 * A message in any other state is reported as a ProtocolError and dropped.
 */
const INCOMING = {
  [MessageType.WELCOME]: { states: OPENING, handle: '_onWelcome' },
  [MessageType.ABORT]: { states: OPENING.concat(OPEN), handle: '_onAbort' },
  [MessageType.CHALLENGE]: { states: OPENING, handle: '_onChallenge' },
  [MessageType.GOODBYE]: { states: OPEN, handle: '_onGoodbye' },
  [MessageType.ERROR]: { states: OPEN, handle: '_onError' },
  [MessageType.PUBLISHED]: { states: OPEN, handle: '_onPublished' },
  [MessageType.SUBSCRIBED]: { states: OPEN, handle: '_onSubscribed' },
  [MessageType.UNSUBSCRIBED]: { states: OPEN, handle: '_onUnsubscribed' },
  [MessageType.EVENT]: { states: OPEN, handle: '_onEvent' },
  [MessageType.RESULT]: { states: OPEN, handle: '_onResult' },
};

/**
 * The key that identifies one wanted WAMP subscription: topic plus options,
 * with object keys sorted so `{a, b}` and `{b, a}` agree.
 * @param {string} topic
 * @param {Object=} options
 * @returns {string}
 */
export function subscriptionKey(topic, options) {
  if (!options || Object.keys(options).length === 0) {
    return topic;
  }
  return topic + ' ' + canonicalJson(options);
}

/**
 * JSON with object keys sorted, for comparing option objects.
 * @param {*} value
 * @returns {string}
 */
export function canonicalJson(value) {
  if (Array.isArray(value)) {
    return '[' + value.map(canonicalJson).join(',') + ']';
  }
  if (value !== null && typeof value === 'object') {
    return '{' + Object.keys(value).sort()
      .filter((key) => value[key] !== undefined)
      .map((key) => JSON.stringify(key) + ':' + canonicalJson(value[key])).join(',') + '}';
  }
  return JSON.stringify(value === undefined ? null : value);
}

/**
 * Build HELLO details.
 *
 * With a ticket: `authmethods: ["ticket"]` and `authid` (empty string when none);
 * without: `authmethods: ["anonymous"]`, `authid` only when given.
 *
 * @param {{ticket?: ?string, authid?: ?string, resumeToken?: ?string,
 *          resumeOffsets?: ?Object<string, Array>}} params `resumeOffsets` is `{topic: [epoch, offset]}`
 * @returns {Object}
 */
export function helloDetails(params) {
  const details = { roles: CLIENT_ROLES, agent: AGENT };
  if (params.ticket !== undefined && params.ticket !== null) {
    details.authmethods = ['ticket'];
    details.authid = params.authid || '';
  } else {
    details.authmethods = ['anonymous'];
    if (params.authid) {
      details.authid = params.authid;
    }
  }
  // Session resume: the gateway hands out `resume_token` in WELCOME details; a
  // reconnecting client presents it with {topic: [epoch, offset]} it has seen.
  if (params.resumeToken) {
    details.resume_token = params.resumeToken;
    details.resume_offsets = params.resumeOffsets || {};
  }
  return details;
}

/**
 * The match policy of subscription options: "exact" unless they name another.
 * @param {Object} options
 * @returns {string}
 */
function matchPolicy(options) {
  return options && typeof options.match === 'string' ? options.match : 'exact';
}

function isExact(options) {
  return matchPolicy(options) === 'exact';
}

/**
 * The stream position of an EVENT: `epoch` (string) and `offset` (integer)
 * from EVENT.Details, else from a Telegraphy event's `meta`; null when absent.
 * @param {Object} details
 * @param {*} event
 * @returns {?{epoch: string, offset: number}}
 */
export function eventPosition(details, event) {
  const sources = [details, isPlainObject(event) && isPlainObject(event.meta) ? event.meta : null];
  for (const source of sources) {
    if (source && typeof source.epoch === 'string' && Number.isInteger(source.offset) && source.offset >= 0) {
      return { epoch: source.epoch, offset: source.offset };
    }
  }
  return null;
}

/** `publisher_authrole` of events the web app published through the gateway's HTTP API. */
export const WEB_PUBLISHER = 'web';

/**
 * Who published an EVENT, from its details (WAMP advanced profile,
 * "Publisher Identification"; the gateway always sends them):
 * `{web: true, session: null, authid: null, authrole: 'web'}` for an event of
 * the web app (the HTTP API; no WAMP session can produce that marking), else
 * `{web: false, session, authid, authrole}` for an event a WAMP session
 * published; null when the details name no publisher.
 * @param {Object} details EVENT.Details
 * @returns {?{web: boolean, session: ?number, authid: ?string, authrole: ?string}}
 */
export function eventPublisher(details) {
  if (!isPlainObject(details)) {
    return null;
  }
  const session = Number.isInteger(details.publisher) ? details.publisher : null;
  const authid = typeof details.publisher_authid === 'string' ? details.publisher_authid : null;
  const authrole = typeof details.publisher_authrole === 'string' ? details.publisher_authrole : null;
  if (session === null && authid === null && authrole === null) {
    return null;
  }
  return { web: session === null && authrole === WEB_PUBLISHER, session, authid, authrole };
}

/**
 * A WAMP client session. See the module comment for the order of calls.
 */
export class Session {
  /**
   * @param {{send: function(Array): void, onOpen?: function(Object): void,
   *          onClose?: function(Object): void, onError?: function(Error): void}} callbacks
   *   `send(array)` gets each WAMP message to write, already validated;
   *   `onOpen({sessionId, details, resumed, recovered, recovery})` on WELCOME, where
   *   `resumed` is true when the router resumed the earlier session, `recovered`
   *   its `{topic: boolean}`, and `recovery` the notices for the page:
   *   `[{topic, recovered: false, reason} | {topic, recovered: true, missed: null}]`;
   *   `onClose({reason, details, initiator})` when the WAMP session ends (ABORT or GOODBYE);
   *   `onError(error)` for anything invalid received and for callbacks that threw.
   */
  constructor(callbacks) {
    if (!callbacks || typeof callbacks.send !== 'function') {
      throw new UsageError('session needs a send callback');
    }
    this._callbacks = callbacks;
    this._state = SessionState.CLOSED;
    this._sessionId = null;
    this._welcomeDetails = null;
    this._ticket = null;
    this._lastRequestId = 0;
    /** @type {Map<number, {requestType: number, resolve: Function, reject: Function, entry?: Object}>} */
    this._pending = new Map();
    /** @type {Map<string, Object>} wanted subscriptions by subscriptionKey() */
    this._entries = new Map();
    /** @type {Map<number, Set<Object>>} subscription id → entries using it */
    this._bySubscription = new Map();
    this._resumeToken = null;
    /** @type {Map<string, {epoch: string, offset: number}>} last position per exact topic, for HELLO */
    this._positions = new Map();
    /** @type {?Object<string, Array>} the resume_offsets of the HELLO in flight, null when not resuming */
    this._presented = null;
  }

  /** @returns {string} one of SessionState */
  get state() {
    return this._state;
  }

  /** @returns {?number} the WAMP session id while established */
  get sessionId() {
    return this._sessionId;
  }

  /** @returns {?string} the last `resume_token` the router gave in WELCOME details */
  get resumeToken() {
    return this._resumeToken;
  }

  /**
   * What HELLO presents as `resume_offsets`: the last stream position seen
   * per topic, for the topics of wanted exact-match subscriptions (the router
   * replays exact subscriptions only). Taken from EVENT.Details `epoch` and
   * `offset` (or the event's `meta`). Topics the router could not recover
   * are left out until a new event arrives.
   * @returns {Object<string, Array>} `{topic: [epoch, offset]}`
   */
  resumeOffsets() {
    const exact = new Set();
    for (const entry of this._entries.values()) {
      if (entry.handlers.size > 0 && isExact(entry.options)) {
        exact.add(entry.topic);
      }
    }
    const offsets = {};
    for (const [topic, position] of this._positions) {
      if (exact.has(topic)) {
        offsets[topic] = [position.epoch, position.offset];
      }
    }
    return offsets;
  }

  /**
   * Start a WAMP session on a freshly opened transport: sends HELLO.
   * @param {{realm: string, ticket?: ?string, authid?: ?string, resume?: boolean}} params
   *   `resume: true` presents the last resume token and offsets, if any.
   */
  open(params) {
    if (this._state !== SessionState.CLOSED) {
      throw new UsageError('cannot open a session that is ' + this._state);
    }
    this._resetConnection();
    this._ticket = params.ticket === undefined ? null : params.ticket;
    const resuming = Boolean(params.resume && this._resumeToken);
    const offsets = resuming ? this.resumeOffsets() : null;
    const details = helloDetails({
      ticket: this._ticket,
      authid: params.authid,
      resumeToken: resuming ? this._resumeToken : null,
      resumeOffsets: offsets,
    });
    const hello = { type: MessageType.HELLO, realm: params.realm, details };
    marshal(hello); // a bad realm is the caller's error: check before any state change
    this._presented = offsets;
    this._state = SessionState.ESTABLISHING;
    this._send(hello);
  }

  /**
   * Close the WAMP session politely (GOODBYE). Returns false when there was no
   * established session to close: the caller just closes the transport then.
   * @param {string=} reason defaults to "wamp.close.normal"
   * @returns {boolean} whether GOODBYE was sent
   */
  close(reason) {
    if (this._state !== SessionState.ESTABLISHED) {
      return false;
    }
    this._state = SessionState.CLOSING;
    this._send({ type: MessageType.GOODBYE, details: {}, reason: reason || 'wamp.close.normal' });
    return true;
  }

  /**
   * The transport is gone: forget this WAMP session, reject pending requests.
   * Wanted subscriptions stay and are subscribed again by the next WELCOME.
   * @param {{code?: number, reason?: string}=} info
   */
  transportClosed(info) {
    const closeInfo = info || {};
    this._state = SessionState.CLOSED;
    this._rejectPending(closeInfo);
    this._resetConnection();
  }

  /**
   * Handle one message from the router.
   * Invalid or unexpected messages are reported to `onError` and dropped;
   * this method does not throw for anything the router sends.
   * @param {Object|Array} message a parsed message object, or a raw WAMP array
   */
  receive(message) {
    let parsed = message;
    try {
      if (Array.isArray(message)) {
        parsed = parse(message);
      }
      const rule = INCOMING[parsed.type];
      if (!rule) {
        throw new ProtocolError('router sent ' + messageName(parsed.type) + ', which a router never sends to a client');
      }
      if (rule.states.indexOf(this._state) < 0) {
        throw new ProtocolError(messageName(parsed.type) + ' received while session is ' + this._state);
      }
      this[rule.handle](parsed);
    } catch (err) {
      this._reportError(err);
    }
  }

  /**
   * Decode one `wamp.2.json` text frame and handle it (see receive()).
   * @param {*} text
   */
  receiveText(text) {
    let message;
    try {
      message = decode(text);
    } catch (err) {
      this._reportError(err);
      return;
    }
    this.receive(message);
  }

  // ---- subscriptions ----------------------------------------------------

  /**
   * Add a local handler for `topic` with subscription `options`.
   * All handlers with the same topic and options share one WAMP subscription;
   * the first one subscribes (now if established, else on the next WELCOME).
   * Adding the same function twice has no effect.
   * @param {string} topic
   * @param {?Object} options SUBSCRIBE options (e.g. `{filter: {...}}`), or null
   * @param {function(*, Object): void} fn called as `fn(event, info)`
   */
  addHandler(topic, options, fn) {
    if (typeof topic !== 'string' || topic.length === 0) {
      throw new UsageError('topic must be a non-empty string, got ' + JSON.stringify(topic));
    }
    if (typeof fn !== 'function') {
      throw new UsageError('handler for ' + JSON.stringify(topic) + ' must be a function');
    }
    const cleanOptions = options ? JSON.parse(JSON.stringify(options)) : {};
    marshal({ type: MessageType.SUBSCRIBE, requestId: 1, options: cleanOptions, topic });
    const key = subscriptionKey(topic, cleanOptions);
    let entry = this._entries.get(key);
    if (!entry) {
      entry = {
        key, topic, options: cleanOptions, handlers: new Set(), subscriptionId: null, inFlight: null, failed: null,
        positions: new Map(), // concrete topic → last {epoch, offset} delivered to these handlers
      };
      this._entries.set(key, entry);
    }
    entry.handlers.add(fn);
    this._reconcile(entry);
  }

  /**
   * Remove one handler, or every handler of `topic` + `options` when `fn` is
   * omitted. The last one gone unsubscribes.
   * @param {string} topic
   * @param {?Object} options as given to addHandler()
   * @param {function=} fn
   * @returns {boolean} whether anything was removed
   */
  removeHandler(topic, options, fn) {
    const entry = this._entries.get(subscriptionKey(topic, options || {}));
    if (!entry) {
      return false;
    }
    let removed;
    if (fn === undefined) {
      removed = entry.handlers.size > 0;
      entry.handlers.clear();
    } else {
      removed = entry.handlers.delete(fn);
    }
    this._reconcile(entry);
    return removed;
  }

  /**
   * The wanted subscriptions, for inspection and tests.
   * @returns {Array<{topic: string, options: Object, handlers: number, subscriptionId: ?number}>}
   */
  subscriptions() {
    return Array.from(this._entries.values()).map((entry) => ({
      topic: entry.topic,
      options: entry.options,
      handlers: entry.handlers.size,
      subscriptionId: entry.subscriptionId,
    }));
  }

  // ---- publish and call ---------------------------------------------------

  /**
   * PUBLISH an event. Resolves at once with null, or, with
   * `options.acknowledge`, with `{publicationId}` once the broker confirms.
   * @param {string} topic
   * @param {Array=} args
   * @param {Object=} kwargs
   * @param {Object=} options PUBLISH options, e.g. `{acknowledge: true, exclude_me: false}`
   * @returns {Promise<?{publicationId: number}>}
   */
  publish(topic, args, kwargs, options) {
    const publishOptions = options || {};
    return this._request(
      { type: MessageType.PUBLISH, options: publishOptions, topic, args, kwargs },
      publishOptions.acknowledge === true,
    );
  }

  /**
   * CALL a procedure. Resolves with `{args, kwargs, details}` of the RESULT.
   * @param {string} procedure
   * @param {Array=} args
   * @param {Object=} kwargs
   * @param {Object=} options CALL options
   * @returns {Promise<{args: Array, kwargs: Object, details: Object}>}
   */
  call(procedure, args, kwargs, options) {
    return this._request({ type: MessageType.CALL, options: options || {}, procedure, args, kwargs }, true);
  }

  // ---- incoming messages ----------------------------------------------------

  _onWelcome(message) {
    const details = message.details;
    this._state = SessionState.ESTABLISHED;
    this._sessionId = message.sessionId;
    this._welcomeDetails = details;
    // No token: the gateway keeps no sessions (any more), so there is nothing to resume.
    this._resumeToken = typeof details.resume_token === 'string' && details.resume_token ? details.resume_token : null;
    const presented = this._presented;
    this._presented = null;
    const resumed = details.resumed === true;
    if (resumed) {
      this._bindRestored(details.subscriptions);
    }
    for (const entry of this._entries.values()) {
      entry.failed = null;
      this._reconcile(entry); // subscribes whatever the router did not restore
    }
    const recovered = resumed && isPlainObject(details.recovered) ? Object.assign({}, details.recovered) : {};
    const recovery = presented ? this._recoveryNotices(resumed, recovered, details, presented) : [];
    this._notify('onOpen', { sessionId: message.sessionId, details, resumed, recovered, recovery });
  }

  _onAbort(message) {
    this._endSession({ reason: message.reason, details: message.details, initiator: 'router' });
  }

  _onChallenge(message) {
    // WAMP-SEC "Ticket-based Authentication": answer [5, ticket, {}].
    if (message.authMethod === 'ticket' && this._ticket !== null) {
      this._state = SessionState.AUTHENTICATING;
      this._send({ type: MessageType.AUTHENTICATE, signature: this._ticket, extra: {} });
      return;
    }
    const reason = 'wamp.error.cannot_authenticate';
    const text = this._ticket === null
      ? 'no ticket to answer challenge ' + JSON.stringify(message.authMethod)
      : 'cannot answer challenge ' + JSON.stringify(message.authMethod);
    this._send({ type: MessageType.ABORT, details: { message: text }, reason });
    this._endSession({ reason, details: { message: text }, initiator: 'client' });
  }

  _onGoodbye(message) {
    if (this._state === SessionState.ESTABLISHED) {
      // WAMP §"Session Closing": the peer replies GOODBYE with wamp.close.goodbye_and_out.
      this._send({ type: MessageType.GOODBYE, details: {}, reason: 'wamp.close.goodbye_and_out' });
      this._endSession({ reason: message.reason, details: message.details, initiator: 'router' });
    } else {
      this._endSession({ reason: message.reason, details: message.details, initiator: 'client' });
    }
  }

  _onError(message) {
    const pending = this._takePending(message.requestId, message.requestType, 'ERROR');
    const requestType = messageName(message.requestType);
    const error = new WampError(message.error, {
      args: message.args, kwargs: message.kwargs, details: message.details, requestType,
    });
    if (pending.entry) {
      this._subscriptionReplyFailed(pending.entry, message.requestType, error);
    }
    pending.reject(error);
  }

  _onPublished(message) {
    this._takePending(message.requestId, MessageType.PUBLISH, 'PUBLISHED')
      .resolve({ publicationId: message.publicationId });
  }

  _onSubscribed(message) {
    const pending = this._takePending(message.requestId, MessageType.SUBSCRIBE, 'SUBSCRIBED');
    const entry = pending.entry;
    entry.inFlight = null;
    entry.subscriptionId = message.subscriptionId;
    if (!this._bySubscription.has(message.subscriptionId)) {
      this._bySubscription.set(message.subscriptionId, new Set());
    }
    this._bySubscription.get(message.subscriptionId).add(entry);
    pending.resolve(message.subscriptionId);
    this._reconcile(entry);
  }

  _onUnsubscribed(message) {
    if (message.requestId === 0) {
      // Advanced Profile: the router revoked a subscription on its own.
      const details = message.details || {};
      this._dropSubscriptionId(details.subscription);
      this._reportError(new WampError(details.reason || 'wamp.error.subscription_revoked', {
        details: { message: 'router revoked subscription ' + details.subscription },
      }));
      return;
    }
    const pending = this._takePending(message.requestId, MessageType.UNSUBSCRIBE, 'UNSUBSCRIBED');
    pending.resolve(null);
    if (pending.entry) { // none for a restored subscription nobody wanted
      pending.entry.inFlight = null;
      this._reconcile(pending.entry);
    }
  }

  _onEvent(message) {
    const entries = this._bySubscription.get(message.subscriptionId);
    if (!entries || this._state !== SessionState.ESTABLISHED) {
      return; // an event racing our UNSUBSCRIBE, or arriving after GOODBYE
    }
    // A Telegraphy event is args[0]; a publisher that used only kwargs gets kwargs.
    const event = message.args.length > 0 ? message.args[0] : message.kwargs;
    const position = eventPosition(message.details, event);
    const info = {
      topic: typeof message.details.topic === 'string' ? message.details.topic : null,
      subscriptionId: message.subscriptionId,
      publicationId: message.publicationId,
      publisher: eventPublisher(message.details),
      details: message.details,
      args: message.args,
      kwargs: message.kwargs,
    };
    for (const entry of Array.from(entries)) {
      // The concrete topic: EVENT.Details.topic for pattern subscriptions.
      const topic = info.topic || entry.topic;
      if (position && !this._advance(entry, topic, position)) {
        continue; // seen already (a replay overlapping what was delivered live)
      }
      for (const fn of Array.from(entry.handlers)) {
        try {
          fn(event, Object.assign({}, info, { topic }));
        } catch (err) {
          this._reportError(new CallbackError('handler for topic ' + JSON.stringify(topic), err));
        }
      }
    }
  }

  _onResult(message) {
    if (message.details.progress === true) {
      return; // we announced progressive_call_results: false; ignore strays
    }
    this._takePending(message.requestId, MessageType.CALL, 'RESULT')
      .resolve({ args: message.args, kwargs: message.kwargs, details: message.details });
  }

  // ---- internals ------------------------------------------------------------

  /**
   * Bring one wanted subscription in line with its handlers: subscribe when it
   * has handlers and no subscription, unsubscribe when it has none left.
   * Waits while a request for it is in flight; the reply calls back here.
   */
  _reconcile(entry) {
    if (this._state !== SessionState.ESTABLISHED || entry.inFlight) {
      if (this._state === SessionState.CLOSED && entry.handlers.size === 0) {
        this._entries.delete(entry.key);
      }
      return;
    }
    const wanted = entry.handlers.size > 0;
    if (wanted && entry.subscriptionId === null && !entry.failed) {
      entry.inFlight = 'subscribe';
      this._request({ type: MessageType.SUBSCRIBE, options: entry.options, topic: entry.topic }, true, entry)
        .catch(() => {}); // failures are reported once, through onError
    } else if (!wanted && entry.subscriptionId !== null) {
      const sharers = this._bySubscription.get(entry.subscriptionId);
      const subscriptionId = entry.subscriptionId;
      sharers.delete(entry);
      entry.subscriptionId = null;
      if (sharers.size > 0) {
        // The router gave another wanted subscription the same id: keep it.
        this._entries.delete(entry.key);
        return;
      }
      this._bySubscription.delete(subscriptionId);
      entry.inFlight = 'unsubscribe';
      this._request({ type: MessageType.UNSUBSCRIBE, subscriptionId }, true, entry).catch(() => {});
    } else if (!wanted) {
      this._entries.delete(entry.key);
    }
  }

  _subscriptionReplyFailed(entry, requestType, error) {
    entry.inFlight = null;
    if (requestType === MessageType.SUBSCRIBE) {
      // Do not retry until the next session: the router would refuse again.
      entry.failed = error;
      this._reportError(new WampError(error.uri, {
        args: error.args, kwargs: error.kwargs, requestType: 'SUBSCRIBE',
        details: Object.assign({ message: 'subscribing to ' + JSON.stringify(entry.topic) + ' failed' }, error.details),
      }));
    }
    // A failed UNSUBSCRIBE leaves nothing subscribed that we know of.
    this._reconcile(entry);
  }

  _dropSubscriptionId(subscriptionId) {
    const entries = this._bySubscription.get(subscriptionId);
    if (!entries) {
      return;
    }
    this._bySubscription.delete(subscriptionId);
    for (const entry of entries) {
      entry.subscriptionId = null;
      entry.failed = new WampError('wamp.error.subscription_revoked');
      this._reconcile(entry);
    }
  }

  /**
   * Move `entry`'s position in `topic` to `position`, unless the entry has
   * seen that position already (same epoch, offset not greater): then return
   * false and the event is not delivered to it. A new epoch starts afresh.
   */
  _advance(entry, topic, position) {
    const last = entry.positions.get(topic);
    if (last && last.epoch === position.epoch && position.offset <= last.offset) {
      return false;
    }
    entry.positions.set(topic, position);
    if (isExact(entry.options)) {
      this._positions.set(topic, position);
    }
    return true;
  }

  /**
   * WELCOME with `resumed: true`: bind the local handler sets to the
   * subscriptions the router restored, matched by topic and match policy
   * (`exact` when the options name none). A restored subscription no local
   * handler wants any more is unsubscribed.
   * @param {*} listed WELCOME.Details.subscriptions, `[{topic, match, subscription}]`
   */
  _bindRestored(listed) {
    if (!Array.isArray(listed)) {
      this._reportError(new ProtocolError("WELCOME with resumed: true has no 'subscriptions' list"));
      return;
    }
    for (const item of listed) {
      if (!isPlainObject(item) || typeof item.topic !== 'string' || !Number.isInteger(item.subscription)) {
        this._reportError(new ProtocolError('invalid restored subscription in WELCOME: ' + JSON.stringify(item)));
        continue;
      }
      const match = typeof item.match === 'string' ? item.match : 'exact';
      const subscriptionId = item.subscription;
      const bound = Array.from(this._entries.values()).filter((entry) => entry.handlers.size > 0
        && entry.subscriptionId === null && entry.topic === item.topic && matchPolicy(entry.options) === match);
      if (bound.length === 0) {
        this._request({ type: MessageType.UNSUBSCRIBE, subscriptionId }, true, null).catch(() => {});
        continue;
      }
      if (!this._bySubscription.has(subscriptionId)) {
        this._bySubscription.set(subscriptionId, new Set());
      }
      for (const entry of bound) {
        entry.subscriptionId = subscriptionId;
        this._bySubscription.get(subscriptionId).add(entry);
      }
    }
  }

  /**
   * The 'recovery' notices for the WELCOME that answered a resuming HELLO.
   * Topics not recovered lose their position, so a later resume does not
   * replay from before the gap the page reloads over.
   * @returns {Array<Object>}
   */
  _recoveryNotices(resumed, recovered, details, presented) {
    const notices = [];
    const wanted = new Set();
    for (const entry of this._entries.values()) {
      if (entry.handlers.size > 0) {
        wanted.add(entry.topic);
      }
    }
    const lost = (topic, reason) => {
      this._positions.delete(topic);
      notices.push({ topic, recovered: false, reason });
    };
    if (!resumed) {
      const reason = typeof details.resume_error === 'string' ? details.resume_error : 'session not resumed';
      Object.keys(presented).forEach((topic) => lost(topic, reason));
      return notices;
    }
    const errors = isPlainObject(details.recovery_errors) ? details.recovery_errors : {};
    for (const topic of Object.keys(recovered)) {
      if (!wanted.has(topic)) {
        continue; // restored, but unsubscribed meanwhile
      }
      if (recovered[topic] === true) {
        notices.push({ topic, recovered: true, missed: null });
      } else {
        lost(topic, typeof errors[topic] === 'string' ? errors[topic] : 'not recovered');
      }
    }
    for (const topic of Object.keys(presented)) {
      if (!Object.prototype.hasOwnProperty.call(recovered, topic) && wanted.has(topic)) {
        lost(topic, 'subscription not restored');
      }
    }
    return notices;
  }

  /**
   * Send a request and, when `awaitReply`, keep it pending until its reply.
   * @returns {Promise}
   */
  _request(message, awaitReply, entry) {
    if (this._state !== SessionState.ESTABLISHED) {
      return Promise.reject(new ConnectionError('not connected (session is ' + this._state + ')'));
    }
    const request = Object.assign({ requestId: this._nextRequestId() }, message);
    try {
      marshal(request);
    } catch (err) {
      return Promise.reject(err);
    }
    const promise = awaitReply
      ? new Promise((resolve, reject) => {
        this._pending.set(request.requestId, { requestType: request.type, resolve, reject, entry });
      })
      : Promise.resolve(null);
    try {
      this._send(request);
    } catch (err) {
      // The transport refused the frame (it is closing): the request never left.
      this._pending.delete(request.requestId);
      return Promise.reject(err);
    }
    return promise;
  }

  _takePending(requestId, requestType, replyName) {
    const pending = this._pending.get(requestId);
    if (!pending || pending.requestType !== requestType) {
      throw new ProtocolError(replyName + ' for unknown ' + messageName(requestType) + ' request ' + requestId);
    }
    this._pending.delete(requestId);
    return pending;
  }

  _nextRequestId() {
    this._lastRequestId = this._lastRequestId >= MAX_REQUEST_ID ? 1 : this._lastRequestId + 1;
    return this._lastRequestId;
  }

  _endSession(info) {
    this._state = SessionState.CLOSED;
    this._rejectPending({ reason: info.reason });
    this._notify('onClose', info);
  }

  _rejectPending(info) {
    const pending = Array.from(this._pending.entries());
    this._pending.clear();
    for (const [requestId, request] of pending) {
      request.reject(new ConnectionError(
        'connection closed before reply to ' + messageName(request.requestType) + ' ' + requestId, info));
    }
  }

  _resetConnection() {
    this._sessionId = null;
    this._welcomeDetails = null;
    this._lastRequestId = 0;
    this._bySubscription.clear();
    for (const entry of Array.from(this._entries.values())) {
      entry.subscriptionId = null;
      entry.inFlight = null;
      if (entry.handlers.size === 0) {
        this._entries.delete(entry.key);
      }
    }
  }

  _send(message) {
    this._callbacks.send(marshal(message));
  }

  _notify(name, info) {
    const fn = this._callbacks[name];
    if (typeof fn === 'function') {
      fn(info);
    }
  }

  _reportError(error) {
    if (typeof this._callbacks.onError === 'function') {
      this._callbacks.onError(error);
    }
  }
}
