import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { CallbackError, ConnectionError, ProtocolError, UsageError, WampError } from '../src/errors.js';
import Telegraphy, {
  autoConfigure, DEFAULT_CONFIG, GLOBAL_CONFIG_NAME, TelegraphyClient,
} from '../src/telegraphy.js';
import { resolveUrl } from '../src/transport.js';
import { flush, makeFakeTimers, makeFakeWebSocket, until } from '../testing/fakes.mjs';

/** A client on a fake WebSocket and manual timers, with every event recorded. */
function setup(options = {}) {
  const FakeWS = makeFakeWebSocket();
  const timers = makeFakeTimers();
  const client = new TelegraphyClient({
    url: 'ws://gateway.test/ws', WebSocket: FakeWS, timers, random: () => 0, autoConnect: false, ...options,
  });
  const log = { errors: [], connects: [], disconnects: [], states: [] };
  client
    .on('error', (err) => log.errors.push(err))
    .on('connect', (info) => log.connects.push(info))
    .on('disconnect', (info) => log.disconnects.push(info))
    .on('statechange', (change) => log.states.push(change.state));
  return { client, FakeWS, timers, log };
}

/** Play the router: accept the socket and answer HELLO with WELCOME. */
function welcome(ws, sessionId = 1, details = { roles: { broker: {} } }) {
  ws.open();
  assert.equal(ws.messages[0][0], 1, 'first message is HELLO');
  ws.receive([2, sessionId, details]);
  return ws;
}

/** A connected client. */
function connected(options) {
  const env = setup(options);
  env.client.connect();
  env.ws = welcome(env.FakeWS.last);
  return env;
}

const event = (type, data = {}) => ({
  name: 'app.Model',
  meta: { event_type: type, verbose_name: 'model', timestamp: '2026-11-24T10:00:00.000000Z', id: 'e-' + type },
  data,
});

describe('client: connecting', () => {
  test('connect opens a WebSocket with the wamp.2.json subprotocol', () => {
    /** The transport asks for wamp.2.json at the configured URL. */
    const { client, FakeWS, log } = setup();
    assert.equal(client.state, 'disconnected');
    client.connect();
    assert.equal(client.state, 'connecting');
    assert.equal(FakeWS.instances.length, 1);
    assert.equal(FakeWS.last.url, 'ws://gateway.test/ws');
    assert.deepEqual(FakeWS.last.protocols, ['wamp.2.json']);
    welcome(FakeWS.last, 4242, { roles: { broker: {} }, authid: 'anon' });
    assert.equal(client.state, 'connected');
    assert.equal(client.sessionId, 4242);
    assert.deepEqual(log.connects, [{
      sessionId: 4242, transport: 'websocket', sockjsTransport: null, details: { roles: { broker: {} }, authid: 'anon' }, resumed: false, recovered: {},
    }]);
    assert.deepEqual(log.states, ['connecting', 'connected']);
  });

  test('HELLO names the realm and anonymous auth without a token', () => {
    /** No token: authmethods ["anonymous"]. */
    const { ws } = connected({ realm: 'shop' });
    const [type, realm, details] = ws.messages[0];
    assert.equal(type, 1);
    assert.equal(realm, 'shop');
    assert.deepEqual(details.authmethods, ['anonymous']);
  });

  test('connect twice opens one socket', () => {
    /** connect() while connecting or connected does nothing. */
    const { client, FakeWS } = setup();
    client.connect();
    client.connect();
    welcome(FakeWS.last);
    client.connect();
    assert.equal(FakeWS.instances.length, 1);
  });

  test('a server that picks another subprotocol is refused', async () => {
    /** If the server chose a subprotocol we did not offer, the socket is closed. */
    const { client, FakeWS, log } = setup({ reconnect: false });
    client.connect();
    FakeWS.last.open('wamp.2.msgpack');
    assert.equal(FakeWS.last.sent.length, 0);
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.equal(log.disconnects[0].willReconnect, false);
  });

  test('autoConnect connects after configure', async () => {
    /** configure() with autoConnect opens the connection once the current task's microtasks ran. */
    const FakeWS = makeFakeWebSocket();
    const client = new TelegraphyClient({ WebSocket: FakeWS, timers: makeFakeTimers() });
    assert.equal(FakeWS.instances.length, 0, 'not synchronously: listeners can still be added');
    await flush();
    assert.equal(FakeWS.instances.length, 1);
    assert.equal(FakeWS.last.url, DEFAULT_CONFIG.url);
    client.disconnect();
  });

  test('disconnect right after configure cancels autoConnect', async () => {
    /** An explicit disconnect() wins over the pending automatic connect. */
    const FakeWS = makeFakeWebSocket();
    const client = new TelegraphyClient({ WebSocket: FakeWS, timers: makeFakeTimers() });
    client.disconnect();
    await flush();
    assert.equal(FakeWS.instances.length, 0);
  });

  test('configure rejects unknown options and wrong types', () => {
    /** Typos and wrong types fail loudly with UsageError. */
    const client = new TelegraphyClient();
    assert.throws(() => client.configure({ URL: 'x' }), (err) => err instanceof UsageError && /unknown option "URL"/.test(err.message));
    assert.throws(() => client.configure({ realm: 3 }), /option realm must be a non-empty string/);
    assert.throws(() => client.configure({ reconnect: { minDelay: 10, maxDelay: 1 } }), UsageError);
    assert.throws(() => client.configure({ tokenProvider: 'abc' }), UsageError);
    assert.equal(client.state, 'disconnected');
  });

  test('no WebSocket implementation is reported, without retrying', () => {
    /** A missing transport is fatal: error event, no reconnect timer. */
    const timers = makeFakeTimers();
    const client = new TelegraphyClient({ autoConnect: false, timers, WebSocket: null, transports: [{
      transportName: 'none', isAvailable: () => false,
    }] });
    const errors = [];
    const disconnects = [];
    client.on('error', (err) => errors.push(err)).on('disconnect', (info) => disconnects.push(info));
    client.connect();
    assert.match(errors[0].message, /no transport available \(tried none\)/);
    assert.equal(disconnects[0].willReconnect, false);
    assert.equal(timers.size, 0);
    assert.equal(client.state, 'disconnected');
  });

  test('URLs are made absolute for WebSocket', () => {
    /** "/ws" is taken relative to the page, http(s) becomes ws(s). */
    assert.equal(resolveUrl('/ws', { protocol: 'https:', host: 'example.com' }), 'wss://example.com/ws');
    assert.equal(resolveUrl('/ws', { protocol: 'http:', host: 'localhost:8000' }), 'ws://localhost:8000/ws');
    assert.equal(resolveUrl('https://example.com/ws', null), 'wss://example.com/ws');
    assert.equal(resolveUrl('ws://a/ws', null), 'ws://a/ws');
    assert.throws(() => resolveUrl('gateway', null), UsageError);
  });
});

