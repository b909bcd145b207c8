/**
 * WAMP over SockJS: the fallback for browsers that cannot open a WebSocket
 * (blocked by a proxy, an old browser, a restricted network).
 *
 * Each SockJS message carries one WAMP message as `wamp.2.json` text, in
 * both directions; there is no subprotocol negotiation. The SockJS client
 * library (sockjs-client, vendored by vendor.mjs as
 * `static/telegraphy/vendor/sockjs.min.js`) is not part of telegraphy.js:
 * a `window.SockJS` already on the page is used, otherwise the script at
 * `sockjsScriptUrl` is injected the first time the fallback is needed.
 *
 * The transport follows the interface described in transport.js;
 * `subTransport` names the SockJS transport in use once open
 * ('websocket', 'xhr-polling', 'jsonp-polling', …).
 *
 * Session ids: SockJS lets the client choose the id it puts in every URL
 * (`<server>/<session>/xhr`, …). This transport makes it 32 characters
 * from `crypto.getRandomValues` (160 bits) instead of the library's 8, so
 * that it cannot be guessed; the gateway also binds each session to the
 * address that opened it, so an id read from a log or a URL is not enough.
 *
 * @module sockjs
 */

import { ConnectionError, UsageError } from './errors.js';
import { globalScope } from './transport.js';

// SockJS readyState values (as WebSocket's).
const SOCKJS_OPEN = 1;

/** Characters of a session id (32 of them: 5 random bits each) and its length. */
const SESSION_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz012345';
export const SESSION_ID_LENGTH = 32;

/**
 * A SockJS session id of SESSION_ID_LENGTH characters from the platform's
 * cryptographic generator; null when there is none (the library's own then,
 * at the same length).
 * @param {Object=} scope the global object
 * @returns {?string}
 */
export function randomSessionId(scope) {
  const crypto = (scope || globalScope()).crypto;
  if (!crypto || typeof crypto.getRandomValues !== 'function') {
    return null;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(SESSION_ID_LENGTH));
  let id = '';
  for (let i = 0; i < bytes.length; i += 1) {
    id += SESSION_ID_ALPHABET.charAt(bytes[i] % SESSION_ID_ALPHABET.length); // 256 % 32 = 0: unbiased
  }
  return id;
}

// Where, on the global object, the script loads in progress are kept (one per URL).
const SOCKJS_LOADS = typeof Symbol === 'function' ? Symbol.for('telegraphy.sockjsLoads') : '__telegraphySockJSLoads';

/**
 * Make a SockJS URL absolute: "/sockjs" is taken relative to the page,
 * ws(s):// becomes http(s)://.
 * @param {string} url
 * @param {?{protocol: string, host: string}} location the page location, if any
 * @returns {string}
 */
export function resolveSockJSUrl(url, location) {
  if (/^https?:\/\//i.test(url)) {
    return url;
  }
  if (/^wss?:\/\//i.test(url)) {
    return url.replace(/^ws/i, 'http');
  }
  if (url.charAt(0) === '/' && location && location.host) {
    return (location.protocol === 'https:' ? 'https://' : 'http://') + location.host + url;
  }
  throw new UsageError('sockjsUrl must be an http(s):// or ws(s):// URL or an absolute path, got '
    + JSON.stringify(url));
}

/**
 * The SockJS URL that goes with a WebSocket URL: same host and port, http(s)
 * for ws(s), the last path segment replaced by "sockjs"
 * (ws://host:9000/ws → http://host:9000/sockjs, wss://h/rt/ws → https://h/rt/sockjs).
 * @param {string} websocketUrl an absolute ws:// or wss:// URL
 * @returns {string}
 */
