/**
 * WAMP v2 messages for the client role, JSON serialization (`wamp.2.json`).
 *
 * A message is a plain object with a `type` code and named fields, e.g.
 * `{type: 32, requestId: 1, options: {}, topic: 'shop.Order'}`.
 * `marshal()` turns it into the WAMP array, `parse()` validates an array and
 * names its fields, `encode()`/`decode()` add the JSON text step.
 *
 * One table (`MESSAGE_SPECS`) describes every message this client sends or
 * receives; marshal and parse both read it, so they cannot disagree.
 * Validation errors name the field and the message:
 * "invalid type string for 'requestId' in SUBSCRIBED".
 *
 * Pure: no I/O, no timers.
 *
 * @module codec
 */

import { ProtocolError, UsageError } from './errors.js';

/** The WebSocket subprotocol this codec speaks. */
export const SUBPROTOCOL = 'wamp.2.json';

/** WAMP v2 message type codes used by this client. */
export const MessageType = Object.freeze({
  HELLO: 1,
  WELCOME: 2,
  ABORT: 3,
  CHALLENGE: 4,
  AUTHENTICATE: 5,
  GOODBYE: 6,
  ERROR: 8,
  PUBLISH: 16,
  PUBLISHED: 17,
  SUBSCRIBE: 32,
  SUBSCRIBED: 33,
  UNSUBSCRIBE: 34,
  UNSUBSCRIBED: 35,
  EVENT: 36,
  CALL: 48,
  RESULT: 50,
});

/** Type code → name, e.g. 33 → "SUBSCRIBED". */
export const MESSAGE_NAMES = Object.freeze(Object.keys(MessageType).reduce((names, name) => {
  names[MessageType[name]] = name;
  return names;
}, {}));

// Other WAMP v2 codes: recognised so errors can name them, never accepted.
const UNSUPPORTED_NAMES = {
  7: 'HEARTBEAT', 49: 'CANCEL', 64: 'REGISTER', 65: 'REGISTERED', 66: 'UNREGISTER',
  67: 'UNREGISTERED', 68: 'INVOCATION', 69: 'INTERRUPT', 70: 'YIELD',
};

// WAMP §"Identifiers": IDs are integers in [1, 2^53]; 0 appears in the
// router-initiated UNSUBSCRIBED of the Advanced Profile, so it is accepted.
const MAX_ID = 9007199254740992;

/**
 * Field kinds. Each checker returns true when the value fits.
 * @type {Object<string, function(*): boolean>}
 */
const KIND_CHECKS = {
  id: (value) => Number.isInteger(value) && value >= 0 && value <= MAX_ID,
  code: (value) => Number.isInteger(value) && value > 0,
  uri: (value) => typeof value === 'string' && value.length > 0 && !/\s/.test(value),
  string: (value) => typeof value === 'string',
  dict: (value) => isPlainObject(value),
  list: (value) => Array.isArray(value),
};

const KIND_NAMES = { id: 'id', code: 'integer', uri: 'uri', string: 'string', dict: 'dict', list: 'list' };

/**
 * Message layouts: required fields in order, then whether the message may end
 * with `args` (list) and `kwargs` (dict), and any optional trailing fields.
 * @type {Object<number, {fields: Array<Array<string>>, payload?: boolean, optional?: Array<Array<string>>}>}
 */