describe('client: register and unregister', () => {
  test('register before connect subscribes on WELCOME and delivers events', () => {
    /** Handlers registered early get a SUBSCRIBE once the session opens. */
    const { client, FakeWS } = setup();
    const seen = [];
    client.register('app.Model', (evt) => seen.push(evt));
    client.connect();
    const ws = welcome(FakeWS.last);
    assert.deepEqual(ws.messages[1], [32, 1, {}, 'app.Model']);
    ws.receive([33, 1, 7001]);
    ws.receive([36, 7001, 1, {}, [event('create', { pk: 1 })]]);
    assert.deepEqual(seen, [event('create', { pk: 1 })]);
  });

  test('register after connect subscribes at once, once per topic', () => {
    /** A second handler on the same topic shares the subscription. */
    const { client, ws } = connected();
    const seen = [];
    client.register('app.Model', () => seen.push('a'));
    client.register('app.Model', () => seen.push('b'));
    assert.equal(ws.messagesOfType(32).length, 1);
    ws.receive([33, 1, 7001]);
    ws.receive([36, 7001, 1, {}, [event('update')]]);
    assert.deepEqual(seen, ['a', 'b']);
  });

  test('unregister one handler keeps the subscription, the last one ends it', () => {
    /** UNSUBSCRIBE is sent only when the topic has no handler left. */
    const { client, ws } = connected();
    const seen = [];
    const a = () => seen.push('a');
    const b = () => seen.push('b');
    client.register('app.Model', a).register('app.Model', b);
    ws.receive([33, 1, 7001]);
    client.unregister('app.Model', a);
    ws.receive([36, 7001, 1, {}, [event('update')]]);
    assert.deepEqual(seen, ['b']);
    assert.equal(ws.messagesOfType(34).length, 0);
    client.unregister('app.Model', b);
    assert.deepEqual(ws.messagesOfType(34), [[34, 2, 7001]]);
  });

  test('unregister without a handler removes all of the topic, chains included', async () => {
    /** unregister(topic) drops every handler and subscribe() chain on it. */
    const { client, ws } = connected();
    const seen = [];
    client.register('app.Model', () => seen.push('a'));
    client.register('app.Model', () => seen.push('b'));
    const chain = client.subscribe('app.Model').onAny(() => seen.push('chain'));
    await flush();
    ws.receive([33, 1, 7001]);
    client.unregister('app.Model');
    assert.equal(chain.active, false);
    assert.deepEqual(ws.messagesOfType(34), [[34, 2, 7001]]);
    ws.receive([35, 2]);
    ws.receive([36, 7001, 1, {}, [event('update')]]);
    assert.deepEqual(seen, []);
  });

  test('register checks its arguments', () => {
    /** A missing topic or handler is a usage error. */
    const client = new TelegraphyClient();
    assert.throws(() => client.register('', () => {}), UsageError);
    assert.throws(() => client.register('app.Model'), UsageError);
  });
});

