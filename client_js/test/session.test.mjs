import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { CallbackError, ConnectionError, ProtocolError, UsageError, WampError } from '../src/errors.js';
import {
  CLIENT_ROLES, canonicalJson, eventPublisher, helloDetails, Session, SessionState, subscriptionKey,
} from '../src/session.js';

/** A session with recording callbacks. */
function makeSession() {
  const record = { sent: [], opened: [], closed: [], errors: [] };
  const session = new Session({
    send: (array) => record.sent.push(array),
    onOpen: (info) => record.opened.push(info),
    onClose: (info) => record.closed.push(info),
    onError: (err) => record.errors.push(err),
  });
  record.take = () => record.sent.splice(0);
  return { session, record };
}

/** A session past WELCOME, with the HELLO already taken. */
function establishedSession(sessionId = 77) {
  const pair = makeSession();
  pair.session.open({ realm: 'telegraphy' });
  pair.session.receive([2, sessionId, { roles: { broker: {} } }]);
  pair.record.take();
  return pair;
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('session: opening', () => {
  test('anonymous HELLO announces roles and anonymous auth', () => {
    /** Without a ticket, HELLO has authmethods ["anonymous"] and no authid. */
    const { session, record } = makeSession();
    session.open({ realm: 'telegraphy' });
    assert.equal(session.state, SessionState.ESTABLISHING);
    assert.equal(record.sent.length, 1);
    const [type, realm, details] = record.sent[0];
    assert.equal(type, 1);
    assert.equal(realm, 'telegraphy');
    assert.deepEqual(details.authmethods, ['anonymous']);
    assert.equal('authid' in details, false);
    assert.deepEqual(details.roles, CLIENT_ROLES);
    assert.deepEqual(Object.keys(details.roles).sort(), ['callee', 'caller', 'publisher', 'subscriber']);
    assert.equal(details.roles.publisher.features.publisher_exclusion, true);
    assert.equal(details.roles.subscriber.features.pattern_based_subscription, true);
    assert.equal(details.roles.caller.features.progressive_call_results, false);
  });

  test('ticket HELLO, CHALLENGE and AUTHENTICATE', () => {
    /** With a ticket: authmethods ["ticket"], authid "", and AUTHENTICATE [5, ticket, {}]. */
    const { session, record } = makeSession();
    session.open({ realm: 'telegraphy', ticket: 'jwt.abc' });
    const details = record.take()[0][2];
    assert.deepEqual(details.authmethods, ['ticket']);
    assert.equal(details.authid, '');
    session.receive([4, 'ticket', {}]);
    assert.equal(session.state, SessionState.AUTHENTICATING);
    assert.deepEqual(record.take(), [[5, 'jwt.abc', {}]]);
    session.receive([2, 5, { authmethod: 'ticket' }]);
    assert.equal(session.state, SessionState.ESTABLISHED);
    assert.equal(session.sessionId, 5);
    assert.deepEqual(record.opened, [{ sessionId: 5, details: { authmethod: 'ticket' }, resumed: false, recovered: {}, recovery: [] }]);
  });

  test('authid is sent with the ticket', () => {
    /** A configured authid goes into HELLO details. */
    assert.equal(helloDetails({ ticket: 't', authid: 'alice' }).authid, 'alice');
    assert.equal(helloDetails({ ticket: null, authid: 'alice' }).authid, 'alice');
  });

  test('a challenge it cannot answer aborts the opening', () => {
    /** CHALLENGE wampcra without support, or ticket without a ticket, sends ABORT and closes. */
    const { session, record } = makeSession();
    session.open({ realm: 'telegraphy' });
    record.take();
    session.receive([4, 'ticket', {}]);
    const [abort] = record.take();
    assert.equal(abort[0], 3);
    assert.equal(abort[2], 'wamp.error.cannot_authenticate');
    assert.match(abort[1].message, /no ticket to answer challenge "ticket"/);
    assert.equal(session.state, SessionState.CLOSED);
    assert.equal(record.closed[0].reason, 'wamp.error.cannot_authenticate');
    assert.equal(record.closed[0].initiator, 'client');
  });

  test('ABORT ends the opening with the router reason', () => {
    /** ABORT during opening reports the reason through onClose. */
    const { session, record } = makeSession();
    session.open({ realm: 'telegraphy', ticket: 'bad' });
    session.receive([3, { message: 'token expired' }, 'wamp.error.authentication_failed']);
    assert.equal(session.state, SessionState.CLOSED);
    assert.deepEqual(record.closed, [{
      reason: 'wamp.error.authentication_failed', details: { message: 'token expired' }, initiator: 'router',
    }]);
  });

  test('open twice is a usage error', () => {
    /** A session must be closed before it is opened again. */
    const { session } = makeSession();
    session.open({ realm: 'r' });
    assert.throws(() => session.open({ realm: 'r' }), (err) => err instanceof UsageError);
  });

  test('an invalid realm is refused before anything is sent', () => {
    /** The realm must be a URI. */
    const { session, record } = makeSession();
    assert.throws(() => session.open({ realm: '' }), UsageError);
    assert.equal(record.sent.length, 0);
    assert.equal(session.state, SessionState.CLOSED);
  });
});

describe('session: subscriptions', () => {
  test('handlers added before WELCOME are subscribed on WELCOME', () => {
    /** One SUBSCRIBE per topic, request ids 1, 2, … in session scope. */
    const { session, record } = makeSession();
    session.addHandler('app.A', null, () => {});
    session.addHandler('app.A', null, () => {});
    session.addHandler('app.B', null, () => {});
    session.open({ realm: 'r' });
    assert.equal(record.take().length, 1); // only HELLO
    session.receive([2, 1, {}]);
    assert.deepEqual(record.take(), [[32, 1, {}, 'app.A'], [32, 2, {}, 'app.B']]);
  });

  test('one WAMP subscription is shared by all handlers of a topic', () => {
    /** The second handler does not SUBSCRIBE again and both get the event. */
    const { session, record } = establishedSession();
    const seen = [];
    session.addHandler('app.A', null, (event) => seen.push(['first', event]));
    session.addHandler('app.A', null, (event) => seen.push(['second', event]));
    assert.deepEqual(record.take(), [[32, 1, {}, 'app.A']]);
    session.receive([33, 1, 500]);
    session.receive([36, 500, 9, {}, [{ name: 'app.A', data: { pk: 1 } }]]);
    assert.deepEqual(seen, [['first', { name: 'app.A', data: { pk: 1 } }], ['second', { name: 'app.A', data: { pk: 1 } }]]);
    assert.deepEqual(session.subscriptions(), [{ topic: 'app.A', options: {}, handlers: 2, subscriptionId: 500 }]);
  });

  test('handlers get publication info as second argument', () => {
    /** info carries topic, subscription and publication ids. */
    const { session } = establishedSession();
    let info = null;
    session.addHandler('app.A', null, (event, eventInfo) => { info = eventInfo; });
    session.receive([33, 1, 500]);
    session.receive([36, 500, 9, { publisher: 3 }, [{}]]);
    assert.equal(info.topic, 'app.A');
    assert.equal(info.subscriptionId, 500);
    assert.equal(info.publicationId, 9);
    assert.deepEqual(info.details, { publisher: 3 });
  });

  test('handlers learn who published: the web app or a session with its authid', () => {
    /** info.publisher comes from the Publisher Identification details; only a session-less "web" role is the web app. */
    const { session } = establishedSession();
    const seen = [];
    session.addHandler('app.A', null, (event, info) => seen.push(info.publisher));
    session.receive([33, 1, 500]);
    session.receive([36, 500, 1, { publisher_authrole: 'web' }, [{}]]);
    session.receive([36, 500, 2, { publisher: 3, publisher_authid: '7', publisher_authrole: 'user' }, [{}]]);
    session.receive([36, 500, 3, {}, [{}]]);
    assert.deepEqual(seen, [
      { web: true, session: null, authid: null, authrole: 'web' },
      { web: false, session: 3, authid: '7', authrole: 'user' },
      null,
    ]);
    // A session id rules out the web app, whatever role is claimed.
    assert.equal(eventPublisher({ publisher: 5, publisher_authrole: 'web' }).web, false);
    assert.equal(eventPublisher(null), null);
  });

  test('removing the last handler unsubscribes', () => {
    /** UNSUBSCRIBE goes out only when no local handler is left. */
    const { session, record } = establishedSession();
    const a = () => {};
    const b = () => {};
    session.addHandler('app.A', null, a);
    session.addHandler('app.A', null, b);
    session.receive([33, 1, 500]);
    record.take();
    assert.equal(session.removeHandler('app.A', null, a), true);
    assert.deepEqual(record.take(), []);
    assert.equal(session.removeHandler('app.A', null, b), true);
    assert.deepEqual(record.take(), [[34, 2, 500]]);
    session.receive([35, 2]);
    assert.deepEqual(session.subscriptions(), []);
    assert.deepEqual(record.errors, []);
  });

  test('removing every handler without naming one', () => {
    /** removeHandler(topic, options) without fn clears the topic. */
    const { session, record } = establishedSession();
    session.addHandler('app.A', null, () => {});
    session.addHandler('app.A', null, () => {});
    session.receive([33, 1, 500]);
    record.take();
    session.removeHandler('app.A', null);
    assert.deepEqual(record.take(), [[34, 2, 500]]);
  });

  test('handlers removed while SUBSCRIBE is in flight unsubscribe on SUBSCRIBED', () => {
    /** The reply to a SUBSCRIBE nobody wants any more is followed by UNSUBSCRIBE. */
    const { session, record } = establishedSession();
    const fn = () => {};
    session.addHandler('app.A', null, fn);
    session.removeHandler('app.A', null, fn);
    assert.deepEqual(record.take(), [[32, 1, {}, 'app.A']]);
    session.receive([33, 1, 500]);
    assert.deepEqual(record.take(), [[34, 2, 500]]);
    session.receive([36, 500, 1, {}, [{}]]); // racing event: dropped quietly
    session.receive([35, 2]);
    assert.deepEqual(session.subscriptions(), []);
    assert.deepEqual(record.errors, []);
  });

  test('a handler re-added while UNSUBSCRIBE is in flight subscribes again', () => {
    /** After UNSUBSCRIBED, a topic that has handlers again gets a new SUBSCRIBE. */
    const { session, record } = establishedSession();
    const fn = () => {};
    session.addHandler('app.A', null, fn);
    session.receive([33, 1, 500]);
    session.removeHandler('app.A', null, fn);
    session.addHandler('app.A', null, fn);
    session.receive([35, 2]);
    assert.deepEqual(record.take(), [[32, 1, {}, 'app.A'], [34, 2, 500], [32, 3, {}, 'app.A']]);
  });

  test('options make a separate subscription with SUBSCRIBE options', () => {
    /** Topic + options is the key; options are sent as given. */
    const { session, record } = establishedSession();
    session.addHandler('app.A', null, () => {});
    session.addHandler('app.A', { filter: { status: 'open' } }, () => {});
    assert.deepEqual(record.take(), [[32, 1, {}, 'app.A'], [32, 2, { filter: { status: 'open' } }, 'app.A']]);
    assert.equal(subscriptionKey('t', { b: 1, a: 2 }), subscriptionKey('t', { a: 2, b: 1 }));
    assert.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null }), '{"a":null,"b":[1,{"c":2,"d":1}]}');
  });

  test('two wanted subscriptions the router gave one id both get events', () => {
    /** If the router answers two SUBSCRIBEs with the same id, each handler still runs once. */
    const { session, record } = establishedSession();
    const seen = [];
    const plain = () => seen.push('plain');
    session.addHandler('app.A', null, plain);
    session.addHandler('app.A', { filter: { a: 1 } }, () => seen.push('filtered'));
    session.receive([33, 1, 500]);
    session.receive([33, 2, 500]);
    session.receive([36, 500, 1, {}, [{}]]);
    assert.deepEqual(seen, ['plain', 'filtered']);
    record.take();
    session.removeHandler('app.A', null, plain);
    assert.deepEqual(record.take(), [], 'the other subscription still uses id 500');
  });

  test('a refused SUBSCRIBE is reported and not retried until the next session', () => {
    /** ERROR for SUBSCRIBE reports a WampError once, then waits for a new WELCOME. */
    const { session, record } = establishedSession();
    session.addHandler('app.Secret', null, () => {});
    session.receive([8, 32, 1, {}, 'wamp.error.not_authorized']);
    assert.equal(record.errors.length, 1);
    assert.ok(record.errors[0] instanceof WampError);
    assert.equal(record.errors[0].uri, 'wamp.error.not_authorized');
    assert.match(record.errors[0].message, /subscribe failed: wamp.error.not_authorized: subscribing to "app.Secret" failed/);
    session.addHandler('app.Secret', null, () => {});
    assert.deepEqual(record.take(), [[32, 1, {}, 'app.Secret']]);
    session.transportClosed({ code: 1006 });
    session.open({ realm: 'r' });
    session.receive([2, 2, {}]);
    assert.deepEqual(record.take().slice(1), [[32, 1, {}, 'app.Secret']]);
  });

  test('a router-revoked subscription is reported', () => {
    /** [35, 0, {subscription, reason}] drops the subscription and reports the reason. */
    const { session, record } = establishedSession();
    session.addHandler('app.A', null, () => {});
    session.receive([33, 1, 500]);
    session.receive([35, 0, { subscription: 500, reason: 'wamp.error.not_authorized' }]);
    assert.equal(record.errors[0].uri, 'wamp.error.not_authorized');
    assert.deepEqual(session.subscriptions(), [{ topic: 'app.A', options: {}, handlers: 1, subscriptionId: null }]);
  });

  test('a throwing handler is reported and the others still run', () => {
    /** Callback exceptions become CallbackError through onError. */
    const { session, record } = establishedSession();
    const seen = [];
    session.addHandler('app.A', null, () => { throw new Error('boom'); });
    session.addHandler('app.A', null, () => seen.push('ok'));
    session.receive([33, 1, 500]);
    session.receive([36, 500, 1, {}, [{}]]);
    assert.deepEqual(seen, ['ok']);
    assert.ok(record.errors[0] instanceof CallbackError);
    assert.match(record.errors[0].message, /handler for topic "app.A" threw: boom/);
  });

  test('the event is args[0], or kwargs when there are no args', () => {
    /** Telegraphy events are args[0]; a kwargs-only publication delivers kwargs. */
    const { session } = establishedSession();
    const seen = [];
    session.addHandler('app.A', null, (event) => seen.push(event));
    session.receive([33, 1, 500]);
    session.receive([36, 500, 1, {}, [{ n: 1 }, 'extra']]);
    session.receive([36, 500, 2, {}, [], { n: 2 }]);
    assert.deepEqual(seen, [{ n: 1 }, { n: 2 }]);
  });

  test('bad handler arguments are usage errors', () => {
    /** addHandler checks the topic and function. */
    const { session } = makeSession();
    assert.throws(() => session.addHandler('', null, () => {}), UsageError);
    assert.throws(() => session.addHandler('a b', null, () => {}), UsageError);
    assert.throws(() => session.addHandler('app.A', null, 'nope'), UsageError);
  });
});

