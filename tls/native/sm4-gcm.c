// SM4-CTR and GHASH with the CPU's vector instructions, for the TLCP GCM suites.
//
// Node's OpenSSL 3.0 has SM4 only as portable C (about 100 MB/s a core here) and no
// SM4-GCM at all, so on a replication link the record cipher, not the network, bounds
// throughput. Two facts make SM4 fast on x86:
//   - SM4's S-box is affine-equivalent to inversion in GF(2^8) under AES's polynomial:
//     S(x) = M2 * inv_aes(M1 * x + c1) + c2 for 8x8 bit matrices M1, M2 and bytes c1, c2
//     (derived from the standard's S-box; the module checks the standard's test vector
//     before it claims support),
//     which GFNI computes for 64 bytes in two instructions (gf2p8affine, gf2p8affineinv);
//   - CTR mode encrypts independent counter blocks, so 16 blocks run side by side, one
//     32-bit word of each in a lane of four 512-bit registers, with no transposition of
//     the input at all (the counters are built in that layout directly); two such groups
//     share one round loop, so that one's latencies overlap the other's work.
// GHASH uses carry-less multiplication (PCLMULQDQ) with the bit-reflected reduction of
// Intel's GCM white paper (Gueron and Kounavis), once per four blocks.
//
// The vector code is compiled for its instruction sets only (target attributes), and
// `supported()` tells JavaScript whether this CPU has them; without them admq keeps
// using OpenSSL's SM4 and its own GHASH.
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <immintrin.h>

#define GFNI_M1 0x4c287db91a22505dULL
#define GFNI_C1 0x3e
#define GFNI_M2 0xf3ab34a974a6b589ULL
#define GFNI_C2 0xd3

static const uint32_t FK[4] = {0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc};

// ---- Scalar SM4: the key schedule, and the reference for the load-time self-test ----

// GFNI's affine transform on one byte: bit i of the result is the parity of
// (x AND byte 7-i of the matrix), XOR bit i of c.
static uint8_t affine_byte(uint64_t matrix, uint8_t x, uint8_t c) {
  uint8_t out = 0;
  for (int i = 0; i < 8; i++) {
    uint8_t row = (uint8_t)(matrix >> (8 * (7 - i)));
    out |= (uint8_t)((__builtin_popcount(row & x) & 1) << i);
  }
  return out ^ c;
}

static uint8_t gf_mul_aes(uint8_t a, uint8_t b) {
  uint8_t r = 0;
  while (b) {
    if (b & 1) r ^= a;
    b >>= 1;
    a = (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1b : 0));
  }
  return r;
}

static uint8_t gf_inv_aes(uint8_t a) {
  // a^254 = a^-1 (and 0 for 0).
  uint8_t result = 1, base = a;
  for (int e = 254; e > 0; e >>= 1) {
    if (e & 1) result = gf_mul_aes(result, base);
    base = gf_mul_aes(base, base);
  }
  return a == 0 ? 0 : result;
}

static uint8_t sbox[256];

static void init_sbox(void) {
  for (int x = 0; x < 256; x++) sbox[x] = affine_byte(GFNI_M2, gf_inv_aes(affine_byte(GFNI_M1, (uint8_t)x, GFNI_C1)), GFNI_C2);
}