describe('client: subscribe chains', () => {
  test('handlers are chosen by meta.event_type, onAny sees all', async () => {
    /** onCreate/onUpdate/onDelete run for their type; onAny for every event. */
    const { client, ws } = connected();
    const seen = [];
    client.subscribe('app.Model')
      .onCreate((evt) => seen.push('create:' + evt.data.pk))
      .onUpdate((evt) => seen.push('update:' + evt.data.pk))
      .onDelete((evt) => seen.push('delete:' + evt.data.pk))
      .onAny((evt) => seen.push('any:' + (evt.meta ? evt.meta.event_type : typeof evt)))
      .on('archive', () => seen.push('archive'));
    await flush();
    assert.deepEqual(ws.messagesOfType(32), [[32, 1, {}, 'app.Model']]);
    ws.receive([33, 1, 9]);
    for (const type of ['create', 'update', 'delete', 'archive', 'custom']) {
      ws.receive([36, 9, 1, {}, [event(type, { pk: 5 })]]);
    }
    ws.receive([36, 9, 2, {}, ['not an event object']]);
    assert.deepEqual(seen, [
      'create:5', 'any:create', 'update:5', 'any:update', 'delete:5', 'any:delete',
      'archive', 'any:archive', 'any:custom', 'any:string',
    ]);
  });

  test('filter and exclude become SUBSCRIBE options', async () => {
    /** Chained lookups shape the first SUBSCRIBE: {filter, exclude}. */
    const { client, ws } = connected();
    client.subscribe('app.Model').filter({ status: 'open' }).filter({ priority__gte: 3 })
      .exclude({ owner: 7 }).onCreate(() => {});
    await flush();
    assert.deepEqual(ws.messagesOfType(32), [
      [32, 1, { filter: { status: 'open', priority__gte: 3 }, exclude: { owner: 7 } }, 'app.Model'],
    ]);
  });

  test('filter after subscribing re-subscribes with the new options', async () => {
    /** Changing lookups later sends a new SUBSCRIBE, then UNSUBSCRIBE of the old one. */
    const { client, ws, log } = connected();
    const chain = client.subscribe('app.Model').onAny(() => {});
    await flush();
    ws.receive([33, 1, 9]);
    chain.filter({ status: 'open' });
    await flush();
    assert.deepEqual(ws.messages.slice(-2), [[32, 2, { filter: { status: 'open' } }, 'app.Model'], [34, 3, 9]]);
    assert.deepEqual(chain.options, { filter: { status: 'open' } });
    assert.deepEqual(log.errors, []);
  });

  test('cancel unsubscribes the chain', async () => {
    /** cancel() ends the chain's subscription; events are no longer delivered. */
    const { client, ws } = connected();
    const seen = [];
    const chain = client.subscribe('app.Model').onAny(() => seen.push(1));
    await flush();
    ws.receive([33, 1, 9]);
    chain.cancel();
    chain.cancel();
    assert.deepEqual(ws.messagesOfType(34), [[34, 2, 9]]);
    ws.receive([36, 9, 1, {}, [event('create')]]);
    assert.deepEqual(seen, []);
  });

  test('a chain and register() on one topic share one subscription', async () => {
    /** Same topic, no options: one WAMP subscription for both. */
    const { client, ws } = connected();
    client.register('app.Model', () => {});
    client.subscribe('app.Model').onAny(() => {});
    await flush();
    assert.equal(ws.messagesOfType(32).length, 1);
  });

  test('bad lookups are usage errors', () => {
    /** filter() takes a plain object. */
    const client = new TelegraphyClient();
    const chain = client.subscribe('app.Model');
    assert.throws(() => chain.filter('status=open'), UsageError);
    assert.throws(() => chain.exclude(null), UsageError);
    assert.throws(() => chain.onCreate(), UsageError);
    chain.cancel();
  });
});

