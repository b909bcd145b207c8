/**
 * The public Telegraphy client: configuration, connection lifecycle,
 * reconnect with backoff, and the API pages use.
 *
 *     Telegraphy.configure({url: 'wss://example.com/ws', token: connectToken});
 *     Telegraphy.register('shop.Order', (event) => render(event.data));
 *     Telegraphy.on('disconnect', ({willReconnect}) => showOffline(willReconnect));
 *
 * Protocol logic lives in the pure `Session`; this module wires it to a
 * transport, timers and the application's callbacks. Connection states:
 *
 *     disconnected ─connect()─► connecting ─WELCOME─► connected
 *          ▲                        │                     │
 *          └──── transport closed ──┴─────────────────────┘
 *                (then, unless disconnect() or a fatal error: wait, connect again)
 *
 * @module telegraphy
 */

import { backoffDelay, DEFAULT_RECONNECT, normalizeReconnect } from './backoff.js';
import { MessageType } from './codec.js';
import { Emitter } from './emitter.js';
import {
  CallbackError, ConnectionError, ProtocolError, TelegraphyError, UsageError, WampError,
} from './errors.js';
import { Session, SessionState } from './session.js';
import { resolveSockJSUrl, SockJSTransport } from './sockjs.js';
import { Subscription, EventType } from './subscription.js';
import { globalScope, resolveUrl, WebSocketTransport } from './transport.js';

/** The client version, also sent in HELLO as part of the agent string. */
export const VERSION = '0.1.0';

/** Name of the global the page sets before loading the script to configure and connect. */
export const GLOBAL_CONFIG_NAME = 'TELEGRAPHY_CONFIG';

/** Values of `client.state`. */
export const ConnectionState = Object.freeze({
  DISCONNECTED: 'disconnected',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
});

/** Events accepted by on()/off(). */
export const EVENT_NAMES = Object.freeze(['connect', 'disconnect', 'error', 'statechange', 'recovery']);

/**
 * ABORT reasons that mean "this token will never work": without a
 * tokenProvider to fetch a new one, the client stops reconnecting.
 */
export const AUTH_FAILURES = Object.freeze([
  'wamp.error.authentication_failed',
  'wamp.error.not_authorized',
  'wamp.error.no_auth_method',
  'wamp.error.cannot_authenticate',
]);

/** The built-in transports, by the names the `transports` option takes. */
export const TRANSPORTS = Object.freeze({
  websocket: WebSocketTransport,
  sockjs: SockJSTransport,
});

/** Configuration defaults; see configure(). */
export const DEFAULT_CONFIG = Object.freeze({
  url: 'ws://127.0.0.1:9000/ws',
  realm: 'telegraphy',
  token: null,
  authid: null,
  tokenProvider: null,
  reconnect: DEFAULT_RECONNECT,
  autoConnect: true,
  resume: true,
  closeTimeout: 2000,
  transports: Object.freeze(['websocket', 'sockjs']),
  connectTimeout: 5000,
  sockjsUrl: null,
  sockjsTransports: null,
  sockjsScriptUrl: null,
  WebSocket: null,
  SockJS: null,
  timers: null,
  random: null,
});

