/**
 * Errors raised or reported by the Telegraphy client.
 *
 * One root class, four families, split by who is at fault:
 *
 *     TelegraphyError            root: catch this to catch everything below
 *     ├── ProtocolError          the router sent something invalid (remote fault)
 *     ├── UsageError             our caller misused the API (local fault)
 *     ├── WampError              the router refused: ERROR reply or ABORT (has `uri`)
 *     ├── ConnectionError        no session, or it ended before the reply came
 *     └── CallbackError          an application callback threw (`cause` holds it)
 *
 * Messages are short, lowercase and carry the values:
 * "subscription 42 not found", "invalid type string for 'requestId' in SUBSCRIBED".
 *
 * @module errors
 */

/** Root of every error the client raises or reports. */
export class TelegraphyError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}

/**
 * The router sent a message that is not valid WAMP for this client:
 * bad JSON, wrong arity or types, unknown type codes, replies to unknown requests.
 */
export class ProtocolError extends TelegraphyError {
  /**
   * @param {string} detail what is wrong, e.g. "invalid type string for 'sessionId' in WELCOME"
   * @param {string=} uri the WAMP error URI that names the fault class
   */
  constructor(detail, uri) {
    super(detail);
    this.detail = detail;
    this.uri = uri || 'wamp.error.protocol_violation';
  }
}

/** The application called the API with invalid arguments or at the wrong time. */
export class UsageError extends TelegraphyError {}

/**
 * The router refused a request (WAMP ERROR) or the session opening (WAMP ABORT).
 */
export class WampError extends TelegraphyError {
  /**
   * @param {string} uri the error or reason URI, e.g. "wamp.error.not_authorized"
   * @param {{args?: Array, kwargs?: Object, details?: Object, requestType?: string}=} info
   */
  constructor(uri, info) {
    const extra = info || {};
    const detailMessage = extra.details && typeof extra.details.message === 'string'
      ? ': ' + extra.details.message : '';
    super((extra.requestType ? extra.requestType.toLowerCase() + ' failed: ' : '') + uri + detailMessage);
    this.uri = uri;
    this.args = extra.args || [];
    this.kwargs = extra.kwargs || {};
    this.details = extra.details || {};
    this.requestType = extra.requestType || null;
  }
}

/** There is no established session, or it closed before a pending request got its reply. */
export class ConnectionError extends TelegraphyError {
  /**
   * @param {string} message e.g. "not connected" or "connection closed before reply to CALL 3"
   * @param {{code?: number, reason?: string}=} info
   */
  constructor(message, info) {
    super(message);
    const extra = info || {};
    this.code = extra.code === undefined ? null : extra.code;
    this.reason = extra.reason === undefined ? null : extra.reason;
  }
}

/** An application callback (event handler or listener) threw; `cause` holds what it threw. */
export class CallbackError extends TelegraphyError {
  /**
   * @param {string} where e.g. "handler for topic 'shop.Order'"
   * @param {*} cause the thrown value
   */
  constructor(where, cause) {
    const causeText = cause instanceof Error ? cause.message : String(cause);
    super(where + ' threw: ' + causeText);
    this.where = where;
    this.cause = cause;
  }
}