static inline uint32_t rotl32(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

static inline uint32_t tau(uint32_t a) {
  return ((uint32_t)sbox[a >> 24] << 24) | ((uint32_t)sbox[(a >> 16) & 255] << 16) | ((uint32_t)sbox[(a >> 8) & 255] << 8) | sbox[a & 255];
}

static inline uint32_t load_be32(const uint8_t* p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static inline void store_be32(uint8_t* p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

static void sm4_expand(const uint8_t key[16], uint32_t rk[32]) {
  uint32_t k[4];
  for (int i = 0; i < 4; i++) k[i] = load_be32(key + 4 * i) ^ FK[i];
  for (int i = 0; i < 32; i++) {
    uint32_t ck = 0;
    for (int j = 0; j < 4; j++) ck = (ck << 8) | (uint32_t)(((4 * i + j) * 7) & 255);
    uint32_t b = tau(k[1] ^ k[2] ^ k[3] ^ ck);
    uint32_t next = k[0] ^ b ^ rotl32(b, 13) ^ rotl32(b, 23);
    rk[i] = next;
    k[0] = k[1]; k[1] = k[2]; k[2] = k[3]; k[3] = next;
  }
}

static void sm4_block_scalar(const uint32_t rk[32], const uint8_t in[16], uint8_t out[16]) {
  uint32_t x[4];
  for (int i = 0; i < 4; i++) x[i] = load_be32(in + 4 * i);
  for (int i = 0; i < 32; i++) {
    uint32_t b = tau(x[1] ^ x[2] ^ x[3] ^ rk[i]);
    uint32_t next = x[0] ^ b ^ rotl32(b, 2) ^ rotl32(b, 10) ^ rotl32(b, 18) ^ rotl32(b, 24);
    x[0] = x[1]; x[1] = x[2]; x[2] = x[3]; x[3] = next;
  }
  for (int i = 0; i < 4; i++) store_be32(out + 4 * i, x[3 - i]);
}

// ---- SM4-CTR, 32 or 16 blocks at a time (AVX-512 + GFNI) ----

#define VECTOR_TARGET __attribute__((target("avx512f,avx512bw,gfni")))

VECTOR_TARGET static inline __m512i sm4_sbox16(__m512i x) {
  x = _mm512_gf2p8affine_epi64_epi8(x, _mm512_set1_epi64((long long)GFNI_M1), GFNI_C1);
  return _mm512_gf2p8affineinv_epi64_epi8(x, _mm512_set1_epi64((long long)GFNI_M2), GFNI_C2);
}

// Output block = (X35, X34, X33, X32) = (x3, x2, x1, x0), each word big-endian, in counter
// order (see `order` below) at out[0, 256).
VECTOR_TARGET static inline void sm4_store16(__m512i x0, __m512i x1, __m512i x2, __m512i x3, uint8_t* out) {
  const __m512i t0 = _mm512_unpacklo_epi32(x3, x2);
  const __m512i t1 = _mm512_unpackhi_epi32(x3, x2);
  const __m512i t2 = _mm512_unpacklo_epi32(x1, x0);
  const __m512i t3 = _mm512_unpackhi_epi32(x1, x0);
  const __m512i bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
  _mm512_storeu_si512((void*)(out + 0), _mm512_shuffle_epi8(_mm512_unpacklo_epi64(t0, t2), bswap));
  _mm512_storeu_si512((void*)(out + 64), _mm512_shuffle_epi8(_mm512_unpackhi_epi64(t0, t2), bswap));
  _mm512_storeu_si512((void*)(out + 128), _mm512_shuffle_epi8(_mm512_unpacklo_epi64(t1, t3), bswap));
  _mm512_storeu_si512((void*)(out + 192), _mm512_shuffle_epi8(_mm512_unpackhi_epi64(t1, t3), bswap));
}

// One SM4 round on 16 blocks: x0 ^ L(S(x1 ^ x2 ^ x3 ^ rk)).
VECTOR_TARGET static inline __m512i sm4_round16(__m512i x0, __m512i x1, __m512i x2, __m512i x3, __m512i rk) {
  __m512i t = _mm512_xor_si512(_mm512_ternarylogic_epi32(x1, x2, x3, 0x96), rk);
  t = sm4_sbox16(t);
  __m512i l = _mm512_ternarylogic_epi32(t, _mm512_rol_epi32(t, 2), _mm512_rol_epi32(t, 10), 0x96);
  l = _mm512_ternarylogic_epi32(l, _mm512_rol_epi32(t, 18), _mm512_rol_epi32(t, 24), 0x96);
  return _mm512_xor_si512(x0, l);
}

// Lane e holds counter block (e % 4) * 4 + e / 4, so that the in-lane transposition at the
// end writes the blocks in counter order.
#define SM4_LANE_ORDER _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0)

// Keystream of 16 counter blocks (nonce words n0..n2, counter c..c+15 mod 2^32) into out[256].
VECTOR_TARGET static void sm4_ctr_keystream16(const uint32_t rk[32], uint32_t n0, uint32_t n1, uint32_t n2, uint32_t c, uint8_t out[256]) {
  __m512i x0 = _mm512_set1_epi32((int)n0);
  __m512i x1 = _mm512_set1_epi32((int)n1);
  __m512i x2 = _mm512_set1_epi32((int)n2);
  __m512i x3 = _mm512_add_epi32(_mm512_set1_epi32((int)c), SM4_LANE_ORDER);
  for (int i = 0; i < 32; i++) {
    __m512i next = sm4_round16(x0, x1, x2, x3, _mm512_set1_epi32((int)rk[i]));
    x0 = x1; x1 = x2; x2 = x3; x3 = next;
  }
  sm4_store16(x0, x1, x2, x3, out);
}

// The same for 32 counter blocks (c..c+31) into out[512]: two independent groups of 16 in
// one round loop, so that one group's GFNI and rotate latencies overlap the other's work.
VECTOR_TARGET static void sm4_ctr_keystream32(const uint32_t rk[32], uint32_t n0, uint32_t n1, uint32_t n2, uint32_t c, uint8_t out[512]) {
  __m512i a0 = _mm512_set1_epi32((int)n0), b0 = a0;
  __m512i a1 = _mm512_set1_epi32((int)n1), b1 = a1;
  __m512i a2 = _mm512_set1_epi32((int)n2), b2 = a2;
  __m512i a3 = _mm512_add_epi32(_mm512_set1_epi32((int)c), SM4_LANE_ORDER);
  __m512i b3 = _mm512_add_epi32(_mm512_set1_epi32((int)(c + 16)), SM4_LANE_ORDER);
  for (int i = 0; i < 32; i++) {
    const __m512i k = _mm512_set1_epi32((int)rk[i]);
    __m512i na = sm4_round16(a0, a1, a2, a3, k);
    __m512i nb = sm4_round16(b0, b1, b2, b3, k);
    a0 = a1; a1 = a2; a2 = a3; a3 = na;
    b0 = b1; b1 = b2; b2 = b3; b3 = nb;
  }
  sm4_store16(a0, a1, a2, a3, out);
  sm4_store16(b0, b1, b2, b3, out + 256);
}

// out = in XOR keystream, from the counter block `counter` incremented in its last 32
// bits (GCM's inc32). in and out may be the same buffer.
VECTOR_TARGET static void sm4_ctr_xor(const uint32_t rk[32], const uint8_t counter[16], const uint8_t* in, uint8_t* out, size_t length) {
  const uint32_t n0 = load_be32(counter), n1 = load_be32(counter + 4), n2 = load_be32(counter + 8);
  uint32_t c = load_be32(counter + 12);
  uint8_t keystream[512] __attribute__((aligned(64)));
  size_t at = 0;
  for (; at + 512 <= length; at += 512, c += 32) {
    sm4_ctr_keystream32(rk, n0, n1, n2, c, keystream);
    for (int k = 0; k < 512; k += 64) {
      __m512i v = _mm512_loadu_si512((const void*)(in + at + k));
      _mm512_storeu_si512((void*)(out + at + k), _mm512_xor_si512(v, _mm512_load_si512((const void*)(keystream + k))));
    }
  }
  for (; at + 256 <= length; at += 256, c += 16) {
    sm4_ctr_keystream16(rk, n0, n1, n2, c, keystream);
    for (int k = 0; k < 256; k += 64) {
      __m512i v = _mm512_loadu_si512((const void*)(in + at + k));
      _mm512_storeu_si512((void*)(out + at + k), _mm512_xor_si512(v, _mm512_load_si512((const void*)(keystream + k))));
    }
  }
  if (at < length) {
    sm4_ctr_keystream16(rk, n0, n1, n2, c, keystream);
    for (size_t k = 0; at + k < length; k++) out[at + k] = in[at + k] ^ keystream[k];
  }
}

// ---- GHASH (PCLMULQDQ) ----

#define GHASH_TARGET __attribute__((target("pclmul,ssse3,sse4.1")))

// The carry-less product of byte-reversed a and b, 256 bits in hi:lo, not yet reduced.
GHASH_TARGET static inline void clmul256(__m128i a, __m128i b, __m128i* lo, __m128i* hi) {
  __m128i l = _mm_clmulepi64_si128(a, b, 0x00);
  __m128i m = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x10), _mm_clmulepi64_si128(a, b, 0x01));
  __m128i h = _mm_clmulepi64_si128(a, b, 0x11);
  *lo = _mm_xor_si128(l, _mm_slli_si128(m, 8));
  *hi = _mm_xor_si128(h, _mm_srli_si128(m, 8));
}

// hi:lo reduced to an element of GF(2^128) (see the white paper's algorithm 5). Both steps
// are linear, so a sum of unreduced products may be reduced once.
GHASH_TARGET static inline __m128i gf128_reduce(__m128i lo, __m128i hi) {
  // The product of two reflected values is shifted right by one bit: shift the 256-bit
  // hi:lo left by one.
  __m128i lo_carry = _mm_srli_epi32(lo, 31);
  __m128i hi_carry = _mm_srli_epi32(hi, 31);
  lo = _mm_slli_epi32(lo, 1);
  hi = _mm_slli_epi32(hi, 1);
  __m128i cross = _mm_srli_si128(lo_carry, 12);
  hi_carry = _mm_slli_si128(hi_carry, 4);
  lo_carry = _mm_slli_si128(lo_carry, 4);
  lo = _mm_or_si128(lo, lo_carry);
  hi = _mm_or_si128(_mm_or_si128(hi, hi_carry), cross);
  // Reduce modulo x^128 + x^7 + x^2 + x + 1 (reflected).
  __m128i a1 = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi32(lo, 31), _mm_slli_epi32(lo, 30)), _mm_slli_epi32(lo, 25));
  __m128i a2 = _mm_srli_si128(a1, 4);
  a1 = _mm_slli_si128(a1, 12);
  lo = _mm_xor_si128(lo, a1);
  __m128i b1 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi32(lo, 1), _mm_srli_epi32(lo, 2)), _mm_srli_epi32(lo, 7));
  b1 = _mm_xor_si128(b1, a2);
  lo = _mm_xor_si128(lo, b1);
  return _mm_xor_si128(hi, lo);
}