/** Option checks: each returns an error text, or '' when the value is fine. */
const OPTION_CHECKS = {
  url: (v) => (typeof v === 'string' && v.length > 0 ? '' : 'a non-empty string'),
  realm: (v) => (typeof v === 'string' && v.length > 0 ? '' : 'a non-empty string'),
  token: (v) => (v === null || typeof v === 'string' ? '' : 'a string or null'),
  authid: (v) => (v === null || typeof v === 'string' ? '' : 'a string or null'),
  tokenProvider: (v) => (v === null || typeof v === 'function' ? '' : 'a function returning a token (or a promise of one), or null'),
  reconnect: (v) => (v === false || v === true || (v !== null && typeof v === 'object') ? '' : '{minDelay, maxDelay} or false'),
  autoConnect: (v) => (typeof v === 'boolean' ? '' : 'a boolean'),
  resume: (v) => (typeof v === 'boolean' ? '' : 'a boolean'),
  closeTimeout: (v) => (typeof v === 'number' && v >= 0 ? '' : 'a number of milliseconds'),
  transports: (v) => (v === null || (Array.isArray(v) && v.length > 0 && v.every(isTransport))
    ? '' : 'a non-empty array of transport names (' + Object.keys(TRANSPORTS).join(', ') + ') or classes, or null'),
  connectTimeout: (v) => (typeof v === 'number' && v >= 0 ? '' : 'a number of milliseconds (0: no timeout)'),
  sockjsUrl: (v) => (v === null || (typeof v === 'string' && v.length > 0) ? '' : 'a non-empty string, or null'),
  sockjsTransports: (v) => (v === null || (typeof v === 'string' && v.length > 0)
    || (Array.isArray(v) && v.length > 0 && v.every((name) => typeof name === 'string' && name.length > 0))
    ? '' : "a non-empty array of SockJS transport names (e.g. ['xhr-polling']), or null"),
  sockjsScriptUrl: (v) => (v === null || (typeof v === 'string' && v.length > 0) ? '' : 'a non-empty string, or null'),
  WebSocket: (v) => (v === null || typeof v === 'function' ? '' : 'a WebSocket class, or null'),
  SockJS: (v) => (v === null || typeof v === 'function' ? '' : 'a SockJS class, or null'),
  timers: (v) => (v === null || (v && typeof v.setTimeout === 'function' && typeof v.clearTimeout === 'function')
    ? '' : '{setTimeout, clearTimeout}, or null'),
  random: (v) => (v === null || typeof v === 'function' ? '' : 'a function returning [0, 1), or null'),
};

/** Whether `value` names a built-in transport or is a transport class. */
function isTransport(value) {
  if (typeof value === 'string') {
    return Object.prototype.hasOwnProperty.call(TRANSPORTS, value);
  }
  return Boolean(value) && typeof value.isAvailable === 'function' && typeof value.transportName === 'string';
}

// Bound so that methods called on another object do not hit "Illegal invocation".
const DEFAULT_TIMERS = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
};

/**
 * A Telegraphy connection. Pages use the shared instance `Telegraphy`;
 * construct more for tests or for several gateways.
 */
export class TelegraphyClient {
  /**
   * @param {Object=} options as for configure(); when given, configure() runs
   *   (and with autoConnect the client connects).
   */
  constructor(options) {
    this._config = Object.assign({}, DEFAULT_CONFIG);
    this._reconnect = normalizeReconnect(DEFAULT_CONFIG.reconnect);
    this._emitter = new Emitter(EVENT_NAMES, (name, err) => this._listenerFailed(name, err));
    this._session = new Session({
      send: (array) => this._transport.send(JSON.stringify(array)),
      onOpen: (info) => this._sessionOpened(info),
      onClose: (info) => this._sessionClosed(info),
      onError: (err) => this._reportError(err),
    });
    this._state = ConnectionState.DISCONNECTED;
    this._transport = null;
    this._wantConnected = false;
    this._autoConnectPending = false;
    this._attempt = 0;
    this._connectSerial = 0;
    this._reconnectTimer = null;
    this._closeTimer = null;
    this._connectTimer = null;
    /** Name of the transport of the last session that opened; tried first next time. */
    this._preferredTransport = null;
    this._wampClose = null;
    this._fatal = null;
    /** @type {Set<Subscription>} */
    this._chains = new Set();
    if (options) {
      this.configure(options);
    }
  }

  /** @returns {string} 'disconnected' | 'connecting' | 'connected' */
  get state() {
    return this._state;
  }

  /** @returns {?number} the WAMP session id while connected */
  get sessionId() {
    return this._session.sessionId;
  }

  /** @returns {Object} a copy of the current configuration */
  get config() {
    return Object.assign({}, this._config);
  }

