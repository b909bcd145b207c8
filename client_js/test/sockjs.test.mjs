import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

import { ConnectionError, ProtocolError, UsageError } from '../src/errors.js';
import {
  randomSessionId, resolveSockJSUrl, SESSION_ID_LENGTH, sockjsUrlFromWebSocketUrl, SockJSTransport,
} from '../src/sockjs.js';
import { DEFAULT_CONFIG, TelegraphyClient } from '../src/telegraphy.js';
import {
  flush, makeFakeDocument, makeFakeSockJS, makeFakeTimers, makeFakeWebSocket, until,
} from '../testing/fakes.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

// Node 22+ has a global WebSocket; these tests decide what the page has.
let savedWebSocket;
beforeEach(() => {
  savedWebSocket = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
  delete globalThis.WebSocket;
});
afterEach(() => {
  if (savedWebSocket) Object.defineProperty(globalThis, 'WebSocket', savedWebSocket);
});

/** A client with fake WebSocket and SockJS classes and manual timers, every event recorded. */
function setup(options = {}) {
  const FakeWS = makeFakeWebSocket();
  const FakeSockJS = makeFakeSockJS();
  const timers = makeFakeTimers();
  const client = new TelegraphyClient({
    url: 'ws://gateway.test:9000/ws', WebSocket: FakeWS, SockJS: FakeSockJS, timers, random: () => 0, autoConnect: false, ...options,
  });
  const log = { errors: [], connects: [], disconnects: [], states: [] };
  client
    .on('error', (err) => log.errors.push(err))
    .on('connect', (info) => log.connects.push(info))
    .on('disconnect', (info) => log.disconnects.push(info))
    .on('statechange', (change) => log.states.push(change.state));
  return { client, FakeWS, FakeSockJS, timers, log };
}

/** Play the router on a fake socket or SockJS: open, check HELLO, send WELCOME. */
function welcome(conn, sessionId = 1, openWith = undefined) {
  conn.open(openWith);
  assert.equal(conn.messages[0][0], 1, 'first message is HELLO');
  conn.receive([2, sessionId, { roles: { broker: {}, dealer: {} } }]);
  return conn;
}

describe('sockjs: URLs', () => {
  test('the SockJS URL is derived from the WebSocket URL', () => {
    /** Same host and port, http(s) for ws(s), the last path segment replaced by "sockjs". */
    assert.equal(sockjsUrlFromWebSocketUrl('ws://127.0.0.1:9000/ws'), 'http://127.0.0.1:9000/sockjs');
    assert.equal(sockjsUrlFromWebSocketUrl('wss://rt.example.com/ws'), 'https://rt.example.com/sockjs');
    assert.equal(sockjsUrlFromWebSocketUrl('wss://example.com/realtime/ws/'), 'https://example.com/realtime/sockjs');
    assert.equal(sockjsUrlFromWebSocketUrl('ws://example.com'), 'http://example.com/sockjs');
    assert.equal(sockjsUrlFromWebSocketUrl('ws://[::1]:9000/ws?x=1'), 'http://[::1]:9000/sockjs');
  });

  test('a configured SockJS URL is made absolute', () => {
    /** "/sockjs" is taken relative to the page; ws(s) becomes http(s); http(s) stays. */
    assert.equal(resolveSockJSUrl('/sockjs', { protocol: 'https:', host: 'shop.example' }), 'https://shop.example/sockjs');
    assert.equal(resolveSockJSUrl('wss://rt.example/sj', null), 'https://rt.example/sj');
    assert.equal(resolveSockJSUrl('http://rt.example/sj', null), 'http://rt.example/sj');
    assert.throws(() => resolveSockJSUrl('sockjs', null), UsageError);
  });

  test('transport options are checked', () => {
    /** Unknown transport names, empty SockJS transport lists and negative timeouts are usage errors. */
    const client = new TelegraphyClient();
    assert.deepEqual(DEFAULT_CONFIG.transports, ['websocket', 'sockjs']);
    assert.equal(DEFAULT_CONFIG.connectTimeout, 5000);
    assert.throws(() => client.configure({ transports: ['carrier-pigeon'] }), /option transports must be/);
    assert.throws(() => client.configure({ transports: [] }), UsageError);
    assert.throws(() => client.configure({ sockjsTransports: [] }), /option sockjsTransports must be/);
    assert.throws(() => client.configure({ sockjsTransports: [3] }), UsageError);
    assert.throws(() => client.configure({ connectTimeout: -1 }), /option connectTimeout must be/);
    assert.throws(() => client.configure({ sockjsUrl: '' }), UsageError);
    client.configure({ transports: ['sockjs'], sockjsTransports: ['xhr-polling'], connectTimeout: 0, autoConnect: false });
  });
});