GHASH_TARGET static inline __m128i gf128_mul(__m128i a, __m128i b) {
  __m128i lo, hi;
  clmul256(a, b, &lo, &hi);
  return gf128_reduce(lo, hi);
}

// state = (state XOR block) * H for each 16-byte block of data, the last one zero-padded.
// Four blocks at a time as (X ^ B0)·H^4 ^ B1·H^3 ^ B2·H^2 ^ B3·H, with one reduction.
GHASH_TARGET static void ghash_update(const uint8_t h[16], uint8_t state[16], const uint8_t* data, size_t length) {
  const __m128i reverse = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m128i h1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)h), reverse);
  __m128i x = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)state), reverse);
  size_t at = 0;
  if (length >= 64) {
    const __m128i h2 = gf128_mul(h1, h1), h3 = gf128_mul(h2, h1), h4 = gf128_mul(h3, h1);
    for (; at + 64 <= length; at += 64) {
      __m128i lo, hi, l, m;
      clmul256(_mm_xor_si128(x, _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(data + at)), reverse)), h4, &lo, &hi);
      clmul256(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(data + at + 16)), reverse), h3, &l, &m);
      lo = _mm_xor_si128(lo, l);
      hi = _mm_xor_si128(hi, m);
      clmul256(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(data + at + 32)), reverse), h2, &l, &m);
      lo = _mm_xor_si128(lo, l);
      hi = _mm_xor_si128(hi, m);
      clmul256(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(data + at + 48)), reverse), h1, &l, &m);
      lo = _mm_xor_si128(lo, l);
      hi = _mm_xor_si128(hi, m);
      x = gf128_reduce(lo, hi);
    }
  }
  for (; at + 16 <= length; at += 16) {
    __m128i block = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(data + at)), reverse);
    x = gf128_mul(_mm_xor_si128(x, block), h1);
  }
  if (at < length) {
    uint8_t last[16] = {0};
    memcpy(last, data + at, length - at);
    __m128i block = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)last), reverse);
    x = gf128_mul(_mm_xor_si128(x, block), h1);
  }
  _mm_storeu_si128((__m128i*)state, _mm_shuffle_epi8(x, reverse));
}