describe('client: callbacks that throw', () => {
  test('a throwing handler is reported and others still run', async () => {
    /** Exceptions in handlers become 'error' events with CallbackError. */
    const { client, ws, log } = connected();
    const seen = [];
    client.register('app.Model', () => { throw new Error('boom'); });
    client.subscribe('app.Model').onCreate(() => { throw new TypeError('bad'); }).onAny(() => seen.push('any'));
    await flush();
    ws.receive([33, 1, 9]);
    ws.receive([36, 9, 1, {}, [event('create')]]);
    assert.deepEqual(seen, ['any']);
    assert.equal(log.errors.length, 2);
    assert.ok(log.errors.every((err) => err instanceof CallbackError));
    assert.match(log.errors[0].message, /handler for topic "app.Model" threw: boom/);
    assert.match(log.errors[1].message, /create handler for topic "app.Model" threw: bad/);
    assert.equal(client.state, 'connected');
  });

  test('a throwing listener is reported, and a throwing error listener does not loop', () => {
    /** 'connect' listener errors go to 'error'; 'error' listener errors only to the console. */
    const { client, FakeWS, log } = setup();
    client.on('connect', () => { throw new Error('listener'); });
    client.on('error', () => { throw new Error('error listener'); });
    const originalError = console.error;
    const logged = [];
    console.error = (...args) => logged.push(args);
    try {
      client.connect();
      welcome(FakeWS.last);
    } finally {
      console.error = originalError;
    }
    assert.equal(client.state, 'connected');
    assert.match(log.errors[0].message, /"connect" listener threw: listener/);
    assert.equal(logged.length, 1);
  });
});

describe('client: bad incoming messages', () => {
  test('garbage from the router is reported and does not break the client', () => {
    /** Invalid frames become ProtocolError events; valid traffic continues. */
    const { client, ws, log } = connected();
    const seen = [];
    client.register('app.Model', (evt) => seen.push(evt.meta.event_type));
    ws.receive([33, 1, 9]);
    ws.receiveRaw('{{{');
    ws.receiveRaw(new ArrayBuffer(8));
    ws.receive([36, 'nine', 1, {}, []]);
    ws.receive([36, 9, 1]);
    ws.receive([1234]);
    ws.receive([2, 5, {}]);
    ws.receive([36, 9, 2, {}, [event('update')]]);
    assert.equal(client.state, 'connected');
    assert.deepEqual(seen, ['update']);
    assert.equal(log.errors.length, 6);
    assert.ok(log.errors.every((err) => err instanceof ProtocolError), log.errors.join('\n'));
  });
});

describe('client: ticket auth', () => {
  test('a token is sent as the ticket', () => {
    /** HELLO asks for ticket auth; CHALLENGE ticket is answered with AUTHENTICATE [5, token, {}]. */
    const { client, FakeWS } = setup({ token: 'jwt-connect', authid: 'alice' });
    client.connect();
    const ws = FakeWS.last;
    ws.open();
    const details = ws.messages[0][2];
    assert.deepEqual(details.authmethods, ['ticket']);
    assert.equal(details.authid, 'alice');
    ws.receive([4, 'ticket', {}]);
    assert.deepEqual(ws.messages[1], [5, 'jwt-connect', {}]);
    ws.receive([2, 3, { authmethod: 'ticket', authrole: 'user' }]);
    assert.equal(client.state, 'connected');
  });

  test('authid defaults to the empty string with a token', () => {
    /** The gateway reads the user from the token; authid is "". */
    const { client, FakeWS } = setup({ token: 't' });
    client.connect();
    FakeWS.last.open();
    assert.equal(FakeWS.last.messages[0][2].authid, '');
  });

  test('refused authentication without a tokenProvider stops reconnecting', async () => {
    /** ABORT authentication_failed: 'error' with WampError, no reconnect. */
    const { client, FakeWS, timers, log } = setup({ token: 'expired' });
    client.connect();
    const ws = FakeWS.last;
    ws.open();
    ws.receive([4, 'ticket', {}]);
    ws.receive([3, { message: 'token expired' }, 'wamp.error.authentication_failed']);
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.ok(log.errors[0] instanceof WampError);
    assert.equal(log.errors[0].uri, 'wamp.error.authentication_failed');
    assert.match(log.errors[0].message, /token expired/);
    assert.deepEqual(log.disconnects, [{ code: 1000, reason: 'wamp.error.authentication_failed', willReconnect: false, delay: null }]);
    assert.equal(timers.size, 0);
    assert.equal(FakeWS.instances.length, 1);
  });

  test('not_authorized without a tokenProvider stops reconnecting too', async () => {
    /** ABORT not_authorized is an auth failure as well. */
    const { client, FakeWS, timers, log } = setup({ token: 't' });
    client.connect();
    FakeWS.last.open();
    FakeWS.last.receive([3, {}, 'wamp.error.not_authorized']);
    await until(() => log.disconnects.length === 1, 'disconnect');
    assert.equal(log.disconnects[0].willReconnect, false);
    assert.equal(timers.size, 0);
  });

  test('a tokenProvider is asked before every connect and keeps retrying after refusals', async () => {
    /** Each (re)connect uses a fresh token; auth failures are retried with backoff. */
    let issued = 0;
    const { client, FakeWS, timers, log } = setup({ tokenProvider: async () => 'token-' + (++issued) });
    client.connect();
    await until(() => FakeWS.instances.length === 1, 'first socket');
    let ws = FakeWS.last;
    ws.open();
    ws.receive([4, 'ticket', {}]);
    assert.deepEqual(ws.messages[1], [5, 'token-1', {}]);
    ws.receive([3, {}, 'wamp.error.authentication_failed']);
    await until(() => log.disconnects.length === 1, 'disconnect');
    assert.equal(log.disconnects[0].willReconnect, true);
    assert.equal(log.errors[0].uri, 'wamp.error.authentication_failed');
    timers.runNext();
    await until(() => FakeWS.instances.length === 2, 'second socket');
    ws = FakeWS.last;
    ws.open();
    ws.receive([4, 'ticket', {}]);
    assert.deepEqual(ws.messages[1], [5, 'token-2', {}]);
    ws.receive([2, 11, {}]);
    assert.equal(client.state, 'connected');
  });

  test('a failing tokenProvider is reported and retried', async () => {
    /** A provider that throws leads to 'error' and a reconnect attempt later. */
    const { client, FakeWS, timers, log } = setup({ tokenProvider: () => { throw new Error('offline'); } });
    client.connect();
    await until(() => log.disconnects.length === 1, 'disconnect');
    assert.match(log.errors[0].message, /tokenProvider threw: offline/);
    assert.equal(FakeWS.instances.length, 0);
    assert.equal(log.disconnects[0].willReconnect, true);
    assert.equal(timers.size, 1);
    client.disconnect();
    assert.equal(timers.size, 0);
  });
});