describe('sockjs: fallback', () => {
  test('without WebSocket the client goes straight to SockJS', () => {
    /** No WebSocket class: SockJS at the derived URL, no timer, connect reports transport sockjs. */
    const { client, FakeWS, FakeSockJS, timers, log } = setup({ WebSocket: null });
    client.connect();
    assert.equal(FakeWS.instances.length, 0);
    assert.equal(FakeSockJS.instances.length, 1);
    const sock = FakeSockJS.last;
    assert.equal(sock.url, 'http://gateway.test:9000/sockjs');
    assert.equal(sock.reserved, null);
    assert.deepEqual(Object.keys(sock.options), ['sessionId']);
    assert.equal(timers.size, 0, 'the only transport gets no connect timeout');
    welcome(sock, 77, 'xhr-streaming');
    assert.equal(client.state, 'connected');
    assert.deepEqual(log.connects.map(({ sessionId, transport, sockjsTransport }) => ({ sessionId, transport, sockjsTransport })),
      [{ sessionId: 77, transport: 'sockjs', sockjsTransport: 'xhr-streaming' }]);
    assert.deepEqual(log.states, ['connecting', 'connected']);
    assert.deepEqual(log.errors, []);
  });

  test('sockjsTransports and sockjsUrl are given to SockJS', () => {
    /** sockjsTransports becomes SockJS's transports option; a ws(s) sockjsUrl is used as http(s). */
    const { client, FakeSockJS } = setup({
      WebSocket: null, sockjsTransports: ['xhr-polling'], sockjsUrl: 'wss://rt.example/push/sockjs',
    });
    client.connect();
    assert.equal(FakeSockJS.last.url, 'https://rt.example/push/sockjs');
    const { sessionId, ...options } = FakeSockJS.last.options;
    assert.deepEqual(options, { transports: ['xhr-polling'] });
  });

  test('SockJS session ids are 32 random characters', () => {
    /** The id in every SockJS URL comes from crypto.getRandomValues, 32 characters (160 bits), never twice the same. */
    const { client, FakeSockJS } = setup({ WebSocket: null });
    client.connect();
    const generate = FakeSockJS.last.options.sessionId;
    assert.equal(typeof generate, 'function');
    const ids = new Set(Array.from({ length: 100 }, () => generate()));
    assert.equal(ids.size, 100);
    for (const id of ids) {
      assert.match(id, /^[a-z0-5]{32}$/);
    }
    assert.equal(SESSION_ID_LENGTH, 32);
    assert.equal(randomSessionId({}), null, 'no crypto: the library generates it, at the same length');
  });

  test('a last transport that opens but never carries WELCOME is reported and retried', () => {
    /** Open, HELLO sent, no answer within connectTimeout: an error naming the transports, a disconnect, a reconnect later. */
    const { client, FakeWS, FakeSockJS, timers, log } = setup({ connectTimeout: 3000 });
    client.connect();
    FakeWS.last.drop(1006);
    FakeSockJS.last.open('jsonp-polling');
    assert.equal(FakeSockJS.last.sent.length, 1, 'HELLO sent');
    assert.equal(client.state, 'connecting');
    timers.runNext(); // the wait for WELCOME
    assert.equal(client.state, 'disconnected');
    assert.equal(log.errors.length, 1);
    assert.ok(log.errors[0] instanceof ConnectionError);
    assert.match(log.errors[0].message, /could not connect with any transport \(tried websocket, sockjs\): sockjs opened but the router did not answer within 3000 ms/);
    assert.equal(log.disconnects[0].willReconnect, true);
    assert.deepEqual(FakeSockJS.last.closeCalls, [[1000, 'no answer']]);
  });

  test('a transport that opens and is answered is not timed out', () => {
    /** WELCOME ends the wait: no timer is left behind. */
    const { client, FakeSockJS, timers } = setup({ WebSocket: null, connectTimeout: 3000 });
    client.connect();
    welcome(FakeSockJS.last, 5, 'xhr-polling');
    assert.equal(client.state, 'connected');
    assert.equal(timers.size, 0);
  });

  test('a WebSocket that does not open within connectTimeout is abandoned for SockJS', () => {
    /** The connect timer closes the pending WebSocket and SockJS starts; no disconnect in between. */
    const { client, FakeWS, FakeSockJS, timers, log } = setup({ connectTimeout: 3000 });
    client.connect();
    assert.equal(FakeWS.instances.length, 1);
    assert.equal(FakeSockJS.instances.length, 0);
    assert.deepEqual(timers.delays, [3000]);
    timers.runNext();
    assert.deepEqual(FakeWS.last.closeCalls, [[1000, 'connect timeout']]);
    assert.equal(FakeSockJS.instances.length, 1);
    assert.equal(timers.size, 0);
    FakeWS.last.open(); // too late: ignored
    assert.equal(FakeWS.last.sent.length, 0);
    welcome(FakeSockJS.last, 5, 'websocket');
    assert.equal(client.state, 'connected');
    assert.equal(log.connects[0].transport, 'sockjs');
    assert.equal(log.connects[0].sockjsTransport, 'websocket');
    assert.deepEqual(log.disconnects, []);
    assert.deepEqual(log.states, ['connecting', 'connected']);
  });

  test('a WebSocket that fails before opening hands over to SockJS at once', () => {
    /** A refused WebSocket (close before open) does not wait for the timeout or a backoff delay. */
    const { client, FakeWS, FakeSockJS, timers, log } = setup();
    client.connect();
    FakeWS.last.drop(1006);
    assert.equal(FakeSockJS.instances.length, 1);
    assert.equal(timers.size, 0);
    welcome(FakeSockJS.last);
    assert.equal(log.connects[0].transport, 'sockjs');
    assert.deepEqual(log.disconnects, []);
  });

  test('a WebSocket that opens and closes before WELCOME also hands over', () => {
    /** A proxy that accepts the upgrade but kills the connection counts as a failed transport. */
    const { client, FakeWS, FakeSockJS } = setup();
    client.connect();
    FakeWS.last.open();
    FakeWS.last.drop(1006);
    assert.equal(FakeSockJS.instances.length, 1);
    welcome(FakeSockJS.last);
    assert.equal(client.state, 'connected');
  });

  test('an ABORT is not a transport failure: no fallback', () => {
    /** The router refused the session over WebSocket; SockJS would be refused too. */
    const { client, FakeWS, FakeSockJS, log } = setup({ token: 'bad' });
    client.connect();
    FakeWS.last.open();
    FakeWS.last.receive([3, {}, 'wamp.error.authentication_failed']);
    return until(() => client.state === 'disconnected', 'disconnect').then(() => {
      assert.equal(FakeSockJS.instances.length, 0);
      assert.equal(log.disconnects[0].willReconnect, false);
      assert.equal(log.errors[0].uri, 'wamp.error.authentication_failed');
    });
  });

  test('when every transport fails, the client backs off and starts over', () => {
    /** Both fail: one disconnect with the last failure, a reconnect delay, then WebSocket first again. */
    const { client, FakeWS, FakeSockJS, timers, log } = setup();
    client.connect();
    FakeWS.last.drop(1006);
    FakeSockJS.last.drop(2000, 'All transports failed');
    assert.equal(client.state, 'disconnected');
    assert.deepEqual(log.disconnects, [{ code: 2000, reason: 'All transports failed', willReconnect: true, delay: 500 }]);
    assert.equal(log.errors.length, 1, 'the client says no transport worked');
    assert.match(log.errors[0].message, /could not connect with any transport \(tried websocket, sockjs\): All transports failed/);
    assert.equal(log.errors[0].code, 2000);
    assert.deepEqual(timers.delays, [500]);
    timers.runNext();
    assert.equal(FakeWS.instances.length, 2);
    assert.equal(FakeSockJS.instances.length, 1);
  });

  test('the transport that worked last is tried first on reconnect, and falls back again', async () => {
    /** After a SockJS session, reconnects start with SockJS; if it fails, WebSocket is tried, then preferred. */
    const { client, FakeWS, FakeSockJS, timers, log } = setup();
    client.connect();
    FakeWS.last.drop(1006);
    welcome(FakeSockJS.last, 1, 'xhr-streaming');
    FakeSockJS.last.drop(1006, 'server went away');
    assert.equal(log.disconnects[0].willReconnect, true);
    timers.runNext(); // reconnect delay
    assert.equal(FakeSockJS.instances.length, 2, 'SockJS first');
    assert.equal(FakeWS.instances.length, 1);
    assert.deepEqual(timers.delays, [5000], 'a connect timeout, as WebSocket comes after it');
    FakeSockJS.last.drop(2000, 'All transports failed');
    assert.equal(FakeWS.instances.length, 2, 'then WebSocket');
    welcome(FakeWS.last, 2);
    assert.equal(log.connects[1].transport, 'websocket');
    assert.equal(log.connects[1].sockjsTransport, null);
    FakeWS.last.drop(1006);
    timers.runNext();
    assert.equal(FakeWS.instances.length, 3, 'WebSocket first again');
    assert.equal(FakeSockJS.instances.length, 2);
    await flush();
  });

  test('transports can be limited to SockJS, and classes are accepted', () => {
    /** transports: ['sockjs'] never opens a WebSocket; a transport class works as an entry. */
    const { client, FakeWS, FakeSockJS } = setup({ transports: ['sockjs'] });
    client.connect();
    assert.equal(FakeWS.instances.length, 0);
    welcome(FakeSockJS.last);
    const other = setup({ transports: [SockJSTransport] });
    other.client.connect();
    assert.equal(other.FakeSockJS.instances.length, 1);
  });

  test('nothing available is fatal and names what was tried', () => {
    /** No WebSocket, no SockJS class and no script URL: an error, no retry. */
    const { client, timers, log } = setup({ WebSocket: null, SockJS: null });
    client.connect();
    assert.match(log.errors[0].message, /no transport available \(tried websocket, sockjs\)/);
    assert.equal(log.disconnects[0].willReconnect, false);
    assert.equal(timers.size, 0);
  });

  test('disconnect while falling back closes the pending SockJS and stops', async () => {
    /** disconnect() during the fallback's connecting phase ends it: no further transport, no reconnect. */
    const { client, FakeWS, FakeSockJS, timers, log } = setup();
    client.connect();
    FakeWS.last.drop(1006);
    client.disconnect();
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.deepEqual(FakeSockJS.last.closeCalls, [[1000, 'client disconnected']]);
    assert.equal(log.disconnects[0].willReconnect, false);
    assert.equal(timers.size, 0);
    assert.equal(FakeWS.instances.length, 1);
  });
});

