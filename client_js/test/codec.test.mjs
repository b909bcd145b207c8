import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  decode, encode, marshal, MessageType, MESSAGE_SPECS, messageName, parse, SUBPROTOCOL,
} from '../src/codec.js';
import { ProtocolError, UsageError } from '../src/errors.js';

/** One sample message object per supported type, with full payloads. */
const SAMPLES = [
  { type: MessageType.HELLO, realm: 'telegraphy', details: { roles: { subscriber: {} } } },
  { type: MessageType.WELCOME, sessionId: 9129137332, details: { roles: { broker: {} } } },
  { type: MessageType.ABORT, details: { message: 'no' }, reason: 'wamp.error.no_such_realm' },
  { type: MessageType.CHALLENGE, authMethod: 'ticket', extra: {} },
  { type: MessageType.AUTHENTICATE, signature: 'eyJ0eXAi.token', extra: {} },
  { type: MessageType.GOODBYE, details: {}, reason: 'wamp.close.normal' },
  {
    type: MessageType.ERROR, requestType: 48, requestId: 7, details: {}, error: 'com.example.bad',
    args: [1], kwargs: { why: 'x' },
  },
  { type: MessageType.PUBLISH, requestId: 3, options: { acknowledge: true }, topic: 'shop.Order', args: [{ a: 1 }], kwargs: {} },
  { type: MessageType.PUBLISHED, requestId: 3, publicationId: 55 },
  { type: MessageType.SUBSCRIBE, requestId: 1, options: {}, topic: 'shop.Order' },
  { type: MessageType.SUBSCRIBED, requestId: 1, subscriptionId: 4021 },
  { type: MessageType.UNSUBSCRIBE, requestId: 2, subscriptionId: 4021 },
  { type: MessageType.UNSUBSCRIBED, requestId: 2 },
  { type: MessageType.EVENT, subscriptionId: 4021, publicationId: 88, details: {}, args: [{ name: 'shop.Order' }], kwargs: {} },
  { type: MessageType.CALL, requestId: 4, options: {}, procedure: 'com.example.add', args: [1, 2], kwargs: { c: 3 } },
  { type: MessageType.RESULT, requestId: 4, details: {}, args: [6], kwargs: {} },
];