describe('client: reconnect', () => {
  test('a dropped connection reconnects with growing jittered delays and resubscribes', async () => {
    /** Backoff grows per failed attempt, resets after WELCOME, and every topic is subscribed again. */
    const { client, FakeWS, timers, log } = setup({
      reconnect: { minDelay: 100, maxDelay: 1000 }, random: () => 0.999999,
    });
    client.register('app.Model', () => {});
    client.subscribe('shop.Order').filter({ status: 'open' }).onAny(() => {});
    await flush();
    client.connect();
    let ws = welcome(FakeWS.last, 1);
    assert.deepEqual(ws.messagesOfType(32), [
      [32, 1, {}, 'app.Model'], [32, 2, { filter: { status: 'open' } }, 'shop.Order'],
    ]);
    ws.receive([33, 1, 100]);
    ws.receive([33, 2, 200]);

    ws.drop(1006);
    assert.equal(client.state, 'disconnected');
    assert.deepEqual(log.disconnects[0], { code: 1006, reason: '', willReconnect: true, delay: 200 });
    // Attempts that fail before WELCOME keep growing the delay, up to maxDelay.
    const delays = [];
    for (let i = 0; i < 4; i += 1) {
      delays.push(timers.runNext());
      assert.equal(client.state, 'connecting');
      FakeWS.last.drop(1006);
    }
    assert.deepEqual(delays, [200, 400, 800, 1000]);
    assert.deepEqual(timers.delays, [1000]);
    timers.runNext();
    ws = welcome(FakeWS.last, 2);
    assert.equal(client.sessionId, 2);
    assert.deepEqual(ws.messagesOfType(32), [
      [32, 1, {}, 'app.Model'], [32, 2, { filter: { status: 'open' } }, 'shop.Order'],
    ]);
    // After a successful session the backoff starts over.
    ws.drop(1001);
    assert.deepEqual(timers.delays, [200]);
    assert.equal(log.connects.length, 2);
  });

  test('state events follow the connection', () => {
    /** statechange, connect and disconnect fire in order with their payloads. */
    const { client, FakeWS, timers, log } = setup();
    client.connect();
    welcome(FakeWS.last, 9);
    FakeWS.last.drop(1006, 'gone');
    timers.runNext();
    assert.deepEqual(log.states, ['connecting', 'connected', 'disconnected', 'connecting']);
    assert.deepEqual(log.disconnects, [{ code: 1006, reason: 'gone', willReconnect: true, delay: 500 }]);
    assert.equal(log.connects[0].sessionId, 9);
  });

  test('reconnect: false gives up after a drop', () => {
    /** Without reconnect the client stays disconnected. */
    const { client, FakeWS, timers, log } = setup({ reconnect: false });
    client.connect();
    welcome(FakeWS.last);
    FakeWS.last.drop();
    assert.equal(log.disconnects[0].willReconnect, false);
    assert.equal(timers.size, 0);
  });

  test('connect() skips a pending reconnect delay', () => {
    /** Calling connect() while waiting reconnects at once. */
    const { client, FakeWS, timers } = setup();
    client.connect();
    FakeWS.last.drop();
    assert.equal(timers.size, 1);
    client.connect();
    assert.equal(timers.size, 0);
    assert.equal(FakeWS.instances.length, 2);
  });

  test('router GOODBYE is answered and the client reconnects', async () => {
    /** A router shutting down says GOODBYE; the client replies and comes back later. */
    const { client, ws, timers, log } = connected();
    ws.receive([6, {}, 'wamp.close.system_shutdown']);
    assert.deepEqual(ws.messages.at(-1), [6, {}, 'wamp.close.goodbye_and_out']);
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.deepEqual(log.disconnects, [{ code: 1000, reason: 'wamp.close.system_shutdown', willReconnect: true, delay: 500 }]);
    assert.equal(timers.size, 1);
    assert.deepEqual(log.errors, []);
  });

  test('pending calls reject when the connection drops', async () => {
    /** A CALL without reply rejects with ConnectionError on disconnect. */
    const { client, ws } = connected();
    const result = client.call('com.example.slow');
    ws.drop(1006);
    await assert.rejects(result, ConnectionError);
  });
});