describe('sockjs: WAMP messages', () => {
  test('each WAMP message is one SockJS text message, both ways', () => {
    /** HELLO, SUBSCRIBE, PUBLISH and CALL go out as JSON strings; EVENT and RESULT come in as JSON strings. */
    const { client, FakeSockJS } = setup({ WebSocket: null, token: 'jwt' });
    const seen = [];
    client.register('shop.Order', (event) => seen.push(event.data.pk));
    client.connect();
    const sock = FakeSockJS.last;
    sock.open('xhr-polling');
    assert.deepEqual(sock.messages[0][2].authmethods, ['ticket']);
    sock.receive([4, 'ticket', {}]);
    assert.deepEqual(sock.messages[1], [5, 'jwt', {}]);
    sock.receive([2, 9, { roles: { broker: {}, dealer: {} } }]);
    assert.deepEqual(sock.messages[2], [32, 1, {}, 'shop.Order']);
    sock.receive([33, 1, 44]);
    sock.receive([36, 44, 1, {}, [{ name: 'shop.Order', meta: { event_type: 'create' }, data: { pk: 3 } }]]);
    assert.deepEqual(seen, [3]);
    const published = client.publish('shop.Chat', { text: 'hi' }, { acknowledge: true });
    const called = client.call('shop.add', [1, 2]);
    assert.ok(sock.sent.every((data) => typeof data === 'string'), 'text only');
    const publish = sock.messagesOfType(16)[0];
    const call = sock.messagesOfType(48)[0];
    assert.deepEqual(publish.slice(2), [{ acknowledge: true }, 'shop.Chat', [{ text: 'hi' }]]);
    assert.deepEqual(call.slice(2), [{}, 'shop.add', [1, 2]]);
    sock.receive([17, publish[1], 555]);
    sock.receive([50, call[1], {}, [3]]);
    return Promise.all([published, called]).then(([ack, result]) => {
      assert.deepEqual(ack, { publicationId: 555 });
      assert.deepEqual(result.args, [3]);
    });
  });

  test('a SockJS message that is not text is a protocol error, and nothing is dispatched', () => {
    /** A server sending a JSON array instead of a WAMP text message is reported; the session continues. */
    const { client, FakeSockJS, log } = setup({ WebSocket: null });
    const seen = [];
    client.register('shop.Order', (event) => seen.push(event));
    client.connect();
    const sock = welcome(FakeSockJS.last);
    sock.receive([33, 1, 44]);
    sock.receiveRaw([36, 44, 1, {}, [{ name: 'shop.Order' }]]);
    assert.equal(seen.length, 0);
    assert.ok(log.errors[0] instanceof ProtocolError, String(log.errors[0]));
    assert.match(log.errors[0].message, /expected JSON text/);
    assert.equal(client.state, 'connected');
  });

  test('GOODBYE over SockJS, then the SockJS connection is closed', async () => {
    /** disconnect() sends GOODBYE as a SockJS message and closes SockJS with 1000 on the reply. */
    const { client, FakeSockJS } = setup({ WebSocket: null });
    client.connect();
    const sock = welcome(FakeSockJS.last);
    client.disconnect();
    assert.deepEqual(sock.messagesOfType(6)[0], [6, {}, 'wamp.close.normal']);
    sock.receive([6, {}, 'wamp.close.goodbye_and_out']);
    await until(() => client.state === 'disconnected', 'disconnect');
    assert.deepEqual(sock.closeCalls, [[1000, 'wamp.close.goodbye_and_out']]);
  });

  test('sending while SockJS is not open is a ConnectionError', () => {
    /** The transport refuses to send before open, like WebSocketTransport. */
    const FakeSockJS = makeFakeSockJS();
    const closes = [];
    const transport = new SockJSTransport({ url: 'ws://h/ws', SockJS: FakeSockJS }, {
      onOpen() {}, onMessage() {}, onClose: (info) => closes.push(info),
    });
    assert.equal(transport.name, 'sockjs');
    assert.equal(transport.url, 'http://h/sockjs');
    assert.equal(transport.subTransport, null);
    assert.throws(() => transport.send('[1]'), /sockjs is not open/);
    FakeSockJS.last.open('jsonp-polling');
    assert.equal(transport.subTransport, 'jsonp-polling');
    transport.send('[1]');
    assert.deepEqual(FakeSockJS.last.sent, ['[1]']);
    transport.close(1006, 'not allowed');
    assert.deepEqual(FakeSockJS.last.closeCalls, [[1000, 'not allowed']], 'codes SockJS refuses become 1000');
  });
});

