import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

import { buildBundles, OUTPUTS } from '../build.mjs';
import { flush, makeFakeWebSocket } from '../testing/fakes.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Run the classic script in a fresh fake window. */
function loadScript(windowProps) {
  const window = { console, setTimeout, clearTimeout, ...windowProps };
  vm.createContext(window);
  const code = readFileSync(join(ROOT, 'dist/telegraphy.js'), 'utf8');
  vm.runInContext(code, window, { filename: 'telegraphy.js' });
  return window;
}

test('committed bundles are up to date with the sources', () => {
  /** dist/ and the Django static copy equal a fresh build. */
  const bundles = buildBundles();
  for (const kind of Object.keys(OUTPUTS)) {
    for (const relative of OUTPUTS[kind]) {
      assert.equal(readFileSync(join(ROOT, relative), 'utf8'), bundles[kind], `${relative} is stale: run node build.mjs`);
    }
  }
});

test('the classic script defines window.Telegraphy', () => {
  /** Loaded by a script tag, the bundle sets a global Telegraphy client. */
  const window = loadScript({});
  assert.equal(typeof window.Telegraphy, 'object');
  assert.equal(window.Telegraphy.state, 'disconnected');
  for (const method of ['configure', 'register', 'unregister', 'subscribe', 'on', 'off', 'connect', 'disconnect', 'publish', 'call']) {
    assert.equal(typeof window.Telegraphy[method], 'function', method);
  }
  assert.equal(typeof window.Telegraphy.TelegraphyClient, 'function');
});

test('the classic script configures and connects from TELEGRAPHY_CONFIG', async () => {
  /** A page that sets window.TELEGRAPHY_CONFIG first gets a connecting client, and events flow. */
  const FakeWS = makeFakeWebSocket();
  const window = loadScript({
    WebSocket: FakeWS,
    location: { protocol: 'https:', host: 'shop.example' },
    TELEGRAPHY_CONFIG: { url: '/ws', realm: 'telegraphy', token: 'connect-jwt', authid: null },
  });
  const seen = [];
  window.Telegraphy.register('shop.Order', (event) => seen.push(event.data.pk));
  await flush();
  assert.equal(FakeWS.instances.length, 1);
  const ws = FakeWS.last;
  assert.equal(ws.url, 'wss://shop.example/ws');
  ws.open();
  ws.receive([4, 'ticket', {}]);
  assert.deepEqual(ws.messages[1], [5, 'connect-jwt', {}]);
  ws.receive([2, 1, {}]);
  assert.deepEqual(ws.messages[2], [32, 1, {}, 'shop.Order']);
  ws.receive([33, 1, 5]);
  ws.receive([36, 5, 1, {}, [{ name: 'shop.Order', meta: { event_type: 'create' }, data: { pk: 7 } }]]);
  assert.deepEqual(seen, [7]);
  window.Telegraphy.disconnect();
});

test('loading the script twice keeps the first client', () => {
  /** A second copy does not replace a client that may already be connected. */
  const window = loadScript({});
  const first = window.Telegraphy;
  vm.runInContext(readFileSync(join(ROOT, 'dist/telegraphy.js'), 'utf8'), window);
  assert.equal(window.Telegraphy, first);
});

test('the ES module exports the client as default and by name', async () => {
  /** dist/telegraphy.mjs: default Telegraphy plus named classes and helpers. */
  const module = await import('../dist/telegraphy.mjs');
  assert.equal(module.default, module.Telegraphy);
  assert.equal(module.default.state, 'disconnected');
  for (const name of ['TelegraphyClient', 'Subscription', 'Session', 'WebSocketTransport', 'WampError',
    'ProtocolError', 'encode', 'decode', 'autoConfigure', 'GLOBAL_CONFIG_NAME', 'VERSION']) {
    assert.ok(name in module, name);
  }
  assert.ok(module.default instanceof module.TelegraphyClient);
});