describe('codec', () => {
  test('the subprotocol is wamp.2.json', () => {
    /** The client speaks the JSON serialization of WAMP v2. */
    assert.equal(SUBPROTOCOL, 'wamp.2.json');
  });

  test('samples cover every message type in the spec table', () => {
    /** Every supported type has a round-trip sample below. */
    const covered = SAMPLES.map((message) => message.type).sort((a, b) => a - b);
    const specified = Object.keys(MESSAGE_SPECS).map(Number).sort((a, b) => a - b);
    assert.deepEqual(covered, specified);
  });

  for (const sample of SAMPLES) {
    test(`parse(marshal(m)) equals m for ${messageName(sample.type)}`, () => {
      /** Marshal and parse are inverse for every message type. */
      assert.deepEqual(parse(marshal(sample)), sample);
      assert.deepEqual(decode(encode(sample)), sample);
    });
  }

  test('marshal omits empty trailing args and kwargs', () => {
    /** WAMP: empty kwargs are left off, and args too when nothing follows. */
    const base = { type: MessageType.PUBLISH, requestId: 1, options: {}, topic: 't' };
    assert.deepEqual(marshal(base), [16, 1, {}, 't']);
    assert.deepEqual(marshal({ ...base, args: [1] }), [16, 1, {}, 't', [1]]);
    assert.deepEqual(marshal({ ...base, kwargs: { a: 1 } }), [16, 1, {}, 't', [], { a: 1 }]);
  });

  test('parse fills in missing args and kwargs', () => {
    /** An EVENT without payload parses with args [] and kwargs {}. */
    assert.deepEqual(parse([36, 5, 6, {}]), {
      type: 36, subscriptionId: 5, publicationId: 6, details: {}, args: [], kwargs: {},
    });
  });

  test('HELLO marshals to the wire shape', () => {
    /** HELLO is [1, realm, details]. */
    assert.deepEqual(marshal({ type: 1, realm: 'telegraphy', details: { roles: {} } }), [1, 'telegraphy', { roles: {} }]);
  });

  test('router-initiated UNSUBSCRIBED with details parses', () => {
    /** Advanced profile: [35, 0, {subscription, reason}]. */
    assert.deepEqual(parse([35, 0, { subscription: 9, reason: 'wamp.error.x' }]), {
      type: 35, requestId: 0, details: { subscription: 9, reason: 'wamp.error.x' },
    });
  });

  const BAD = [
    ['a non-list', { a: 1 }, /message is dict, expected a list/],
    ['an empty list', [], /empty list/],
    ['a string type code', ['2', 1, {}], /invalid type string for message type code/],
    ['an unknown type', [99, 1], /message type 99 \(99\) is not supported/],
    ['an unsupported WAMP type', [68, 1, 2, {}], /message type 68 \(INVOCATION\) is not supported/],
    ['too few elements', [2, 1], /WELCOME has 2 elements, expected 3/],
    ['too many elements', [33, 1, 2, 3], /SUBSCRIBED has 4 elements, expected 3/],
    ['too many payload elements', [36, 1, 2, {}, [], {}, 7], /EVENT has 7 elements, expected 4\.\.6/],
    ['a string id', [33, '1', 2], /invalid type string for 'requestId' in SUBSCRIBED \(expected id\)/],
    ['a float id', [2, 1.5, {}], /invalid type float for 'sessionId' in WELCOME/],
    ['an id out of range', [2, 2 ** 53 + 2, {}], /id 9007199254740994 out of range for 'sessionId' in WELCOME/],
    ['a negative id', [33, 1, -4], /id -4 out of range for 'subscriptionId' in SUBSCRIBED/],
    ['details as a list', [2, 1, []], /invalid type list for 'details' in WELCOME \(expected dict\)/],
    ['null details', [36, 1, 2, null], /invalid type null for 'details' in EVENT/],
    ['args as a dict', [36, 1, 2, {}, {}], /invalid type dict for 'args' in EVENT \(expected list\)/],
    ['kwargs as a list', [50, 1, {}, [], []], /invalid type list for 'kwargs' in RESULT/],
    ['an empty reason uri', [3, {}, ''], /invalid uri "" for 'reason' in ABORT/],
    ['a uri with spaces', [8, 32, 1, {}, 'bad uri'], /invalid uri "bad uri" for 'error' in ERROR/],
  ];
  for (const [label, input, pattern] of BAD) {
    test(`parse rejects ${label}`, () => {
      /** Invalid messages raise ProtocolError naming field and message. */
      assert.throws(() => parse(input), (err) => err instanceof ProtocolError && pattern.test(err.message)
        && err.uri === 'wamp.error.protocol_violation');
    });
  }

  test('decode rejects invalid JSON and binary frames', () => {
    /** Frames that are not JSON text raise ProtocolError. */
    assert.throws(() => decode('[2, 1,'), /invalid JSON \(6 characters\)/);
    assert.throws(() => decode(new ArrayBuffer(4)), /received a object frame, expected JSON text/);
    assert.throws(() => decode(null), /received a null frame/);
  });

  test('marshal reports caller mistakes as UsageError', () => {
    /** Missing fields and bad topics are the caller's fault. */
    assert.throws(() => marshal({ type: 32, requestId: 1, options: {} }),
      (err) => err instanceof UsageError && /invalid type undefined for 'topic' in SUBSCRIBE/.test(err.message));
    assert.throws(() => marshal({ type: 16, requestId: 1, options: {}, topic: 'a b' }),
      (err) => err instanceof UsageError && /invalid uri "a b" for 'topic' in PUBLISH/.test(err.message));
    assert.throws(() => marshal({ type: 64 }), /cannot marshal message type 64 \(REGISTER\)/);
    assert.throws(() => marshal({ type: 48, requestId: 1, options: {}, procedure: 'p', args: { a: 1 } }),
      /invalid type dict for 'args' in CALL/);
  });
});