  /**
   * Set options; unspecified ones keep their values.
   *
   * - `url` gateway WebSocket URL, default "ws://127.0.0.1:9000/ws"; "/ws" is
   *   taken relative to the page
   * - `realm` default "telegraphy"
   * - `token` connect token (a JWT) sent as WAMP ticket; null: anonymous
   * - `authid` WAMP authid, default null
   * - `tokenProvider` `async () => token`, called before each (re)connect;
   *   overrides `token`
   * - `reconnect` `{minDelay: 500, maxDelay: 15000}` (ms), or false
   * - `autoConnect` default true: connect right after configure()
   * - `resume` default true: on reconnect, ask the gateway to resume the
   *   session (restored subscriptions, missed events; see README "Resume")
   * - `closeTimeout` ms to wait for the router's GOODBYE, default 2000
   * - `transports` transports to try, in order: names ('websocket',
   *   'sockjs') or transport classes; default ['websocket', 'sockjs']. One
   *   that cannot run here (no `WebSocket`; no SockJS and no
   *   `sockjsScriptUrl`) is skipped. One that fails before the session opens
   *   hands over to the next at once; the one that last opened a session is
   *   tried first on reconnect
   * - `connectTimeout` ms a transport may take to open before the next one
   *   is tried, default 5000 (0: wait for it); the last one tried gets no limit
   *   to open. Once open, any transport (the last one too) has as long again
   *   for the router to answer HELLO; one that opens but carries nothing
   *   (a fallback whose sends are lost) counts as failed
   * - `sockjsUrl` the gateway's SockJS URL; default derived from `url`
   *   (ws://host:9000/ws → http://host:9000/sockjs)
   * - `sockjsTransports` SockJS's `transports` option, e.g. ['xhr-polling'];
   *   default null: SockJS picks
   * - `sockjsScriptUrl` where to load sockjs-client from when the page has no
   *   `window.SockJS` (the Django tag sets the vendored copy)
   * - `WebSocket`, `SockJS`, `timers` ({setTimeout, clearTimeout}), `random`:
   *   stand-ins for the browser's, mostly for tests
   *
   * Changes apply from the next connection. With `autoConnect`, a
   * disconnected client connects once the current script task's microtasks run.
   *
   * @param {Object} options
   * @returns {TelegraphyClient} this
   * @throws {UsageError} on unknown options or wrong types
   */
  configure(options) {
    if (!options || typeof options !== 'object') {
      throw new UsageError('configure() takes an options object');
    }
    for (const key of Object.keys(options)) {
      const check = OPTION_CHECKS[key];
      if (!check) {
        throw new UsageError('unknown option ' + JSON.stringify(key) + ', expected one of '
          + Object.keys(OPTION_CHECKS).join(', '));
      }
      const expected = options[key] === undefined ? '' : check(options[key]);
      if (expected) {
        throw new UsageError('option ' + key + ' must be ' + expected);
      }
    }
    const reconnect = 'reconnect' in options ? normalizeReconnect(options.reconnect) : this._reconnect;
    for (const key of Object.keys(options)) {
      if (options[key] !== undefined) {
        this._config[key] = options[key];
      }
    }
    this._reconnect = reconnect;
    if (this._config.autoConnect && this._state === ConnectionState.DISCONNECTED && !this._autoConnectPending) {
      this._autoConnectPending = true;
      Promise.resolve().then(() => {
        if (this._autoConnectPending) {
          this._autoConnectPending = false;
          if (this._state === ConnectionState.DISCONNECTED && !this._reconnectTimer) {
            this.connect();
          }
        }
      });
    }
    return this;
  }

  // ---- events -------------------------------------------------------------------

  /**
   * Listen to a connection event:
   * - 'connect' `fn({sessionId, transport, sockjsTransport, details, resumed, recovered})`:
   *   `transport` 'websocket' or 'sockjs', `sockjsTransport` SockJS's own
   *   transport ('websocket', 'xhr-streaming', 'xhr-polling', …; null when
   *   not over SockJS or unknown),
   *   `resumed` true when the gateway resumed the earlier session,
   *   `recovered` its `{topic: boolean}` (`{}` when not resumed)
   * - 'disconnect' `fn({code, reason, willReconnect, delay})`
   * - 'error' `fn(error)`: a TelegraphyError (see errors.js). When every
   *   transport failed to open a session, a ConnectionError "could not
   *   connect with any transport …" whose `code` and `reason` are the last
   *   one's; `state` is then 'disconnected' (a 'disconnect' says whether and
   *   when the client tries again)
   * - 'statechange' `fn({state, previous})`
   * - 'recovery' `fn({topic, recovered: false, reason})` after a reconnect
   *   that could not deliver what `topic` missed (reload its data), or
   *   `fn({topic, recovered: true, missed: null})` when the missed events
   *   follow (`missed` is not counted: see README "Resume")
   * @param {string} name
   * @param {Function} fn
   * @returns {TelegraphyClient} this
   */
  on(name, fn) {
    this._emitter.on(name, fn);
    return this;
  }

  /**
   * Stop listening; without `fn`, remove every listener of `name`.
   * @param {string} name
   * @param {Function=} fn
   * @returns {TelegraphyClient} this
   */
  off(name, fn) {
    this._emitter.off(name, fn);
    return this;
  }

  // ---- topics ---------------------------------------------------------------------