describe('client: disconnect', () => {
  test('disconnect sends GOODBYE, closes on the reply and stops reconnecting', async () => {
    /** disconnect() ends the session politely and no reconnect follows. */
    const { client, ws, timers, log } = connected();
    client.disconnect();
    assert.deepEqual(ws.messages.at(-1), [6, {}, 'wamp.close.normal']);
    assert.equal(timers.size, 1, 'goodbye timeout');
    ws.receive([6, {}, 'wamp.close.goodbye_and_out']);
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.deepEqual(ws.closeCalls[0], [1000, 'wamp.close.goodbye_and_out']);
    assert.deepEqual(log.disconnects, [{ code: 1000, reason: 'wamp.close.goodbye_and_out', willReconnect: false, delay: null }]);
    assert.equal(timers.size, 0);
  });

  test('disconnect closes the socket when the router never answers GOODBYE', async () => {
    /** After closeTimeout the transport is closed anyway. */
    const { client, ws, timers } = connected({ closeTimeout: 50 });
    client.disconnect();
    assert.deepEqual(timers.delays, [50]);
    timers.runNext();
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.deepEqual(ws.closeCalls, [[1000, 'goodbye timed out']]);
  });

  test('disconnect while connecting closes the socket without GOODBYE', async () => {
    /** No session yet: just close the transport. */
    const { client, FakeWS, timers } = setup();
    client.connect();
    client.disconnect();
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.equal(FakeWS.last.sent.length, 0);
    assert.equal(timers.size, 0);
  });

  test('disconnect while waiting to reconnect cancels the timer', () => {
    /** No reconnect after disconnect(). */
    const { client, FakeWS, timers } = setup();
    client.connect();
    FakeWS.last.drop();
    client.disconnect();
    assert.equal(timers.size, 0);
    assert.equal(client.state, 'disconnected');
  });
});

describe('client: publish and call', () => {
  test('publish sends args [payload] and resolves on acknowledge', async () => {
    /** PUBLISH [16, id, {acknowledge: true}, topic, [payload]] resolves with the publication id. */
    const { client, ws } = connected();
    const promise = client.publish('chat.lobby', { text: 'hi' }, { acknowledge: true });
    assert.deepEqual(ws.messages.at(-1), [16, 1, { acknowledge: true }, 'chat.lobby', [{ text: 'hi' }]]);
    ws.receive([17, 1, 31337]);
    assert.deepEqual(await promise, { publicationId: 31337 });
    assert.equal(await client.publish('chat.lobby', { text: 'fire and forget' }), null);
  });

  test('publish refused by the router rejects with WampError', async () => {
    /** ERROR for PUBLISH rejects the acknowledged publish. */
    const { client, ws } = connected();
    const promise = client.publish('chat.lobby', {}, { acknowledge: true });
    ws.receive([8, 16, 1, {}, 'wamp.error.not_authorized']);
    await assert.rejects(promise, (err) => err instanceof WampError && err.uri === 'wamp.error.not_authorized');
  });

  test('publish and call reject when not connected', async () => {
    /** Without a session, requests reject with ConnectionError. */
    const client = new TelegraphyClient();
    await assert.rejects(client.publish('a.b', {}), ConnectionError);
    await assert.rejects(client.call('a.b'), ConnectionError);
    await assert.rejects(client.publish('a.b', {}, 'ack'), UsageError);
  });

  test('call sends args and kwargs and resolves with the RESULT', async () => {
    /** CALL [48, id, {}, procedure, args, kwargs] → {args, kwargs, details}. */
    const { client, ws } = connected();
    const promise = client.call('math.add', [1, 2], { round: true });
    assert.deepEqual(ws.messages.at(-1), [48, 1, {}, 'math.add', [1, 2], { round: true }]);
    ws.receive([50, 1, {}, [3]]);
    assert.deepEqual(await promise, { args: [3], kwargs: {}, details: {} });
  });
});

