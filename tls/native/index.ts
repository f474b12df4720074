// The native SM4-CTR and GHASH module (sm4-gcm.c), when it was built and this CPU has the
// instructions it needs (AVX-512, GFNI, PCLMULQDQ). `native` is undefined otherwise, and
// callers fall back to OpenSSL's SM4 and the JavaScript GHASH: same bytes, slower.
// ADMQ_TLS_NATIVE=off forces the fallback (to compare the two, or to rule the module out).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface TlsNative {
  /** Expands a 16-byte SM4 key into its 32 round keys (128 bytes). */
  sm4Expand(key: Uint8Array, roundKeys: Uint8Array): void;
  /** output = input XOR SM4-CTR keystream from `counter`, incremented in its last 32 bits (GCM's inc32). */
  sm4CtrXor(roundKeys: Uint8Array, counter: Uint8Array, input: Uint8Array, output: Uint8Array): void;
  /** state = GHASH_H(state, data), data zero-padded to whole 16-byte blocks. */
  ghashUpdate(hashKey: Uint8Array, state: Uint8Array, data: Uint8Array): void;
  /** One SM4-GCM record: out = ciphertext || tag (out at least 16 bytes longer than the plaintext). */
  gcmSeal(roundKeys: Uint8Array, hashKey: Uint8Array, j0: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /** Checks the tag (constant time), then decrypts into `out`; false, with `out` untouched, if the tag is wrong. */
  gcmOpen(roundKeys: Uint8Array, hashKey: Uint8Array, j0: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
}

export type NativeStatus = { loaded: true } | { loaded: false; reason: string };

function load(): { native: TlsNative | undefined; status: NativeStatus } {
  if (process.env.ADMQ_TLS_NATIVE === 'off') return { native: undefined, status: { loaded: false, reason: 'ADMQ_TLS_NATIVE=off' } };
  const path = new URL('./build/Release/admq_tls_native.node', import.meta.url);
  if (!existsSync(path)) return { native: undefined, status: { loaded: false, reason: 'not built (npm install builds it with node-gyp)' } };
  try {
    const module = createRequire(import.meta.url)(path.pathname) as TlsNative & { supported(): boolean };
    if (!module.supported()) return { native: undefined, status: { loaded: false, reason: 'this CPU lacks AVX-512, GFNI or PCLMULQDQ' } };
    return { native: module, status: { loaded: true } };
  } catch (error) {
    return { native: undefined, status: { loaded: false, reason: `failed to load: ${(error as Error).message}` } };
  }
}

const loaded = load();

export const native: TlsNative | undefined = loaded.native;
/** Whether the native module serves SM4-GCM records, and if not, why. */
export const nativeStatus: NativeStatus = loaded.status;