  /**
   * Call `fn(event, info)` for every event on `topic`, from now on and across
   * reconnects. Works before and after the connection opens.
   * @param {string} topic e.g. "shop.Order"
   * @param {function(Object, Object): void} fn
   * @returns {TelegraphyClient} this
   */
  register(topic, fn) {
    this._session.addHandler(topic, null, fn);
    return this;
  }

  /**
   * Remove `fn` from `topic`; without `fn`, remove every handler of the topic,
   * including subscribe() chains on it. The last handler gone unsubscribes.
   * @param {string} topic
   * @param {Function=} fn
   * @returns {TelegraphyClient} this
   */
  unregister(topic, fn) {
    this._session.removeHandler(topic, null, fn);
    if (fn === undefined) {
      for (const chain of Array.from(this._chains)) {
        if (chain.topic === topic) {
          chain.cancel();
        }
      }
    }
    return this;
  }

  /**
   * Start a chainable subscription on `topic` (see subscription.js).
   * @param {string} topic
   * @returns {Subscription}
   */
  subscribe(topic) {
    const chain = new Subscription(this, topic);
    this._chains.add(chain);
    return chain;
  }

  // ---- connection -------------------------------------------------------------------

  /**
   * Open the connection (and keep it open, reconnecting as configured).
   * Does nothing while already connecting or connected; skips a pending
   * reconnect delay.
   * @returns {TelegraphyClient} this
   */
  connect() {
    this._autoConnectPending = false;
    this._wantConnected = true;
    this._fatal = null;
    if (this._reconnectTimer !== null) {
      this._timers().clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
    }
    if (this._state === ConnectionState.DISCONNECTED) {
      this._attempt = 0;
      this._open();
    }
    return this;
  }

  /**
   * Close the connection and stop reconnecting. Sends GOODBYE when a session
   * is established, and closes the transport on the reply (or after
   * `closeTimeout`).
   * @returns {TelegraphyClient} this
   */
  disconnect() {
    this._autoConnectPending = false;
    this._wantConnected = false;
    this._connectSerial += 1; // forget a token still being fetched
    if (this._reconnectTimer !== null) {
      this._timers().clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
    }
    if (this._transport) {
      if (this._session.close('wamp.close.normal')) {
        this._closeTimer = this._timers().setTimeout(() => {
          this._closeTimer = null;
          this._closeTransport(1000, 'goodbye timed out');
        }, this._config.closeTimeout);
      } else {
        this._closeTransport(1000, 'client disconnected');
      }
    } else if (this._state !== ConnectionState.DISCONNECTED) {
      this._setState(ConnectionState.DISCONNECTED);
      this._emitter.emit('disconnect', { code: null, reason: 'client disconnected', willReconnect: false, delay: null });
    }
    return this;
  }