describe('TELEGRAPHY_CONFIG', () => {
  test('autoConfigure reads the global config and connects', async () => {
    /** window.TELEGRAPHY_CONFIG configures the client and, with autoConnect, connects it. */
    const FakeWS = makeFakeWebSocket();
    const client = new TelegraphyClient();
    const warnings = [];
    const scope = {
      [GLOBAL_CONFIG_NAME]: {
        url: 'ws://gw.example/ws', realm: 'telegraphy', token: 'page-token', authid: null,
        reconnect: { minDelay: 500, maxDelay: 15000 }, autoConnect: true, WebSocket: FakeWS, futureField: 1,
      },
      console: { warn: (message) => warnings.push(message) },
    };
    assert.equal(autoConfigure(client, scope), true);
    await flush();
    assert.equal(FakeWS.instances.length, 1);
    assert.equal(FakeWS.last.url, 'ws://gw.example/ws');
    assert.match(warnings[0], /ignoring unknown TELEGRAPHY_CONFIG field "futureField"/);
    FakeWS.last.open();
    assert.deepEqual(FakeWS.last.messages[0][2].authmethods, ['ticket']);
    client.disconnect();
  });

  test('only the first copy of the client takes the global config', () => {
    /** With two copies on a page (script and module), one connection is opened. */
    const scope = { TELEGRAPHY_CONFIG: { autoConnect: false }, console: { warn: () => {} } };
    const first = new TelegraphyClient();
    const second = new TelegraphyClient();
    assert.equal(autoConfigure(first, scope), true);
    assert.equal(autoConfigure(second, scope), false);
    assert.equal(autoConfigure(first, scope), true);
  });

  test('autoConfigure does nothing without the global and never throws', () => {
    /** No config: false; a bad config is logged, not thrown. */
    const client = new TelegraphyClient();
    assert.equal(autoConfigure(client, {}), false);
    const originalError = console.error;
    console.error = () => {};
    try {
      assert.equal(autoConfigure(client, { TELEGRAPHY_CONFIG: { realm: 5 } }), false);
    } finally {
      console.error = originalError;
    }
    assert.equal(client.state, 'disconnected');
  });

  test('the default export is the shared client with the library attached', () => {
    /** Telegraphy is a TelegraphyClient exposing the classes for script-tag users. */
    assert.ok(Telegraphy instanceof TelegraphyClient);
    assert.equal(Telegraphy.state, 'disconnected');
    assert.equal(Telegraphy.TelegraphyClient, TelegraphyClient);
    assert.equal(Telegraphy.errors.WampError, WampError);
    assert.equal(GLOBAL_CONFIG_NAME, 'TELEGRAPHY_CONFIG');
  });
});

