// `npm install` / `npm ci` run this (the package's install script): it builds the native
// SM4-CTR and GHASH module with node-gyp, which npm provides, against the Node headers npm
// is configured with. A failed build is not an install failure: TLCP then runs on
// OpenSSL's SM4 and the JavaScript GHASH, only slower, and the node says so at start-up.
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

if (process.env.ADMQ_TLS_NATIVE === 'off') {
  console.log('admq: ADMQ_TLS_NATIVE=off, native SM4/GHASH not built');
  process.exit(0);
}
const here = dirname(fileURLToPath(import.meta.url));
const result = spawnSync('node-gyp', ['rebuild'], { cwd: here, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', shell: process.platform === 'win32' });
if (result.status === 0) {
  console.log('admq: built native SM4/GHASH (tls/native)');
} else {
  const why = result.error ? result.error.message : (result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n');
  console.warn(`admq: native SM4/GHASH not built; TLCP will use OpenSSL's SM4 (slower).\n${why}`);
}