// ---- SM4-GCM records in one call ----

// The tag of (aad, ciphertext) under H, masked with E(K, J0), into tag[16].
static void gcm_tag(const uint32_t rk[32], const uint8_t h[16], const uint8_t j0[16], const uint8_t* aad, size_t aad_length, const uint8_t* ciphertext, size_t length, uint8_t tag[16]) {
  uint8_t state[16] = {0}, lengths[16], mask[16];
  ghash_update(h, state, aad, aad_length);
  ghash_update(h, state, ciphertext, length);
  uint64_t aad_bits = (uint64_t)aad_length * 8, text_bits = (uint64_t)length * 8;
  for (int i = 0; i < 8; i++) {
    lengths[i] = (uint8_t)(aad_bits >> (56 - 8 * i));
    lengths[8 + i] = (uint8_t)(text_bits >> (56 - 8 * i));
  }
  ghash_update(h, state, lengths, 16);
  sm4_block_scalar(rk, j0, mask);
  for (int i = 0; i < 16; i++) tag[i] = state[i] ^ mask[i];
}

// J0 + 1 (inc32): where a record's keystream starts.
static void first_counter(const uint8_t j0[16], uint8_t counter[16]) {
  memcpy(counter, j0, 16);
  store_be32(counter + 12, load_be32(j0 + 12) + 1);
}

