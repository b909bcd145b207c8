/**
 * Transports: how WAMP text frames reach the router.
 *
 * The client talks to a transport only through this small interface, so a
 * SockJS transport can be plugged in beside the WebSocket one later:
 *
 *     class SomeTransport {
 *       static isAvailable(config) → boolean    // can it run here?
 *       constructor(config, handlers)           // starts connecting at once
 *       get name() → string                     // 'websocket', 'sockjs', …
 *       send(text)                              // one wamp.2.json frame
 *       close(code, reason)                     // onClose follows, once
 *     }
 *     SomeTransport.transportName = 'some';
 *
 * `config` is `{url, WebSocket, protocols}`; `handlers` is
 * `{onOpen(), onMessage(data), onClose({code, reason, wasClean})}`.
 * A transport calls `onClose` exactly once, including when it never opened.
 *
 * @module transport
 */

import { SUBPROTOCOL } from './codec.js';
import { ConnectionError, UsageError } from './errors.js';

// WebSocket.readyState values (RFC 6455 API); fakes need not define the constants.
const WS_OPEN = 1;

/**
 * The global object in browsers, workers and Node alike.
 * @returns {Object}
 */
export function globalScope() {
  if (typeof globalThis !== 'undefined') return globalThis;
  if (typeof self !== 'undefined') return self;
  if (typeof window !== 'undefined') return window;
  return {};
}

/**
 * Make a WebSocket URL absolute: "/ws" on https://example.com becomes
 * "wss://example.com/ws"; http(s) URLs become ws(s) URLs.
 * @param {string} url
 * @param {?{protocol: string, host: string}} location the page location, if any
 * @returns {string}
 */
export function resolveUrl(url, location) {
  if (/^wss?:\/\//i.test(url)) {
    return url;
  }
  if (/^https?:\/\//i.test(url)) {
    return url.replace(/^http/i, 'ws');
  }
  if (url.charAt(0) === '/' && location && location.host) {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    return scheme + location.host + url;
  }
  throw new UsageError('url must be a ws://, wss:// or http(s):// URL or an absolute path, got ' + JSON.stringify(url));
}

/**
 * WAMP over WebSocket, subprotocol "wamp.2.json".
 */
export class WebSocketTransport {
  /**
   * @param {{url: string, WebSocket?: Function, protocols?: string[]}} config
   * @returns {boolean} whether a WebSocket class is available
   */
  static isAvailable(config) {
    return typeof ((config && config.WebSocket) || globalScope().WebSocket) === 'function';
  }

  /**
   * Open a WebSocket to `config.url` at once.
   * @param {{url: string, WebSocket?: Function, protocols?: string[]}} config
   * @param {{onOpen: function(): void, onMessage: function(*): void,
   *          onClose: function({code: ?number, reason: string, wasClean: boolean}): void}} handlers
   * @throws {UsageError} when no WebSocket class exists or the URL is refused
   */
  constructor(config, handlers) {
    const WebSocketClass = config.WebSocket || globalScope().WebSocket;
    if (typeof WebSocketClass !== 'function') {
      throw new UsageError('no WebSocket implementation available (pass one as the WebSocket option)');
    }
    this._handlers = handlers;
    this._closed = false;
    this._protocols = config.protocols || [SUBPROTOCOL];
    try {
      this._ws = new WebSocketClass(config.url, this._protocols);
    } catch (err) {
      throw new UsageError('cannot open WebSocket to ' + JSON.stringify(config.url) + ': '
        + (err && err.message ? err.message : String(err)));
    }
    this._ws.onopen = () => this._onOpen();
    this._ws.onmessage = (event) => {
      if (!this._closed) {
        this._handlers.onMessage(event.data);
      }
    };
    // Browsers say nothing useful in 'error'; the 'close' that follows carries the code.
    this._ws.onerror = () => {};
    this._ws.onclose = (event) => this._finish({
      code: event && typeof event.code === 'number' ? event.code : null,
      reason: (event && event.reason) || '',
      wasClean: Boolean(event && event.wasClean),
    });
  }

  /** @returns {string} "websocket" */
  get name() {
    return WebSocketTransport.transportName;
  }

  /**
   * Send one text frame.
   * @param {string} text
   * @throws {ConnectionError} when the socket is not open
   */
  send(text) {
    if (this._closed || this._ws.readyState !== WS_OPEN) {
      throw new ConnectionError('websocket is not open', { code: null, reason: 'not open' });
    }
    this._ws.send(text);
  }

  /**
   * Start closing. `onClose` follows when the socket is closed.
   * @param {number=} code 1000 or 3000–4999 (what browsers allow); default 1000
   * @param {string=} reason
   */
  close(code, reason) {
    if (this._closed) {
      return;
    }
    const closeCode = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    try {
      this._ws.close(closeCode, reason || '');
    } catch (err) {
      this._finish({ code: closeCode, reason: reason || '', wasClean: false });
    }
  }

  _onOpen() {
    if (this._closed) {
      return;
    }
    // RFC 6455 §4.1: the server picks one of the offered subprotocols, or none.
    const chosen = this._ws.protocol || '';
    if (chosen && this._protocols.indexOf(chosen) < 0) {
      this.close(1000, 'unsupported subprotocol');
      return;
    }
    this._handlers.onOpen();
  }

  _finish(info) {
    if (this._closed) {
      return;
    }
    this._closed = true;
    this._ws.onopen = this._ws.onmessage = this._ws.onerror = this._ws.onclose = null;
    this._handlers.onClose(info);
  }
}

WebSocketTransport.transportName = 'websocket';
