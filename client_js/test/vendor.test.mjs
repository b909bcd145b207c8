import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { checkVendored, SOCKJS_VERSION, VENDOR_DIR } from '../vendor.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

test('the vendored sockjs-client matches vendor.json', () => {
  /** The static vendor files are the pinned registry package's, byte for byte (node vendor.mjs --check). */
  assert.deepEqual(checkVendored(), []);
  const bundle = readFileSync(join(ROOT, VENDOR_DIR, 'sockjs.min.js'), 'utf8');
  assert.ok(bundle.startsWith(`/* sockjs-client v${SOCKJS_VERSION} | http://sockjs.org | MIT license */`), bundle.slice(0, 80));
  assert.match(readFileSync(join(ROOT, VENDOR_DIR, 'LICENSE.sockjs-client'), 'utf8'), /The MIT License/);
});

test('telegraphy.js itself stays dependency-free', () => {
  /** The client bundle does not contain sockjs-client: it loads it only when falling back. */
  for (const file of ['dist/telegraphy.js', 'dist/telegraphy.mjs']) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    assert.ok(!text.includes('sockjs-client v'), file);
    assert.ok(!/\brequire\(/.test(text), file);
  }
});