// ---- Support and self-test ----

static int cpu_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("gfni") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3");
}

// The standard's example (GB/T 32907-2016, appendix A.1): key = plaintext =
// 0123456789abcdeffedcba9876543210 encrypts to 681edf34d206965e86b3e94f536e4246. The
// vector paths (32 and 16 blocks, and a tail) are checked against the scalar one on 33
// blocks across a counter wrap.
static int self_test(void) {
  static const uint8_t key[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
  static const uint8_t expected[16] = {0x68, 0x1e, 0xdf, 0x34, 0xd2, 0x06, 0x96, 0x5e, 0x86, 0xb3, 0xe9, 0x4f, 0x53, 0x6e, 0x42, 0x46};
  uint32_t rk[32];
  uint8_t out[16];
  sm4_expand(key, rk);
  sm4_block_scalar(rk, key, out);
  if (memcmp(out, expected, 16) != 0) return 0;
  uint8_t counter[16];
  memcpy(counter, key, 12);
  store_be32(counter + 12, 0xfffffff0u);
  uint8_t zeros[528] = {0}, stream[528];
  sm4_ctr_xor(rk, counter, zeros, stream, sizeof stream);
  for (int block = 0; block < 33; block++) {
    uint8_t ctr[16], ref[16];
    memcpy(ctr, counter, 12);
    store_be32(ctr + 12, 0xfffffff0u + (uint32_t)block);
    sm4_block_scalar(rk, ctr, ref);
    if (memcmp(ref, stream + 16 * block, 16) != 0) return 0;
  }
  return 1;
}

static int available = -1;

// ---- N-API bindings ----

static int buffer_arg(napi_env env, napi_value value, uint8_t** data, size_t* length) {
  bool is_typed = false;
  napi_is_typedarray(env, value, &is_typed);
  if (!is_typed) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Buffer or Uint8Array");
    return 0;
  }
  napi_typedarray_type type;
  napi_value array_buffer;
  size_t offset;
  void* base;
  napi_get_typedarray_info(env, value, &type, length, &base, &array_buffer, &offset);
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Buffer or Uint8Array");
    return 0;
  }
  *data = (uint8_t*)base;
  return 1;
}

static napi_value js_supported(napi_env env, napi_callback_info info) {
  (void)info;
  if (available < 0) available = cpu_supported() && self_test();
  napi_value result;
  napi_get_boolean(env, available == 1, &result);
  return result;
}

static int require_available(napi_env env) {
  if (available != 1) {
    napi_throw_error(env, "ADMQ_ERR_TLS_NATIVE", "native SM4/GHASH is not available on this CPU");
    return 0;
  }
  return 1;
}

// sm4Expand(key: 16 bytes, roundKeys: 128 bytes)
static napi_value js_sm4_expand(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *key, *rk;
  size_t key_length, rk_length;
  if (argc < 2 || !buffer_arg(env, argv[0], &key, &key_length) || !buffer_arg(env, argv[1], &rk, &rk_length)) return NULL;
  if (key_length != 16 || rk_length != 128) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "sm4Expand needs a 16-byte key and a 128-byte round-key buffer");
    return NULL;
  }
  uint32_t words[32];
  sm4_expand(key, words);
  memcpy(rk, words, sizeof words);
  return NULL;
}

// sm4CtrXor(roundKeys: 128 bytes, counter: 16 bytes, input, output): output.length >= input.length
static napi_value js_sm4_ctr_xor(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *rk, *counter, *in, *out;
  size_t rk_length, counter_length, in_length, out_length;
  if (!require_available(env)) return NULL;
  if (argc < 4 || !buffer_arg(env, argv[0], &rk, &rk_length) || !buffer_arg(env, argv[1], &counter, &counter_length) || !buffer_arg(env, argv[2], &in, &in_length) || !buffer_arg(env, argv[3], &out, &out_length)) return NULL;
  if (rk_length != 128 || counter_length != 16 || out_length < in_length) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "sm4CtrXor needs 128-byte round keys, a 16-byte counter and an output at least as long as the input");
    return NULL;
  }
  uint32_t words[32];
  memcpy(words, rk, sizeof words);
  sm4_ctr_xor(words, counter, in, out, in_length);
  return NULL;
}