describe('session: requests', () => {
  test('publish without acknowledge resolves at once', async () => {
    /** PUBLISH carries args; without acknowledge the promise resolves with null. */
    const { session, record } = establishedSession();
    assert.equal(await session.publish('app.A', [{ x: 1 }], {}, {}), null);
    assert.deepEqual(record.take(), [[16, 1, {}, 'app.A', [{ x: 1 }]]]);
  });

  test('acknowledged publish resolves on PUBLISHED', async () => {
    /** With acknowledge the promise waits for PUBLISHED and gives the publication id. */
    const { session, record } = establishedSession();
    const promise = session.publish('app.A', [1], {}, { acknowledge: true });
    assert.deepEqual(record.take(), [[16, 1, { acknowledge: true }, 'app.A', [1]]]);
    session.receive([17, 1, 999]);
    assert.deepEqual(await promise, { publicationId: 999 });
  });

  test('call resolves with RESULT and rejects with ERROR', async () => {
    /** CALL replies map to resolve/reject by request id. */
    const { session, record } = establishedSession();
    const ok = session.call('math.add', [1, 2], {});
    const bad = session.call('math.div', [1, 0], { strict: true });
    assert.deepEqual(record.take(), [[48, 1, {}, 'math.add', [1, 2]], [48, 2, {}, 'math.div', [1, 0], { strict: true }]]);
    session.receive([8, 48, 2, {}, 'math.error.zero', ['division by zero']]);
    session.receive([50, 1, {}, [3]]);
    assert.deepEqual(await ok, { args: [3], kwargs: {}, details: {} });
    await assert.rejects(bad, (err) => err instanceof WampError && err.uri === 'math.error.zero'
      && err.args[0] === 'division by zero' && err.requestType === 'CALL');
  });

  test('requests outside an established session reject', async () => {
    /** No session: ConnectionError, and nothing is sent. */
    const { session, record } = makeSession();
    await assert.rejects(session.publish('a.b', [], {}, {}), ConnectionError);
    await assert.rejects(session.call('a.b'), /not connected \(session is closed\)/);
    assert.equal(record.sent.length, 0);
  });

  test('pending requests reject when the transport closes', async () => {
    /** transportClosed rejects every pending request with ConnectionError. */
    const { session } = establishedSession();
    const promise = session.call('slow.proc');
    session.transportClosed({ code: 1006, reason: 'gone' });
    await assert.rejects(promise, (err) => err instanceof ConnectionError
      && /connection closed before reply to CALL 1/.test(err.message) && err.code === 1006);
    assert.equal(session.state, SessionState.CLOSED);
  });

  test('request ids restart at 1 in a new session', () => {
    /** Request ids are session-scoped. */
    const { session, record } = establishedSession();
    session.publish('a.b', [], {}, {});
    session.publish('a.b', [], {}, {});
    session.transportClosed({});
    session.open({ realm: 'r' });
    session.receive([2, 8, {}]);
    record.take();
    session.publish('a.b', [], {}, {});
    assert.equal(record.take()[0][1], 1);
  });

  test('an invalid topic rejects with UsageError', async () => {
    /** Topics are checked before sending. */
    const { session, record } = establishedSession();
    await assert.rejects(session.publish('bad topic', [], {}, {}), UsageError);
    assert.equal(record.sent.length, 0);
  });
});