  /**
   * Publish `payload` on `topic` (PUBLISH with args [payload]).
   * Rejects with ConnectionError when not connected.
   * @param {string} topic
   * @param {*} payload usually an event object or plain data
   * @param {Object=} options PUBLISH options, e.g. `{acknowledge: true}`
   * @returns {Promise<?{publicationId: number}>} `{publicationId}` with
   *   acknowledge, else null once sent
   */
  publish(topic, payload, options) {
    if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
      return Promise.reject(new UsageError('publish options must be an object'));
    }
    return this._session.publish(topic, payload === undefined ? [] : [payload], {}, Object.assign({}, options || {}));
  }

  /**
   * Call a remote procedure. Rejects with ConnectionError when not connected,
   * WampError when the router or callee answers with an error.
   * @param {string} procedure
   * @param {Array=} args
   * @param {Object=} kwargs
   * @returns {Promise<{args: Array, kwargs: Object, details: Object}>}
   */
  call(procedure, args, kwargs) {
    return this._session.call(procedure, args || [], kwargs || {}, {});
  }

  // ---- internals --------------------------------------------------------------------

  _open() {
    const serial = ++this._connectSerial;
    this._setState(ConnectionState.CONNECTING);
    const provider = this._config.tokenProvider;
    if (!provider) {
      this._startTransport(this._config.token, serial);
      return;
    }
    let pending;
    try {
      pending = Promise.resolve(provider());
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then((token) => {
      if (serial !== this._connectSerial) return;
      if (token !== null && token !== undefined && typeof token !== 'string') {
        throw new UsageError('tokenProvider must return a string or null, got ' + typeof token);
      }
      this._startTransport(token === undefined ? null : token, serial);
    }).catch((err) => {
      if (serial !== this._connectSerial) return;
      this._reportError(err instanceof TelegraphyError ? err : new CallbackError('tokenProvider', err));
      this._connectionLost({ code: null, reason: 'token unavailable', wasClean: false });
    });
  }

  _startTransport(ticket, serial) {
    const names = [];
    let candidates;
    const transportConfig = {
      url: null,
      WebSocket: this._config.WebSocket,
      SockJS: this._config.SockJS,
      sockjsUrl: this._config.sockjsUrl,
      sockjsTransports: this._config.sockjsTransports,
      sockjsScriptUrl: this._config.sockjsScriptUrl,
    };
    try {
      const location = globalScope().location;
      transportConfig.url = resolveUrl(this._config.url, location);
      if (transportConfig.sockjsUrl) {
        transportConfig.sockjsUrl = resolveSockJSUrl(transportConfig.sockjsUrl, location);
      }
      candidates = this._transportCandidates(names).filter((candidate) => candidate.isAvailable(transportConfig));
      if (!candidates.length) {
        throw new UsageError('no transport available (tried ' + names.join(', ') + ')');
      }
    } catch (err) {
      // A bad URL or no way to connect at all will not fix itself: stop here.
      this._fatal = err;
      this._reportError(err);
      this._connectionLost({ code: null, reason: err.message, wasClean: false });
      return;
    }
    this._tryTransport(candidates, 0, transportConfig, ticket, serial, null);
  }

  /**
   * The configured transport classes, the preferred one first.
   * @param {string[]} names filled with their names, in configured order
   * @returns {Function[]}
   */
  _transportCandidates(names) {
    const classes = (this._config.transports || DEFAULT_CONFIG.transports)
      .map((entry) => (typeof entry === 'string' ? TRANSPORTS[entry] : entry));
    classes.forEach((TransportClass) => names.push(TransportClass.transportName));
    const preferred = classes.findIndex((TransportClass) => TransportClass.transportName === this._preferredTransport);
    if (preferred > 0) {
      classes.unshift(classes.splice(preferred, 1)[0]);
    }
    return classes;
  }

  /**
   * Start `candidates[index]`; if it fails before its session opens (and
   * the client still wants to connect), go on with the next one. When none
   * is left, the connection is lost with the last failure.
   */
  _tryTransport(candidates, index, transportConfig, ticket, serial, lastFailure) {
    if (index >= candidates.length) {
      this._connectionLost(lastFailure || { code: null, reason: 'no transport opened', wasClean: false });
      return;
    }
    const TransportClass = candidates[index];
    const isLast = index === candidates.length - 1;
    let transport = null;
    let opened = false;
    const current = () => transport !== null && this._transport === transport;
    const nextTransport = (info) => {
      this._clearConnectTimer();
      this._transport = null;
      this._session.transportClosed(info);
      this._tryTransport(candidates, index + 1, transportConfig, ticket, serial, info);
    };
    const noTransport = (info) => {
      const tried = candidates.slice(0, index + 1).map((Candidate) => Candidate.transportName).join(', ');
      this._reportError(new ConnectionError('could not connect with any transport (tried ' + tried + '): '
        + (info.reason || 'code ' + info.code), { code: info.code, reason: info.reason }));
    };
    const handlers = {
      onOpen: () => {
        if (current() && serial === this._connectSerial) {
          opened = true;
          this._clearConnectTimer();
          this._transportOpened(ticket);
          const welcomeTimeout = this._config.connectTimeout;
          if (welcomeTimeout > 0 && current() && this._state === ConnectionState.CONNECTING) {
            // Open but silent (e.g. a fallback whose sends never arrive): give up on it.
            this._connectTimer = this._timers().setTimeout(() => {
              this._connectTimer = null;
              if (!current() || this._state !== ConnectionState.CONNECTING || this._wampClose) {
                return;
              }
              const info = { code: null, reason: TransportClass.transportName + ' opened but the router did not answer within '
                + welcomeTimeout + ' ms', wasClean: false };
              this._transport = null; // its close event, whenever it comes, is ignored
              transport.close(1000, 'no answer');
              if (!isLast && this._wantConnected && !this._fatal && serial === this._connectSerial) {
                nextTransport(info);
              } else {
                noTransport(info);
                this._connectionLost(info);
              }
            }, welcomeTimeout);
          }
        }
      },
      onMessage: (data) => {
        if (current()) {
          this._session.receiveText(data);
        }
      },
      onClose: (info) => {
        if (!current()) {
          return;
        }
        // Did not work (never opened, or closed before WELCOME without an
        // ABORT): the next transport may. Anything else is a lost connection.
        const failedEarly = this._state === ConnectionState.CONNECTING && !this._wampClose;
        if (failedEarly && !isLast && this._wantConnected && !this._fatal && serial === this._connectSerial) {
          nextTransport(info);
        } else {
          if (failedEarly && this._wantConnected && !this._fatal) {
            noTransport(info);
          }
          this._connectionLost(info);
        }
      },
    };
    try {
      transport = new TransportClass(transportConfig, handlers);
    } catch (err) {
      if (isLast) {
        // Nothing else to try, and a refused URL will not fix itself.
        this._fatal = err;
        this._reportError(err);
        this._connectionLost({ code: null, reason: err.message, wasClean: false });
      } else {
        this._reportError(err);
        this._tryTransport(candidates, index + 1, transportConfig, ticket, serial,
          { code: null, reason: err.message, wasClean: false });
      }
      return;
    }
    this._transport = transport;
    const timeout = this._config.connectTimeout;
    if (timeout > 0 && !isLast) {
      this._connectTimer = this._timers().setTimeout(() => {
        this._connectTimer = null;
        if (current() && !opened) {
          const info = { code: null, reason: TransportClass.transportName + ' did not open within ' + timeout + ' ms', wasClean: false };
          this._transport = null; // its close event, whenever it comes, is ignored
          transport.close(1000, 'connect timeout');
          nextTransport(info);
        }
      }, timeout);
    }
  }

  _clearConnectTimer() {
    if (this._connectTimer !== null) {
      this._timers().clearTimeout(this._connectTimer);
      this._connectTimer = null;
    }
  }

  _transportOpened(ticket) {
    try {
      this._session.open({
        realm: this._config.realm,
        ticket,
        authid: this._config.authid,
        resume: this._config.resume,
      });
    } catch (err) {
      this._fatal = err;
      this._reportError(err);
      this._closeTransport(1000, 'cannot open session');
    }
  }

  _sessionOpened(info) {
    this._clearConnectTimer(); // the wait for WELCOME is over
    this._attempt = 0;
    const transport = this._transport;
    if (transport) {
      this._preferredTransport = transport.name;
    }
    this._setState(ConnectionState.CONNECTED);
    this._emitter.emit('connect', {
      sessionId: info.sessionId,
      transport: transport ? transport.name : null,
      sockjsTransport: (transport && transport.subTransport) || null,
      details: info.details,
      resumed: info.resumed,
      recovered: info.recovered,
    });
    // Right after WELCOME, before any missed event is dispatched (they come in later frames).
    for (const notice of info.recovery) {
      this._emitter.emit('recovery', notice);
    }
  }

  _sessionClosed(info) {
    this._wampClose = info;
    if (info.initiator === 'router' && this._state !== ConnectionState.CONNECTED) {
      // ABORT while opening: the router refused this session.
      const error = new WampError(info.reason, { details: info.details, requestType: 'HELLO' });
      if (AUTH_FAILURES.indexOf(info.reason) >= 0 && !this._config.tokenProvider) {
        this._fatal = error;
      }
      this._reportError(error);
    } else if (info.initiator === 'client' && AUTH_FAILURES.indexOf(info.reason) >= 0) {
      const error = new WampError(info.reason, { details: info.details, requestType: 'HELLO' });
      if (!this._config.tokenProvider) {
        this._fatal = error;
      }
      this._reportError(error);
    }
    this._closeTransport(1000, info.reason);
  }

  _connectionLost(info) {
    this._clearConnectTimer();
    if (this._closeTimer !== null) {
      this._timers().clearTimeout(this._closeTimer);
      this._closeTimer = null;
    }
    this._transport = null;
    this._session.transportClosed(info);
    const wampClose = this._wampClose;
    this._wampClose = null;
    if (this._fatal) {
      this._wantConnected = false;
    }
    const willReconnect = this._wantConnected && this._reconnect !== null;
    const delay = willReconnect ? backoffDelay(this._attempt, this._reconnect, this._config.random) : null;
    this._setState(ConnectionState.DISCONNECTED);
    if (willReconnect) {
      this._attempt += 1;
      this._reconnectTimer = this._timers().setTimeout(() => {
        this._reconnectTimer = null;
        if (this._wantConnected && this._state === ConnectionState.DISCONNECTED) {
          this._open();
        }
      }, delay);
    } else {
      this._wantConnected = false;
    }
    this._emitter.emit('disconnect', {
      code: info.code === undefined ? null : info.code,
      reason: wampClose ? wampClose.reason : (info.reason || ''),
      willReconnect,
      delay,
    });
  }

  _closeTransport(code, reason) {
    if (this._transport) {
      this._transport.close(code, reason);
    }
  }

  _setState(state) {
    const previous = this._state;
    if (previous !== state) {
      this._state = state;
      this._emitter.emit('statechange', { state, previous });
    }
  }

  _timers() {
    return this._config.timers || DEFAULT_TIMERS;
  }

  _reportError(error) {
    if (this._emitter.emit('error', error) === 0) {
      logError(error);
    }
  }

  _listenerFailed(name, err) {
    if (name === 'error') {
      logError(err); // reporting it as 'error' again could loop
    } else {
      this._reportError(new CallbackError(JSON.stringify(name) + ' listener', err));
    }
  }

  /** Called by a Subscription when it is cancelled. */
  _forgetChain(chain) {
    this._chains.delete(chain);
  }
}