export const MESSAGE_SPECS = Object.freeze({
  [MessageType.HELLO]: { fields: [['realm', 'uri'], ['details', 'dict']] },
  [MessageType.WELCOME]: { fields: [['sessionId', 'id'], ['details', 'dict']] },
  [MessageType.ABORT]: { fields: [['details', 'dict'], ['reason', 'uri']] },
  [MessageType.CHALLENGE]: { fields: [['authMethod', 'string'], ['extra', 'dict']] },
  [MessageType.AUTHENTICATE]: { fields: [['signature', 'string'], ['extra', 'dict']] },
  [MessageType.GOODBYE]: { fields: [['details', 'dict'], ['reason', 'uri']] },
  [MessageType.ERROR]: {
    fields: [['requestType', 'code'], ['requestId', 'id'], ['details', 'dict'], ['error', 'uri']],
    payload: true,
  },
  [MessageType.PUBLISH]: {
    fields: [['requestId', 'id'], ['options', 'dict'], ['topic', 'uri']],
    payload: true,
  },
  [MessageType.PUBLISHED]: { fields: [['requestId', 'id'], ['publicationId', 'id']] },
  [MessageType.SUBSCRIBE]: { fields: [['requestId', 'id'], ['options', 'dict'], ['topic', 'uri']] },
  [MessageType.SUBSCRIBED]: { fields: [['requestId', 'id'], ['subscriptionId', 'id']] },
  [MessageType.UNSUBSCRIBE]: { fields: [['requestId', 'id'], ['subscriptionId', 'id']] },
  // Advanced Profile: a router-initiated UNSUBSCRIBED is [35, 0, {subscription, reason}].
  [MessageType.UNSUBSCRIBED]: { fields: [['requestId', 'id']], optional: [['details', 'dict']] },
  [MessageType.EVENT]: {
    fields: [['subscriptionId', 'id'], ['publicationId', 'id'], ['details', 'dict']],
    payload: true,
  },
  [MessageType.CALL]: {
    fields: [['requestId', 'id'], ['options', 'dict'], ['procedure', 'uri']],
    payload: true,
  },
  [MessageType.RESULT]: { fields: [['requestId', 'id'], ['details', 'dict']], payload: true },
});

/**
 * True for `{}`-style objects: not arrays, null, dates, maps or other built-ins.
 * Checked by tag rather than prototype so objects from another frame pass.
 * @param {*} value
 * @returns {boolean}
 */
export function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    && Object.prototype.toString.call(value) === '[object Object]';
}

/**
 * Name of a message type code for error messages: "SUBSCRIBED", "INVOCATION", "99".
 * @param {*} type
 * @returns {string}
 */
export function messageName(type) {
  return MESSAGE_NAMES[type] || UNSUPPORTED_NAMES[type] || String(type);
}

function jsonTypeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (typeof value === 'object') return 'dict';
  return typeof value;
}

function checkField(kind, value, field, typeName, ErrorClass) {
  if (!KIND_CHECKS[kind](value)) {
    let what = 'invalid type ' + jsonTypeName(value);
    if (kind === 'id' && typeof value === 'number' && Number.isInteger(value)) {
      what = 'id ' + value + ' out of range';
    } else if (kind === 'uri' && typeof value === 'string') {
      what = 'invalid uri ' + JSON.stringify(value);
    }
    throw new ErrorClass(what + " for '" + field + "' in " + typeName
      + (what.startsWith('invalid type') ? ' (expected ' + KIND_NAMES[kind] + ')' : ''));
  }
}

/**
 * Validate a WAMP message array and return it as a named message object.
 *
 * Trailing `args`/`kwargs` are always present in the result (`[]` and `{}`
 * when the wire message omitted them).
 *
 * @param {*} array a decoded WAMP message, e.g. `[33, 1, 4021]`
 * @returns {Object} e.g. `{type: 33, requestId: 1, subscriptionId: 4021}`
 * @throws {ProtocolError} naming the field and message that are wrong
 */