describe('client: resume', () => {
  /** An EVENT as the gateway sends it: position in details and in meta. */
  const positioned = (subscriptionId, epoch, offset, type = 'update') => {
    const body = event(type, { n: offset });
    body.meta = { ...body.meta, epoch, offset };
    return [36, subscriptionId, 1000 + offset, { epoch, offset }, [body]];
  };

  /** A client that saw app.Model up to e1/2 on subscription 7001, then lost its connection. */
  function dropped(options = {}) {
    const env = setup(options);
    env.seen = [];
    env.recovery = [];
    env.client.on('recovery', (notice) => env.recovery.push(notice));
    env.client.register('app.Model', (ev, info) => env.seen.push([ev.meta.offset, info.subscriptionId]));
    env.client.connect();
    const ws = welcome(env.FakeWS.last, 1, { roles: { broker: {} }, resume_token: 'rt-1' });
    ws.receive([33, 1, 7001]);
    ws.receive(positioned(7001, 'e1', 1));
    ws.receive(positioned(7001, 'e1', 2));
    ws.drop(1006);
    env.timers.runNext();
    env.ws = env.FakeWS.last;
    env.ws.open();
    return env;
  }

  test('resume is on by default', () => {
    /** DEFAULT_CONFIG.resume is true; configure({resume: false}) turns it off. */
    assert.equal(DEFAULT_CONFIG.resume, true);
    assert.equal(new TelegraphyClient().config.resume, true);
  });

  test('a resumed session keeps its subscriptions: no SUBSCRIBE, missed events first, duplicates dropped', () => {
    /** HELLO presents token and [epoch, offset]; restored handlers get the new id; recovery says recovered. */
    const { ws, seen, recovery, log, client } = dropped();
    const [, , hello] = ws.messages[0];
    assert.equal(hello.resume_token, 'rt-1');
    assert.deepEqual(hello.resume_offsets, { 'app.Model': ['e1', 2] });
    client.register('app.Other', () => {}); // made while offline: subscribed normally
    ws.receive([2, 2, {
      resume_token: 'rt-1', resumed: true,
      subscriptions: [{ topic: 'app.Model', match: 'exact', subscription: 9001 }],
      recovered: { 'app.Model': true }, recovery_errors: {},
    }]);
    assert.deepEqual(ws.messagesOfType(32), [[32, 1, {}, 'app.Other']]);
    assert.equal(log.connects[1].resumed, true);
    assert.deepEqual(log.connects[1].recovered, { 'app.Model': true });
    assert.deepEqual(recovery, [{ topic: 'app.Model', recovered: true, missed: null }]);
    ws.receive(positioned(9001, 'e1', 2)); // already seen before the drop
    ws.receive(positioned(9001, 'e1', 3)); // missed
    ws.receive(positioned(9001, 'e1', 4)); // missed
    ws.receive(positioned(9001, 'e1', 4)); // a repeat
    ws.receive(positioned(9001, 'e1', 5)); // live
    assert.deepEqual(seen, [[1, 7001], [2, 7001], [3, 9001], [4, 9001], [5, 9001]]);
    assert.deepEqual(log.errors, []);
  });

  test('resumed: false subscribes again and emits recovery for every topic with a position', () => {
    /** A fresh session: every topic is subscribed again and the page is told to reload. */
    const { ws, recovery, log } = dropped();
    ws.receive([2, 2, { resume_token: 'rt-2', resumed: false, resume_error: 'unknown or expired resume token' }]);
    assert.deepEqual(ws.messagesOfType(32), [[32, 1, {}, 'app.Model']]);
    assert.equal(log.connects[1].resumed, false);
    assert.deepEqual(log.connects[1].recovered, {});
    assert.deepEqual(recovery, [{ topic: 'app.Model', recovered: false, reason: 'unknown or expired resume token' }]);
  });

  test('recovered: false emits recovery with the reason, after connect', () => {
    /** A trimmed history: the subscription is restored, but the page must reload the topic. */
    const { ws, recovery, client } = dropped();
    const order = [];
    client.on('connect', () => order.push('connect')).on('recovery', () => order.push('recovery'));
    ws.receive([2, 2, {
      resume_token: 'rt-1', resumed: true,
      subscriptions: [{ topic: 'app.Model', match: 'exact', subscription: 9001 }],
      recovered: { 'app.Model': false }, recovery_errors: { 'app.Model': 'history trimmed' },
    }]);
    assert.deepEqual(ws.messagesOfType(32), []);
    assert.deepEqual(recovery, [{ topic: 'app.Model', recovered: false, reason: 'history trimmed' }]);
    assert.deepEqual(order, ['connect', 'recovery']);
  });

  test('resume: false sends a plain HELLO and subscribes again', () => {
    /** With resume off the token is never presented and no recovery event fires. */
    const { ws, recovery, log } = dropped({ resume: false });
    const [, , hello] = ws.messages[0];
    assert.equal('resume_token' in hello, false);
    assert.equal('resume_offsets' in hello, false);
    ws.receive([2, 2, { resume_token: 'rt-2' }]);
    assert.deepEqual(ws.messagesOfType(32), [[32, 1, {}, 'app.Model']]);
    assert.deepEqual(recovery, []);
    assert.equal(log.connects[1].resumed, false);
  });

  test('a chain with a filter is bound to the restored subscription of its topic', async () => {
    /** Restored subscriptions are matched by topic and match policy; chains dispatch as before. */
    const env = setup();
    const got = [];
    env.client.subscribe('shop.Order').filter({ status: 'open' }).onUpdate((ev) => got.push(ev.meta.offset));
    await flush();
    env.client.connect();
    let ws = welcome(env.FakeWS.last, 1, { resume_token: 'rt' });
    ws.receive([33, 1, 11]);
    ws.receive(positioned(11, 'e', 1));
    ws.drop();
    env.timers.runNext();
    ws = env.FakeWS.last;
    ws.open();
    assert.deepEqual(ws.messages[0][2].resume_offsets, { 'shop.Order': ['e', 1] });
    ws.receive([2, 2, {
      resume_token: 'rt', resumed: true,
      subscriptions: [{ topic: 'shop.Order', match: 'exact', subscription: 12 }],
      recovered: { 'shop.Order': true }, recovery_errors: {},
    }]);
    assert.deepEqual(ws.messagesOfType(32), []);
    ws.receive(positioned(12, 'e', 1));
    ws.receive(positioned(12, 'e', 2));
    assert.deepEqual(got, [1, 2]);
  });
});