describe('session: closing and bad input', () => {
  test('client GOODBYE then router GOODBYE closes cleanly', async () => {
    /** close() sends GOODBYE wamp.close.normal and the reply ends the session. */
    const { session, record } = establishedSession();
    const pending = session.call('x.y');
    record.take();
    assert.equal(session.close(), true);
    assert.deepEqual(record.take(), [[6, {}, 'wamp.close.normal']]);
    assert.equal(session.state, SessionState.CLOSING);
    session.receive([6, {}, 'wamp.close.goodbye_and_out']);
    assert.equal(session.state, SessionState.CLOSED);
    assert.equal(record.closed[0].initiator, 'client');
    await assert.rejects(pending, ConnectionError);
    assert.equal(session.close(), false);
  });

  test('router GOODBYE is answered with goodbye_and_out', () => {
    /** WAMP session closing: reply GOODBYE wamp.close.goodbye_and_out. */
    const { session, record } = establishedSession();
    session.receive([6, { message: 'restart' }, 'wamp.close.system_shutdown']);
    assert.deepEqual(record.take(), [[6, {}, 'wamp.close.goodbye_and_out']]);
    assert.deepEqual(record.closed, [{
      reason: 'wamp.close.system_shutdown', details: { message: 'restart' }, initiator: 'router',
    }]);
  });

  test('invalid input is reported and dropped, never thrown', () => {
    /** Garbage, unexpected and unknown-request messages become ProtocolErrors. */
    const { session, record } = establishedSession();
    session.receiveText('not json');
    session.receiveText('{"a": 1}');
    session.receiveText('[99]');
    session.receiveText(new Uint8Array(3));
    session.receive([2, 4, {}]); // WELCOME while established
    session.receive([4, 'ticket', {}]); // CHALLENGE while established
    session.receive([33, 42, 1]); // SUBSCRIBED for an unknown request
    session.receive([17, 1, 1]); // PUBLISHED for an unknown request
    session.receive([8, 32, 9, {}, 'wamp.error.x']); // ERROR for an unknown request
    session.receive([36, 1234, 1, {}, [{}]]); // EVENT for no subscription: dropped quietly
    session.receive([50, 3, { progress: true }, [1]]); // progressive result: ignored
    assert.equal(session.state, SessionState.ESTABLISHED);
    assert.equal(record.errors.length, 9);
    assert.ok(record.errors.every((err) => err instanceof ProtocolError), record.errors.join('\n'));
    assert.match(record.errors[3].message, /received a object frame/);
    assert.match(record.errors[4].message, /WELCOME received while session is established/);
    assert.match(record.errors[6].message, /SUBSCRIBED for unknown SUBSCRIBE request 42/);
    assert.match(record.errors[8].message, /ERROR for unknown SUBSCRIBE request 9/);
  });

  test('a client-only message from the router is a protocol error', () => {
    /** The router never sends PUBLISH to a client. */
    const { session, record } = establishedSession();
    session.receive([16, 1, {}, 'a.b']);
    assert.match(record.errors[0].message, /router sent PUBLISH, which a router never sends to a client/);
  });

  test('a reply of the wrong kind does not settle a request', async () => {
    /** PUBLISHED answering a CALL id is refused; the CALL still gets its RESULT. */
    const { session, record } = establishedSession();
    const call = session.call('p.q');
    session.receive([17, 1, 5]);
    assert.match(record.errors[0].message, /PUBLISHED for unknown PUBLISH request 1/);
    session.receive([50, 1, {}]);
    assert.deepEqual(await call, { args: [], kwargs: {}, details: {} });
  });

  test('messages before opening are refused', () => {
    /** A closed session takes no messages. */
    const { session, record } = makeSession();
    session.receive([36, 1, 1, {}]);
    assert.match(record.errors[0].message, /EVENT received while session is closed/);
  });
});