function logError(error) {
  const scope = globalScope();
  if (scope.console && typeof scope.console.error === 'function') {
    scope.console.error('[telegraphy]', error);
  }
}

function warn(scope, message) {
  if (scope.console && typeof scope.console.warn === 'function') {
    scope.console.warn('[telegraphy] ' + message);
  }
}

// Marks, on the global object, which client took TELEGRAPHY_CONFIG.
const CONFIG_CLAIM = typeof Symbol === 'function' ? Symbol.for('telegraphy.configuredClient') : '__telegraphyConfiguredClient';

/**
 * Configure `client` from `scope.TELEGRAPHY_CONFIG` when the page set it
 * (before the script loaded). Only known options are taken; with the default
 * `autoConnect: true` the client then connects. Never throws: a bad
 * configuration is logged.
 * @param {TelegraphyClient} client
 * @param {Object} scope the global object (window)
 * @returns {boolean} whether a configuration was found and applied
 */
export function autoConfigure(client, scope) {
  const config = scope ? scope[GLOBAL_CONFIG_NAME] : undefined;
  if (!config || typeof config !== 'object') {
    return false;
  }
  // The page may load both the classic script and the ES module: only the
  // first copy takes the configuration, so the page opens one connection.
  if (scope[CONFIG_CLAIM] && scope[CONFIG_CLAIM] !== client) {
    warn(scope, GLOBAL_CONFIG_NAME + ' is already used by another copy of the Telegraphy client; '
      + 'this copy stays unconfigured');
    return false;
  }
  try {
    Object.defineProperty(scope, CONFIG_CLAIM, { value: client, configurable: true });
  } catch (err) {
    // a frozen global: nothing to coordinate with
  }
  const known = {};
  for (const key of Object.keys(config)) {
    if (Object.prototype.hasOwnProperty.call(OPTION_CHECKS, key)) {
      known[key] = config[key];
    } else {
      warn(scope, 'ignoring unknown ' + GLOBAL_CONFIG_NAME + ' field ' + JSON.stringify(key));
    }
  }
  try {
    client.configure(known);
  } catch (err) {
    logError(err);
    return false;
  }
  return true;
}

/** The shared client pages use. */
export const Telegraphy = new TelegraphyClient();

// The rest of the library hangs off the shared client, for script-tag users:
// `new Telegraphy.TelegraphyClient({...})`, `err instanceof Telegraphy.errors.WampError`.
Object.defineProperties(Telegraphy, {
  VERSION: { value: VERSION },
  TelegraphyClient: { value: TelegraphyClient },
  Subscription: { value: Subscription },
  Session: { value: Session },
  WebSocketTransport: { value: WebSocketTransport },
  SockJSTransport: { value: SockJSTransport },
  ConnectionState: { value: ConnectionState },
  EventType: { value: EventType },
  MessageType: { value: MessageType },
  SessionState: { value: SessionState },
  errors: {
    value: Object.freeze({
      TelegraphyError, ProtocolError, UsageError, WampError, ConnectionError, CallbackError,
    }),
  },
});

export default Telegraphy;
