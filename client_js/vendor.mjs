#!/usr/bin/env node
/**
 * Vendor sockjs-client's prebuilt browser bundle into the Django app's
 * static files, from the npm registry package, reproducibly:
 *
 *   1. `npm pack sockjs-client@VERSION` into a temporary directory (the
 *      registry tarball, through npm's own client and cache);
 *   2. check the tarball against the pinned sha512 integrity;
 *   3. copy `dist/sockjs.min.js`, its source map and `LICENSE` to
 *      telegraphy/contrib/django_telegraphy/static/telegraphy/vendor/;
 *   4. write client_js/vendor.json: version, integrity and the sha256 of
 *      each vendored file (test/vendor.test.mjs checks them offline).
 *
 * The files are copied byte for byte. The source map comes along because
 * sockjs.min.js names it in a `sourceMappingURL` comment, which Django's
 * ManifestStaticFilesStorage resolves during collectstatic.
 *
 * telegraphy.js never imports this bundle: it injects a <script> for it only
 * when it has to fall back to SockJS (see src/sockjs.js).
 *
 * Usage: node vendor.mjs           fetch and write (network: the npm registry)
 *        node vendor.mjs --check   offline: exit 1 if the vendored files do not
 *                                  match vendor.json
 *
 * To upgrade: change SOCKJS_VERSION, run once with SOCKJS_INTEGRITY = null
 * (the script prints the registry's integrity), pin it, run again.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';

const HERE = dirname(fileURLToPath(import.meta.url));

export const SOCKJS_PACKAGE = 'sockjs-client';
export const SOCKJS_VERSION = '1.6.1';
/** `npm view sockjs-client@1.6.1 dist.integrity` */
export const SOCKJS_INTEGRITY = 'sha512-2g0tjOR+fRs0amxENLi/q5TiJTqY+WXFOzb5UwXndlK6TO3U/mirZznpx6w34HVMoc3g7cY24yC/ZMIYnDlfkw==';

/** Vendored files, relative to client_js/, and the tarball member each comes from. */
export const VENDOR_DIR = '../telegraphy/contrib/django_telegraphy/static/telegraphy/vendor';
export const VENDOR_FILES = {
  'sockjs.min.js': 'package/dist/sockjs.min.js',
  'sockjs.min.js.map': 'package/dist/sockjs.min.js.map',
  'LICENSE.sockjs-client': 'package/LICENSE',
};
export const MANIFEST = 'vendor.json';

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/**
 * Read the regular files of an (uncompressed) ustar archive.
 * @param {Buffer} tar
 * @returns {Map<string, Buffer>} path → contents
 */
export function readTar(tar) {
  const files = new Map();
  let offset = 0;
  let longName = null;
  const text = (start, length) => {
    const field = tar.subarray(start, start + length);
    const end = field.indexOf(0);
    return field.subarray(0, end < 0 ? length : end).toString('utf8');
  };
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const size = parseInt(text(offset + 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const prefix = text(offset + 345, 155);
    let name = text(offset, 100);
    if (prefix) name = prefix + '/' + name;
    const body = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') { // pax header: a long path
      const match = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      longName = match ? match[1] : null;
      continue;
    }
    if (type === 'L') { // GNU long name
      longName = body.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    if (type === '0' || type === '\0') {
      files.set(longName || name, Buffer.from(body));
    }
    longName = null;
  }
  return files;
}

/** Fetch the package tarball with npm, check it, and write the vendored files and the manifest. */
function vendor() {
  const work = mkdtempSync(join(tmpdir(), 'telegraphy-vendor-'));
  try {
    const spec = `${SOCKJS_PACKAGE}@${SOCKJS_VERSION}`;
    const out = execFileSync('npm', ['pack', spec, '--json', '--pack-destination', work], {
      cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [info] = JSON.parse(out);
    const tarball = readFileSync(join(work, info.filename));
    const integrity = 'sha512-' + createHash('sha512').update(tarball).digest('base64');
    if (SOCKJS_INTEGRITY === null) {
      console.error(`${spec} integrity is ${integrity}: pin it as SOCKJS_INTEGRITY and run again`);
      process.exit(1);
    }
    if (integrity !== SOCKJS_INTEGRITY) {
      throw new Error(`${spec}: tarball integrity ${integrity} is not the pinned ${SOCKJS_INTEGRITY}`);
    }
    const members = readTar(gunzipSync(tarball));
    const version = JSON.parse(members.get('package/package.json').toString('utf8')).version;
    if (version !== SOCKJS_VERSION) {
      throw new Error(`${spec}: package.json says version ${version}`);
    }
    const target = join(HERE, VENDOR_DIR);
    mkdirSync(target, { recursive: true });
    const files = {};
    for (const [name, member] of Object.entries(VENDOR_FILES)) {
      const bytes = members.get(member);
      if (!bytes) throw new Error(`${spec}: no ${member} in the package`);
      writeFileSync(join(target, name), bytes);
      files[name] = { from: member, sha256: sha256(bytes), bytes: bytes.length };
      console.log(`wrote ${VENDOR_DIR}/${name} (${bytes.length} bytes, from ${member})`);
    }
    const manifest = {
      package: SOCKJS_PACKAGE,
      version: SOCKJS_VERSION,
      integrity,
      license: 'MIT',
      directory: VENDOR_DIR,
      files,
    };
    writeFileSync(join(HERE, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    console.log(`wrote ${MANIFEST}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Compare the vendored files with the manifest, offline.
 * @returns {string[]} problems, empty when everything matches
 */
export function checkVendored() {
  const problems = [];
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(HERE, MANIFEST), 'utf8'));
  } catch (err) {
    return [`${MANIFEST} is missing or unreadable (run: node vendor.mjs)`];
  }
  if (manifest.version !== SOCKJS_VERSION || manifest.integrity !== SOCKJS_INTEGRITY) {
    problems.push(`${MANIFEST} records ${manifest.package}@${manifest.version}, vendor.mjs pins ${SOCKJS_VERSION}`);
  }
  for (const name of Object.keys(VENDOR_FILES)) {
    const expected = manifest.files && manifest.files[name];
    let bytes = null;
    try {
      bytes = readFileSync(join(HERE, VENDOR_DIR, name));
    } catch (err) {
      problems.push(`${VENDOR_DIR}/${name} is missing`);
      continue;
    }
    if (!expected || expected.sha256 !== sha256(bytes)) {
      problems.push(`${VENDOR_DIR}/${name} differs from ${MANIFEST}`);
    }
  }
  return problems;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--check')) {
    const problems = checkVendored();
    problems.forEach((problem) => console.error(problem));
    process.exit(problems.length ? 1 : 0);
  } else {
    vendor();
  }
}