/** An EVENT array with its stream position in details (and in meta, as the gateway sends it). */
function positioned(subscriptionId, publicationId, epoch, offset, extra = {}) {
  return [36, subscriptionId, publicationId, { epoch, offset, ...extra },
    [{ name: extra.topic || 'shop.Order', meta: { event_type: 'update', epoch, offset }, data: { n: offset } }]];
}

/** A session that saw shop.Order up to e1/42 on subscription 10 with resume token rt-1, then lost its transport. */
function droppedSession(handlers = { 'shop.Order': [] }) {
  const pair = makeSession();
  const seen = {};
  let requestId = 0;
  let subscriptionId = 10;
  for (const topic of Object.keys(handlers)) {
    seen[topic] = [];
    pair.session.addHandler(topic, null, (event, info) => seen[topic].push([event.meta.offset, info.subscriptionId]));
  }
  pair.session.open({ realm: 'r', resume: true });
  pair.session.receive([2, 1, { resume_token: 'rt-1' }]);
  for (const topic of Object.keys(handlers)) {
    pair.session.receive([33, ++requestId, subscriptionId]);
    for (const offset of handlers[topic]) {
      pair.session.receive(positioned(subscriptionId, offset, 'e1', offset));
    }
    subscriptionId += 10;
  }
  pair.session.transportClosed({});
  pair.record.take();
  pair.record.opened.length = 0;
  return { ...pair, seen };
}