// ghashUpdate(hashKey: 16 bytes, state: 16 bytes (updated), data)
static napi_value js_ghash_update(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *h, *state, *data;
  size_t h_length, state_length, data_length;
  if (!require_available(env)) return NULL;
  if (argc < 3 || !buffer_arg(env, argv[0], &h, &h_length) || !buffer_arg(env, argv[1], &state, &state_length) || !buffer_arg(env, argv[2], &data, &data_length)) return NULL;
  if (h_length != 16 || state_length != 16) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "ghashUpdate needs a 16-byte hash key and a 16-byte state");
    return NULL;
  }
  ghash_update(h, state, data, data_length);
  return NULL;
}

// gcmSeal(roundKeys, hashKey, j0, aad, plaintext, out): out[0, n) = ciphertext, out[n, n + 16) = tag
static napi_value js_gcm_seal(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *rk, *h, *j0, *aad, *in, *out;
  size_t rk_length, h_length, j0_length, aad_length, in_length, out_length;
  if (!require_available(env)) return NULL;
  if (argc < 6 || !buffer_arg(env, argv[0], &rk, &rk_length) || !buffer_arg(env, argv[1], &h, &h_length) || !buffer_arg(env, argv[2], &j0, &j0_length) || !buffer_arg(env, argv[3], &aad, &aad_length) || !buffer_arg(env, argv[4], &in, &in_length) || !buffer_arg(env, argv[5], &out, &out_length)) return NULL;
  if (rk_length != 128 || h_length != 16 || j0_length != 16 || out_length < in_length + 16) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "gcmSeal needs 128-byte round keys, a 16-byte hash key and J0, and an output 16 bytes longer than the input");
    return NULL;
  }
  uint32_t words[32];
  uint8_t counter[16];
  memcpy(words, rk, sizeof words);
  first_counter(j0, counter);
  sm4_ctr_xor(words, counter, in, out, in_length);
  gcm_tag(words, h, j0, aad, aad_length, out, in_length, out + in_length);
  return NULL;
}

// gcmOpen(roundKeys, hashKey, j0, aad, ciphertext, tag, out): true and out = plaintext when
// the tag verifies (compared in constant time); false, and out untouched, otherwise.
static napi_value js_gcm_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *rk, *h, *j0, *aad, *in, *tag, *out;
  size_t rk_length, h_length, j0_length, aad_length, in_length, tag_length, out_length;
  if (!require_available(env)) return NULL;
  if (argc < 7 || !buffer_arg(env, argv[0], &rk, &rk_length) || !buffer_arg(env, argv[1], &h, &h_length) || !buffer_arg(env, argv[2], &j0, &j0_length) || !buffer_arg(env, argv[3], &aad, &aad_length) || !buffer_arg(env, argv[4], &in, &in_length) || !buffer_arg(env, argv[5], &tag, &tag_length) || !buffer_arg(env, argv[6], &out, &out_length)) return NULL;
  if (rk_length != 128 || h_length != 16 || j0_length != 16 || tag_length != 16 || out_length < in_length) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "gcmOpen needs 128-byte round keys, a 16-byte hash key, J0 and tag, and an output as long as the input");
    return NULL;
  }
  uint32_t words[32];
  uint8_t expected[16], counter[16];
  memcpy(words, rk, sizeof words);
  gcm_tag(words, h, j0, aad, aad_length, in, in_length, expected);
  uint8_t difference = 0;
  for (int i = 0; i < 16; i++) difference |= (uint8_t)(expected[i] ^ tag[i]);
  napi_value result;
  if (difference != 0) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  first_counter(j0, counter);
  sm4_ctr_xor(words, counter, in, out, in_length);
  napi_get_boolean(env, true, &result);
  return result;
}

static void export_function(napi_env env, napi_value exports, const char* name, napi_callback callback) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  init_sbox();
  export_function(env, exports, "supported", js_supported);
  export_function(env, exports, "sm4Expand", js_sm4_expand);
  export_function(env, exports, "sm4CtrXor", js_sm4_ctr_xor);
  export_function(env, exports, "ghashUpdate", js_ghash_update);
  export_function(env, exports, "gcmSeal", js_gcm_seal);
  export_function(env, exports, "gcmOpen", js_gcm_open);
  return exports;
}