export function sockjsUrlFromWebSocketUrl(websocketUrl) {
  const match = /^(wss?):\/\/([^/?#]*)([^?#]*)/i.exec(websocketUrl);
  if (!match) {
    throw new UsageError('cannot derive a SockJS URL from ' + JSON.stringify(websocketUrl));
  }
  const scheme = match[1].toLowerCase() === 'wss' ? 'https' : 'http';
  const segments = match[3].replace(/\/+$/, '').split('/'); // "/rt/ws" → ["", "rt", "ws"]
  if (segments.length > 1) {
    segments[segments.length - 1] = 'sockjs';
  } else {
    segments.push('sockjs');
  }
  return scheme + '://' + match[2] + segments.join('/');
}

/**
 * The SockJS class to use right now, if any: the `SockJS` option, else the page's.
 * @param {{SockJS?: ?Function}} config
 * @returns {?Function}
 */
function sockJSClass(config) {
  const candidate = (config && config.SockJS) || globalScope().SockJS;
  return typeof candidate === 'function' ? candidate : null;
}

function canInjectScripts(scope) {
  return Boolean(scope.document && typeof scope.document.createElement === 'function');
}

/**
 * Load the SockJS client library by injecting `<script src=url>` (once per
 * URL and page, however many clients ask), resolving to `window.SockJS`.
 * A failed load is forgotten, so a later attempt injects the script again.
 * @param {string} url
 * @param {Object=} scope the global object (window)
 * @returns {Promise<Function>}
 */
export function loadSockJS(url, scope) {
  const root = scope || globalScope();
  if (typeof root.SockJS === 'function') {
    return Promise.resolve(root.SockJS);
  }
  if (!root[SOCKJS_LOADS]) {
    try {
      Object.defineProperty(root, SOCKJS_LOADS, { value: new Map(), configurable: true });
    } catch (err) {
      return Promise.reject(new ConnectionError('cannot load SockJS: the global object is frozen',
        { code: null, reason: 'no SockJS' }));
    }
  }
  const loads = root[SOCKJS_LOADS];
  if (loads.has(url)) {
    return loads.get(url);
  }
  const loading = new Promise((resolve, reject) => {
    const document = root.document;
    const script = document.createElement('script');
    const fail = (why) => {
      loads.delete(url);
      if (script.parentNode) {
        script.parentNode.removeChild(script);
      }
      reject(new ConnectionError('cannot load SockJS from ' + url + ': ' + why, { code: null, reason: 'no SockJS' }));
    };
    script.onload = () => {
      if (typeof root.SockJS === 'function') {
        resolve(root.SockJS);
      } else {
        fail('the script did not define window.SockJS');
      }
    };
    script.onerror = () => fail('the script did not load');
    script.async = true;
    script.src = url;
    (document.head || document.documentElement || document.body).appendChild(script);
  });
  loads.set(url, loading);
  return loading;
}

/**
 * WAMP (wamp.2.json) over SockJS.
 *
 * `config` as for every transport, plus `sockjsUrl` (absolute, or derived
 * from `url`), `sockjsTransports` (given to SockJS as its `transports`
 * option), `sockjsScriptUrl` and `SockJS` (a stand-in class).
 */
export class SockJSTransport {
  /**
   * @param {{SockJS?: ?Function, sockjsScriptUrl?: ?string}} config
   * @returns {boolean} whether SockJS is on the page or can be loaded
   */
  static isAvailable(config) {
    return Boolean(sockJSClass(config) || (config && config.sockjsScriptUrl && canInjectScripts(globalScope())));
  }

  /**
   * Start connecting at once (after loading the SockJS library if needed).
   * @param {{url: string, sockjsUrl?: ?string, sockjsTransports?: ?(string|string[]),
   *          sockjsScriptUrl?: ?string, SockJS?: ?Function}} config
   * @param {{onOpen: function(): void, onMessage: function(*): void,
   *          onClose: function({code: ?number, reason: string, wasClean: boolean}): void}} handlers
   * @throws {UsageError} when the URL is refused or SockJS cannot be had
   */
  constructor(config, handlers) {
    this._handlers = handlers;
    this._closed = false;
    this._sock = null;
    const scope = globalScope();
    this._url = config.sockjsUrl
      ? resolveSockJSUrl(config.sockjsUrl, scope.location)
      : sockjsUrlFromWebSocketUrl(config.url);
    // Long random session ids (see the module comment); a function, as sockjs-client takes one.
    this._options = { sessionId: randomSessionId(scope) === null ? SESSION_ID_LENGTH : () => randomSessionId(scope) };
    if (config.sockjsTransports) {
      this._options.transports = [].concat(config.sockjsTransports);
    }
    const SockJSClass = sockJSClass(config);
    if (SockJSClass) {
      this._create(SockJSClass, true);
    } else if (config.sockjsScriptUrl && canInjectScripts(scope)) {
      loadSockJS(config.sockjsScriptUrl, scope).then(
        (LoadedClass) => this._create(LoadedClass, false),
        (err) => this._finish({ code: null, reason: err.message, wasClean: false }),
      );
    } else {
      throw new UsageError('SockJS is not available (load sockjs.min.js or set sockjsScriptUrl)');
    }
  }

  /** @returns {string} "sockjs" */
  get name() {
    return SockJSTransport.transportName;
  }

  /** @returns {string} the SockJS URL this transport connects to */
  get url() {
    return this._url;
  }

  /** @returns {?string} the SockJS transport in use ('websocket', 'xhr-polling', …), once known */
  get subTransport() {
    return (this._sock && typeof this._sock.transport === 'string' && this._sock.transport) || null;
  }

  /**
   * Send one WAMP message as one SockJS message.
   * @param {string} text
   * @throws {ConnectionError} when the SockJS connection is not open
   */
  send(text) {
    if (this._closed || !this._sock || this._sock.readyState !== SOCKJS_OPEN) {
      throw new ConnectionError('sockjs is not open', { code: null, reason: 'not open' });
    }
    this._sock.send(text);
  }

  /**
   * Start closing. `onClose` follows when SockJS reports the close
   * (at once while the library is still loading).
   * @param {number=} code 1000 or 3000–4999 (what SockJS allows); default 1000
   * @param {string=} reason
   */
  close(code, reason) {
    if (this._closed) {
      return;
    }
    const closeCode = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    if (!this._sock) {
      this._finish({ code: closeCode, reason: reason || '', wasClean: true });
      return;
    }
    try {
      this._sock.close(closeCode, reason || '');
    } catch (err) {
      this._finish({ code: closeCode, reason: reason || '', wasClean: false });
    }
  }

  _create(SockJSClass, synchronous) {
    if (this._closed) {
      return;
    }
    try {
      this._sock = new SockJSClass(this._url, null, this._options);
    } catch (err) {
      const message = 'cannot open SockJS to ' + JSON.stringify(this._url) + ': '
        + (err && err.message ? err.message : String(err));
      if (synchronous) {
        throw new UsageError(message);
      }
      this._finish({ code: null, reason: message, wasClean: false });
      return;
    }
    this._sock.onopen = () => {
      if (!this._closed) {
        this._handlers.onOpen();
      }
    };
    this._sock.onmessage = (event) => {
      if (!this._closed) {
        this._handlers.onMessage(event ? event.data : undefined);
      }
    };
    this._sock.onclose = (event) => this._finish({
      code: event && typeof event.code === 'number' ? event.code : null,
      reason: (event && event.reason) || '',
      wasClean: Boolean(event && event.wasClean),
    });
  }

  _finish(info) {
    if (this._closed) {
      return;
    }
    this._closed = true;
    if (this._sock) {
      this._sock.onopen = this._sock.onmessage = this._sock.onclose = null;
    }
    this._handlers.onClose(info);
  }
}

SockJSTransport.transportName = 'sockjs';