describe('session: resume', () => {
  test('HELLO presents the resume token and {topic: [epoch, offset]} from EVENT.Details', () => {
    /** Positions come from EVENT.Details epoch/offset; HELLO sends arrays, not objects. */
    const { session, record } = droppedSession({ 'shop.Order': [41, 42] });
    assert.equal(session.resumeToken, 'rt-1');
    assert.deepEqual(session.resumeOffsets(), { 'shop.Order': ['e1', 42] });
    session.open({ realm: 'r', resume: true });
    const details = record.take()[0][2];
    assert.equal(details.resume_token, 'rt-1');
    assert.deepEqual(details.resume_offsets, { 'shop.Order': ['e1', 42] });
  });

  test('meta epoch/offset are used when EVENT.Details has none', () => {
    /** A Telegraphy event's meta carries the position too. */
    const { session } = establishedSession();
    session.addHandler('a.b', null, () => {});
    session.receive([33, 1, 5]);
    session.receive([36, 5, 1, {}, [{ name: 'a.b', meta: { epoch: 'e9', offset: 7 }, data: {} }]]);
    assert.deepEqual(session.resumeOffsets(), { 'a.b': ['e9', 7] });
  });

  test('no resume fields without resume, without a token, or after a WELCOME without a token', () => {
    /** resume: false, a first connect, and a gateway without persistence all send a plain HELLO. */
    const { session, record } = droppedSession({ 'shop.Order': [1] });
    session.open({ realm: 'r' });
    assert.equal('resume_token' in record.take()[0][2], false, 'resume not asked');
    session.receive([2, 2, {}]); // this gateway keeps no sessions: the token is forgotten
    assert.equal(session.resumeToken, null);
    session.transportClosed({});
    record.take();
    session.open({ realm: 'r', resume: true });
    const details = record.take()[0][2];
    assert.equal('resume_token' in details, false);
    assert.equal('resume_offsets' in details, false);
  });

  test('restored subscriptions are bound to their new ids, not subscribed again; missed events arrive in order', () => {
    /** resumed: true — no SUBSCRIBE for what the router restored, handlers see missed then live events. */
    const { session, record, seen } = droppedSession({ 'shop.Order': [40, 41], 'shop.Item': [3] });
    const offline = [];
    session.addHandler('shop.Offline', null, (event) => offline.push(event));
    session.open({ realm: 'r', resume: true });
    assert.deepEqual(record.take()[0][2].resume_offsets, { 'shop.Order': ['e1', 41], 'shop.Item': ['e1', 3] });
    session.receive([2, 2, {
      resume_token: 'rt-1',
      resumed: true,
      subscriptions: [
        { topic: 'shop.Order', match: 'exact', subscription: 501 },
        { topic: 'shop.Item', match: 'exact', subscription: 502 },
      ],
      recovered: { 'shop.Order': true, 'shop.Item': true },
      recovery_errors: {},
    }]);
    // Only the subscription made while offline is subscribed.
    assert.deepEqual(record.take(), [[32, 1, {}, 'shop.Offline']]);
    assert.deepEqual(record.opened[0].recovery, [
      { topic: 'shop.Order', recovered: true, missed: null },
      { topic: 'shop.Item', recovered: true, missed: null },
    ]);
    assert.equal(record.opened[0].resumed, true);
    assert.deepEqual(record.opened[0].recovered, { 'shop.Order': true, 'shop.Item': true });
    assert.deepEqual(session.subscriptions().map((sub) => [sub.topic, sub.subscriptionId]),
      [['shop.Order', 501], ['shop.Item', 502], ['shop.Offline', null]]);
    for (const offset of [42, 43, 44]) {
      session.receive(positioned(501, 100 + offset, 'e1', offset));
    }
    session.receive(positioned(502, 200, 'e1', 4));
    assert.deepEqual(seen['shop.Order'], [[40, 10], [41, 10], [42, 501], [43, 501], [44, 501]]);
    assert.deepEqual(seen['shop.Item'], [[3, 20], [4, 502]]);
    session.receive([33, 1, 503]);
    assert.deepEqual(record.errors, []);
  });

  test('a restored subscription nobody wants any more is unsubscribed', () => {
    /** Handlers removed while offline: the router's restored subscription is ended. */
    const { session, record } = droppedSession({ 'shop.Order': [1] });
    session.removeHandler('shop.Order', null);
    session.open({ realm: 'r', resume: true });
    record.take();
    session.receive([2, 2, {
      resume_token: 'rt-1', resumed: true,
      subscriptions: [{ topic: 'shop.Order', match: 'exact', subscription: 501 }],
      recovered: { 'shop.Order': true }, recovery_errors: {},
    }]);
    assert.deepEqual(record.take(), [[34, 1, 501]]);
    assert.deepEqual(record.opened[0].recovery, [], 'no notice for an unwanted topic');
    session.receive([35, 1]);
    assert.deepEqual(record.errors, []);
    assert.deepEqual(session.subscriptions(), []);
  });

  test('resumed: false subscribes everything again and reports each presented topic as not recovered', () => {
    /** An unknown or expired token gives a fresh session; the page hears why per topic. */
    const { session, record } = droppedSession({ 'shop.Order': [5], 'shop.Item': [] });
    session.open({ realm: 'r', resume: true });
    record.take();
    session.receive([2, 2, { resume_token: 'rt-2', resumed: false, resume_error: 'unknown or expired resume token' }]);
    assert.deepEqual(record.take(), [[32, 1, {}, 'shop.Order'], [32, 2, {}, 'shop.Item']]);
    assert.equal(record.opened[0].resumed, false);
    assert.deepEqual(record.opened[0].recovered, {});
    assert.deepEqual(record.opened[0].recovery, [
      { topic: 'shop.Order', recovered: false, reason: 'unknown or expired resume token' },
    ]);
    assert.equal(session.resumeToken, 'rt-2');
    assert.deepEqual(session.resumeOffsets(), {}, 'a position from before the gap is not presented again');
  });

  test('recovered: false per topic is reported with its reason and drops the position', () => {
    /** recovery_errors give the reason; a presented topic the router did not restore is not recovered either. */
    const { session, record } = droppedSession({ 'shop.Order': [5], 'shop.Item': [6], 'shop.Gone': [7] });
    session.open({ realm: 'r', resume: true });
    record.take();
    session.receive([2, 2, {
      resume_token: 'rt-1', resumed: true,
      subscriptions: [
        { topic: 'shop.Order', match: 'exact', subscription: 501 },
        { topic: 'shop.Item', match: 'exact', subscription: 502 },
      ],
      recovered: { 'shop.Order': false, 'shop.Item': true },
      recovery_errors: { 'shop.Order': 'history trimmed' },
    }]);
    assert.deepEqual(record.take(), [[32, 1, {}, 'shop.Gone']]);
    assert.deepEqual(record.opened[0].recovery, [
      { topic: 'shop.Order', recovered: false, reason: 'history trimmed' },
      { topic: 'shop.Item', recovered: true, missed: null },
      { topic: 'shop.Gone', recovered: false, reason: 'subscription not restored' },
    ]);
    assert.deepEqual(session.resumeOffsets(), { 'shop.Item': ['e1', 6] });
  });

  test('an event at or before the last position seen is dropped', () => {
    /** Same epoch: offsets must grow; a new epoch starts over; events without a position always pass. */
    const { session } = establishedSession();
    const seen = [];
    session.addHandler('a.b', null, (event, info) => seen.push(info.details.offset === undefined ? 'none' : info.details.epoch + info.details.offset));
    session.receive([33, 1, 5]);
    for (const [epoch, offset] of [['e1', 1], ['e1', 2], ['e1', 2], ['e1', 1], ['e1', 3], ['e2', 1], ['e2', 1]]) {
      session.receive(positioned(5, offset, epoch, offset));
    }
    session.receive([36, 5, 99, {}, [{ name: 'a.b', meta: {}, data: {} }]]);
    session.receive([36, 5, 99, {}, [{ name: 'a.b', meta: {}, data: {} }]]);
    assert.deepEqual(seen, ['e11', 'e12', 'e13', 'e21', 'none', 'none']);
    assert.deepEqual(session.resumeOffsets(), { 'a.b': ['e2', 1] });
  });

  test('prefix subscriptions track positions per concrete topic', () => {
    /** Offsets are per topic stream: shop.Order 3 and shop.Item 1 both pass; pattern topics stay out of HELLO. */
    const { session } = establishedSession();
    const prefix = [];
    const exact = [];
    session.addHandler('shop', { match: 'prefix' }, (event, info) => prefix.push(info.topic + '@' + info.details.offset));
    session.addHandler('shop.Order', null, (event, info) => exact.push(info.topic + '@' + info.details.offset));
    session.receive([33, 1, 7]);
    session.receive([33, 2, 8]);
    session.receive(positioned(7, 1, 'e1', 3, { topic: 'shop.Order' }));
    session.receive(positioned(8, 1, 'e1', 3)); // the same publication, on the exact subscription
    session.receive(positioned(7, 2, 'e1', 1, { topic: 'shop.Item' }));
    session.receive(positioned(7, 1, 'e1', 3, { topic: 'shop.Order' })); // a repeat
    session.receive(positioned(7, 3, 'e1', 2, { topic: 'shop.Item' }));
    assert.deepEqual(prefix, ['shop.Order@3', 'shop.Item@1', 'shop.Item@2']);
    assert.deepEqual(exact, ['shop.Order@3']);
    assert.deepEqual(session.resumeOffsets(), { 'shop.Order': ['e1', 3] });
  });

  test('a restored prefix subscription is bound by topic and match', () => {
    /** {topic, match: "prefix"} binds the local prefix handlers, not the exact ones. */
    const pair = makeSession();
    const got = [];
    pair.session.addHandler('shop', { match: 'prefix' }, (event, info) => got.push(info.topic));
    pair.session.addHandler('shop', null, () => {});
    pair.session.open({ realm: 'r' });
    pair.session.receive([2, 1, { resume_token: 'rt' }]);
    pair.session.receive([33, 1, 1]);
    pair.session.receive([33, 2, 2]);
    pair.session.transportClosed({});
    pair.record.take();
    pair.session.open({ realm: 'r', resume: true });
    pair.record.take();
    pair.session.receive([2, 2, {
      resume_token: 'rt', resumed: true,
      subscriptions: [{ topic: 'shop', match: 'prefix', subscription: 9 }],
      recovered: { shop: false }, recovery_errors: { shop: 'pattern subscriptions have no stream position' },
    }]);
    assert.deepEqual(pair.record.take(), [[32, 1, {}, 'shop']]);
    pair.session.receive([36, 9, 1, { topic: 'shop.X', epoch: 'e', offset: 1 }, [{}]]);
    assert.deepEqual(got, ['shop.X']);
    assert.deepEqual(pair.record.opened[1].recovery,
      [{ topic: 'shop', recovered: false, reason: 'pattern subscriptions have no stream position' }]);
  });

  test('a malformed restored subscription is reported and that handler subscribes normally', () => {
    /** Bad entries in WELCOME.Details.subscriptions are protocol errors, not crashes. */
    const { session, record } = droppedSession({ 'shop.Order': [1] });
    session.open({ realm: 'r', resume: true });
    record.take();
    session.receive([2, 2, { resume_token: 'rt-1', resumed: true, subscriptions: [{ topic: 'shop.Order', subscription: 'x' }], recovered: {} }]);
    assert.match(record.errors[0].message, /invalid restored subscription/);
    assert.deepEqual(record.take(), [[32, 1, {}, 'shop.Order']]);
  });
});

test('session needs a send callback', async () => {
  /** Constructing without send is a usage error. */
  assert.throws(() => new Session({}), UsageError);
  await flush();
});