export function parse(array) {
  if (!Array.isArray(array)) {
    throw new ProtocolError('message is ' + jsonTypeName(array) + ', expected a list');
  }
  if (array.length === 0) {
    throw new ProtocolError('message is an empty list');
  }
  const type = array[0];
  if (!Number.isInteger(type)) {
    throw new ProtocolError('invalid type ' + jsonTypeName(type) + ' for message type code');
  }
  const spec = MESSAGE_SPECS[type];
  if (!spec) {
    throw new ProtocolError('message type ' + type + ' (' + messageName(type) + ') is not supported by this client');
  }
  const typeName = messageName(type);
  const required = spec.fields.length + 1;
  const optional = spec.payload ? 2 : (spec.optional ? spec.optional.length : 0);
  if (array.length < required || array.length > required + optional) {
    const expected = optional ? required + '..' + (required + optional) : String(required);
    throw new ProtocolError(typeName + ' has ' + array.length + ' elements, expected ' + expected);
  }
  const message = { type };
  spec.fields.forEach(([field, kind], index) => {
    checkField(kind, array[index + 1], field, typeName, ProtocolError);
    message[field] = array[index + 1];
  });
  if (spec.payload) {
    message.args = array.length > required ? array[required] : [];
    message.kwargs = array.length > required + 1 ? array[required + 1] : {};
    checkField('list', message.args, 'args', typeName, ProtocolError);
    checkField('dict', message.kwargs, 'kwargs', typeName, ProtocolError);
  } else if (spec.optional) {
    spec.optional.forEach(([field, kind], index) => {
      if (array.length > required + index) {
        checkField(kind, array[required + index], field, typeName, ProtocolError);
        message[field] = array[required + index];
      }
    });
  }
  return message;
}

/**
 * Turn a message object into its WAMP array, checking every field.
 *
 * Empty trailing `kwargs` and `args` are left off, as WAMP recommends
 * ("[…] MUST be omitted if empty" only where nothing follows).
 *
 * @param {Object} message e.g. `{type: MessageType.SUBSCRIBE, requestId: 1, options: {}, topic: 'a.b'}`
 * @returns {Array} e.g. `[32, 1, {}, "a.b"]`
 * @throws {UsageError} when a field is missing or has the wrong type
 */
export function marshal(message) {
  if (!message || typeof message !== 'object') {
    throw new UsageError('cannot marshal ' + jsonTypeName(message) + ', expected a message object');
  }
  const spec = MESSAGE_SPECS[message.type];
  if (!spec) {
    throw new UsageError('cannot marshal message type ' + String(message.type) + ' (' + messageName(message.type) + ')');
  }
  const typeName = messageName(message.type);
  const array = [message.type];
  spec.fields.forEach(([field, kind]) => {
    checkField(kind, message[field], field, typeName, UsageError);
    array.push(message[field]);
  });
  if (spec.payload) {
    const args = message.args === undefined || message.args === null ? [] : message.args;
    const kwargs = message.kwargs === undefined || message.kwargs === null ? {} : message.kwargs;
    checkField('list', args, 'args', typeName, UsageError);
    checkField('dict', kwargs, 'kwargs', typeName, UsageError);
    if (Object.keys(kwargs).length > 0) {
      array.push(args, kwargs);
    } else if (args.length > 0) {
      array.push(args);
    }
  } else if (spec.optional) {
    for (const [field, kind] of spec.optional) {
      if (message[field] === undefined) {
        break;
      }
      checkField(kind, message[field], field, typeName, UsageError);
      array.push(message[field]);
    }
  }
  return array;
}

/**
 * Serialize a message object to `wamp.2.json` text.
 * @param {Object} message
 * @returns {string}
 */
export function encode(message) {
  return JSON.stringify(marshal(message));
}

/**
 * Parse `wamp.2.json` text into a validated message object.
 * @param {*} text one WebSocket text frame
 * @returns {Object}
 * @throws {ProtocolError} on non-text frames, bad JSON or invalid messages
 */
export function decode(text) {
  if (typeof text !== 'string') {
    throw new ProtocolError('received a ' + (text === null ? 'null' : typeof text) + ' frame, expected JSON text');
  }
  let array;
  try {
    array = JSON.parse(text);
  } catch (err) {
    throw new ProtocolError('received invalid JSON (' + text.length + ' characters)');
  }
  return parse(array);
}