describe('sockjs: loading sockjs-client on demand', () => {
  /** Run the classic script in a fake window that has no WebSocket. */
  function loadPage(props) {
    const window = { console, setTimeout, clearTimeout, ...props };
    vm.createContext(window);
    vm.runInContext(readFileSync(join(ROOT, 'dist/telegraphy.js'), 'utf8'), window, { filename: 'telegraphy.js' });
    return window;
  }

  test('without window.SockJS the script at sockjsScriptUrl is injected once, then used', async () => {
    /** A page without WebSocket loads the vendored sockjs.min.js, then connects through it. */
    const document = makeFakeDocument();
    const FakeSockJS = makeFakeSockJS();
    const window = loadPage({
      document,
      location: { protocol: 'https:', host: 'shop.example' },
      TELEGRAPHY_CONFIG: {
        url: 'wss://rt.shop.example/ws', realm: 'telegraphy', token: null, authid: null,
        sockjsUrl: 'https://rt.shop.example/sockjs', sockjsScriptUrl: '/static/telegraphy/vendor/sockjs.min.js',
      },
    });
    const connects = [];
    window.Telegraphy.on('connect', (info) => connects.push(info));
    await flush();
    assert.equal(document.scripts.length, 1);
    const script = document.scripts[0];
    assert.equal(script.src, '/static/telegraphy/vendor/sockjs.min.js');
    assert.equal(script.async, true);
    assert.equal(document.head.children.length, 1);
    window.SockJS = FakeSockJS;
    script.onload();
    await flush();
    assert.equal(FakeSockJS.instances.length, 1);
    assert.equal(FakeSockJS.last.url, 'https://rt.shop.example/sockjs');
    welcome(FakeSockJS.last, 3, 'xhr-streaming');
    assert.equal(connects[0].transport, 'sockjs');
    assert.equal(connects[0].sockjsTransport, 'xhr-streaming');
    // A second client on the page uses the loaded class: no second script.
    const other = new window.Telegraphy.TelegraphyClient({ url: 'wss://rt.shop.example/ws', sockjsScriptUrl: '/static/x.js' });
    await flush();
    assert.equal(document.scripts.length, 1);
    assert.equal(FakeSockJS.instances.length, 2);
    other.disconnect();
    window.Telegraphy.disconnect();
  });

  test('a script that fails to load is a lost connection, retried with a new script', async () => {
    /** onerror: disconnect (will reconnect), the element removed; the next attempt injects it again. */
    const document = makeFakeDocument();
    const timers = makeFakeTimers();
    const window = loadPage({ document });
    const client = new window.Telegraphy.TelegraphyClient({
      url: 'ws://127.0.0.1:9000/ws', sockjsScriptUrl: '/static/sockjs.min.js', timers, autoConnect: false, random: () => 0,
    });
    const disconnects = [];
    client.on('disconnect', (info) => disconnects.push(info)).on('error', () => {});
    client.connect();
    await flush();
    assert.equal(document.scripts.length, 1);
    document.scripts[0].onerror();
    await until(() => disconnects.length === 1, 'disconnect');
    assert.match(disconnects[0].reason, /cannot load SockJS from \/static\/sockjs\.min\.js/);
    assert.equal(disconnects[0].willReconnect, true);
    assert.equal(document.head.children.length, 0);
    timers.runNext();
    await flush();
    assert.equal(document.scripts.length, 2);
    client.disconnect();
  });
});
