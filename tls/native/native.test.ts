// The native SM4-CTR and GHASH module against OpenSSL and the portable path: same bytes
// for every length, counter wraps included, and clear errors for bad arguments.
import test from 'ava';
import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { prng, seedFromEnv } from '../../test-support/random.ts';
import { GcmKey } from '../gcm.ts';
import { native, nativeStatus } from './index.ts';

const seed = seedFromEnv();
console.log(`tls/native: seed ${seed} (ADMQ_SEED=${seed} replays)`);
const random = prng(seed);
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));

const cpuFlags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
const cpuCapable = ['avx512f', 'avx512bw', 'gfni', 'pclmulqdq', 'ssse3'].every((flag) => cpuFlags.has(flag));

test('native: loaded on a CPU with AVX-512, GFNI and PCLMULQDQ (npm install builds it), absent with a reason otherwise', (t) => {
  if (process.env.ADMQ_TLS_NATIVE === 'off') {
    t.deepEqual(nativeStatus, { loaded: false, reason: 'ADMQ_TLS_NATIVE=off' });
    return;
  }
  if (cpuCapable) {
    t.deepEqual(nativeStatus, { loaded: true }, 'this CPU can run the native module, so it must be built and pass its self-test');
    t.truthy(native);
  } else {
    t.is(native, undefined);
    t.false(nativeStatus.loaded);
  }
});

/** SM4-CTR with GCM's inc32 counter, from OpenSSL's SM4-ECB: the reference. */
function referenceCtr(key: Buffer, counter: Buffer, data: Buffer): Buffer {
  const ecb = createCipheriv('sm4-ecb', key, null);
  ecb.setAutoPadding(false);
  const blocks = Math.ceil(data.length / 16);
  const counters = Buffer.alloc(blocks * 16);
  for (let i = 0; i < blocks; i++) {
    counter.copy(counters, i * 16, 0, 12);
    counters.writeUInt32BE((counter.readUInt32BE(12) + i) >>> 0, i * 16 + 12);
  }
  const stream = ecb.update(counters);
  return Buffer.from(data.map((b, i) => b ^ stream[i]!));
}

test('native: SM4-CTR equals OpenSSL SM4 for lengths 0-600 and 16 KiB, counters wrapping at 2^32, in place too', (t) => {
  if (!native) return t.pass('native module not loaded on this machine (see the test above)');
  const lengths = [...Array.from({ length: 601 }, (_, i) => i), 16_383, 16_384, 16_400];
  for (const length of lengths) {
    const key = bytes(16);
    const counter = bytes(16);
    // A third of the counters start just below 2^32, so the run crosses the 32-bit wrap.
    if (length % 3 === 0) counter.writeUInt32BE((0x1_0000_0000 - 1 - (length % 40)) >>> 0, 12);
    const data = bytes(length);
    const roundKeys = Buffer.alloc(128);
    native.sm4Expand(key, roundKeys);
    const out = Buffer.alloc(length);
    native.sm4CtrXor(roundKeys, counter, data, out);
    const expected = referenceCtr(key, counter, data);
    if (!out.equals(expected)) return t.fail(`length ${length}: native SM4-CTR differs from OpenSSL`);
    native.sm4CtrXor(roundKeys, counter, data, data);
    if (!data.equals(expected)) return t.fail(`length ${length}: in-place SM4-CTR differs`);
  }
  t.pass();
});

test('native: SM4-GCM and AES-128-GCM records equal the portable path (OpenSSL CTR, JavaScript GHASH) on random inputs', (t) => {
  if (!native) return t.pass('native module not loaded on this machine');
  for (let i = 0; i < 200; i++) {
    const cipher = i % 2 === 0 ? 'sm4' : 'aes-128';
    const key = bytes(16);
    const nonce = bytes(12);
    const plaintext = bytes(Math.floor(random() * (i < 100 ? 300 : 16_385)));
    const aad = bytes(i % 5 === 0 ? 0 : 13);
    const fast = new GcmKey(cipher, key);
    const portable = new GcmKey(cipher, key, { portable: true });
    t.true(fast.accelerated);
    t.false(portable.accelerated);
    const a = fast.seal(nonce, plaintext, aad);
    const b = portable.seal(nonce, plaintext, aad);
    if (!a.ciphertext.equals(b.ciphertext) || !a.tag.equals(b.tag)) return t.fail(`${cipher} record ${i} (${plaintext.length} bytes) differs`);
    const opened = portable.open(nonce, a.ciphertext, a.tag, aad);
    if (!opened?.equals(plaintext)) return t.fail(`${cipher} record ${i}: the portable path does not open the native record`);
    const tampered = Buffer.from(a.ciphertext);
    if (tampered.length > 0) {
      tampered[Math.floor(random() * tampered.length)]! ^= 1 << Math.floor(random() * 8);
      if (fast.open(nonce, tampered, a.tag, aad) !== null) return t.fail(`${cipher} record ${i}: a flipped bit passed the native tag check`);
    }
  }
  t.pass();
});

test('native: bad arguments get a typed RangeError or TypeError, never a crash', (t) => {
  if (!native) return t.pass('native module not loaded on this machine');
  const roundKeys = Buffer.alloc(128);
  t.throws(() => native?.sm4Expand(Buffer.alloc(15), roundKeys), { instanceOf: RangeError });
  t.throws(() => native?.sm4CtrXor(Buffer.alloc(64), Buffer.alloc(16), Buffer.alloc(4), Buffer.alloc(4)), { instanceOf: RangeError });
  t.throws(() => native?.sm4CtrXor(roundKeys, Buffer.alloc(16), Buffer.alloc(8), Buffer.alloc(4)), { instanceOf: RangeError });
  t.throws(() => native?.ghashUpdate(Buffer.alloc(16), Buffer.alloc(8), Buffer.alloc(4)), { instanceOf: RangeError });
  t.throws(() => native?.ghashUpdate('key' as unknown as Uint8Array, Buffer.alloc(16), Buffer.alloc(4)), { instanceOf: TypeError });
  t.throws(() => native?.sm4CtrXor(roundKeys, Buffer.alloc(16), new Uint16Array(4) as unknown as Uint8Array, Buffer.alloc(8)), { instanceOf: TypeError });
  // A record's output must have room for the tag; a tag must be 16 bytes.
  t.throws(() => native?.gcmSeal(roundKeys, Buffer.alloc(16), Buffer.alloc(16), Buffer.alloc(13), Buffer.alloc(32), Buffer.alloc(40)), { instanceOf: RangeError });
  t.throws(() => native?.gcmOpen(roundKeys, Buffer.alloc(16), Buffer.alloc(16), Buffer.alloc(13), Buffer.alloc(32), Buffer.alloc(8), Buffer.alloc(32)), { instanceOf: RangeError });
});
