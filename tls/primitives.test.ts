import test from 'ava';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { sm2 as smV2, sm4 as smV2Sm4 } from 'sm-crypto-v2';
import { Curve, SM2_CURVE_PARAMS, SM2_TEST_CURVE_PARAMS, bytesToBigInt } from './ec-curve.ts';
import { GcmKey, Ghash } from './gcm.ts';
import {
  SM2_DEFAULT_ID,
  decodeSm2Ciphertext,
  decodeSm2Signature,
  encodeSm2Ciphertext,
  encodeSm2Signature,
  generateSm2KeyPair,
  sm2Curve,
  sm2Decrypt,
  sm2DecryptWith,
  sm2Encrypt,
  sm2EncryptWith,
  sm2KeyExchange,
  sm2KeyPairFromPrivate,
  sm2MessageDigest,
  sm2SignDigestWith,
  sm2Sign,
  sm2Verify,
  sm2VerifyDigestWith,
} from './sm2.ts';
import { hmacSm3, pHash, prf, sm3 } from './sm3.ts';
import { hex } from './wire-bytes.ts';

// --- SM3, GB/T 32905-2016 Appendix A -------------------------------------

test('sm3: GB/T 32905 example 1 ("abc")', (t) => {
  t.is(sm3(Buffer.from('abc')).toString('hex'), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
});

test('sm3: GB/T 32905 example 2 (512-bit "abcd" x 16)', (t) => {
  t.is(sm3(Buffer.from('abcd'.repeat(16))).toString('hex'), 'debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732');
});

test('hmac-sm3: matches the RFC 2104 construction over SM3', (t) => {
  for (const keyLength of [0, 16, 64, 100]) {
    const key = randomBytes(keyLength);
    const message = randomBytes(77);
    const block = Buffer.alloc(64);
    (key.length > 64 ? sm3(key) : key).copy(block);
    const ipad = Buffer.from(block.map((byte) => byte ^ 0x36));
    const opad = Buffer.from(block.map((byte) => byte ^ 0x5c));
    const expected = sm3(opad, sm3(ipad, message));
    t.deepEqual(hmacSm3(key, message), expected, `key length ${keyLength}`);
  }
});

test('prf: P_hash construction gives the published TLS 1.2 P_SHA256 vector', (t) => {
  // The widely used P_SHA256 test vector (secret, "test label", seed, 100 bytes).
  const output = pHash('sha256', hex('9bbe436ba940f017b17652849a71db35'), 'test label', hex('a0ba9f936cda311827a6f796ffd5198c'), 100);
  t.is(output.toString('hex'), 'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66');
});

test('prf: P_SM3 first block equals HMAC(secret, HMAC(secret, label+seed) + label+seed)', (t) => {
  const secret = randomBytes(48);
  const seed = randomBytes(64);
  const labelSeed = Buffer.concat([Buffer.from('master secret'), seed]);
  const a1 = hmacSm3(secret, labelSeed);
  const a2 = hmacSm3(secret, a1);
  const expected = Buffer.concat([hmacSm3(secret, a1, labelSeed), hmacSm3(secret, a2, labelSeed)]).subarray(0, 48);
  t.deepEqual(prf(secret, 'master secret', seed, 48), expected);
});

// --- SM4, GB/T 32907-2016 Appendix A --------------------------------------

test('sm4: GB/T 32907 example 1 (one block, native sm4-ecb)', (t) => {
  const key = hex('0123456789abcdeffedcba9876543210');
  const cipher = createCipheriv('sm4-ecb', key, null);
  cipher.setAutoPadding(false);
  t.is(cipher.update(key).toString('hex'), '681edf34d206965e86b3e94f536e4246');
});

test('sm4: GB/T 32907 example 2 (1,000,000 encryptions)', (t) => {
  const key = hex('0123456789abcdeffedcba9876543210');
  const cipher = createCipheriv('sm4-ecb', key, null);
  cipher.setAutoPadding(false);
  let block = Buffer.from(key);
  for (let i = 0; i < 1_000_000; i++) block = cipher.update(block);
  t.is(block.toString('hex'), '595298c7c6fd271f0402f804c33d3f66');
});

// --- GCM -----------------------------------------------------------------

test('gcm: NIST SP 800-38D test case 2 with AES-128', (t) => {
  const sealed = new GcmKey('aes-128', Buffer.alloc(16)).seal(Buffer.alloc(12), Buffer.alloc(16), Buffer.alloc(0));
  t.is(sealed.ciphertext.toString('hex'), '0388dace60b6a392f328c2b971b2fe78');
  t.is(sealed.tag.toString('hex'), 'ab6e47d42cec13bdf53a67b21257bddf');
});

test('gcm: GHASH-based AES-128-GCM equals native aes-128-gcm on random inputs', (t) => {
  for (let i = 0; i < 40; i++) {
    const key = randomBytes(16);
    const nonce = randomBytes(12);
    const plaintext = randomBytes(i * 13);
    const aad = randomBytes(i % 3 === 0 ? 13 : i);
    const native = createCipheriv('aes-128-gcm', key, nonce);
    native.setAAD(aad);
    const expected = Buffer.concat([native.update(plaintext), native.final()]);
    const sealed = new GcmKey('aes-128', key).seal(nonce, plaintext, aad);
    t.deepEqual(sealed.ciphertext, expected);
    t.deepEqual(sealed.tag, native.getAuthTag());
  }
});

test('gcm: RFC 8998 appendix A.1 SM4-GCM vector', (t) => {
  const key = new GcmKey('sm4', hex('0123456789abcdeffedcba9876543210'));
  const plaintext = hex('aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccddddddddddddddddeeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa');
  const aad = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
  const nonce = hex('00001234567800000000abcd');
  const sealed = key.seal(nonce, plaintext, aad);
  t.is(sealed.ciphertext.toString('hex'), '17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d');
  t.is(sealed.tag.toString('hex'), '83de3541e4c2b58177e065a9bf7b62ec');
  t.deepEqual(key.open(nonce, sealed.ciphertext, sealed.tag, aad), plaintext);
  const badTag = Buffer.from(sealed.tag);
  badTag[0] = badTag[0]! ^ 1;
  t.is(key.open(nonce, sealed.ciphertext, badTag, aad), null);
});

test('gcm: SM4-GCM agrees with sm-crypto-v2 GCM on random inputs', (t) => {
  for (let i = 0; i < 10; i++) {
    const keyBytes = randomBytes(16);
    const nonce = randomBytes(12);
    const plaintext = randomBytes(1 + i * 37);
    const aad = randomBytes(13);
    const sealed = new GcmKey('sm4', keyBytes).seal(nonce, plaintext, aad);
    const other = smV2Sm4.encrypt(new Uint8Array(plaintext), new Uint8Array(keyBytes), { mode: 'gcm', iv: new Uint8Array(nonce), associatedData: new Uint8Array(aad), output: 'array', outputTag: true, padding: 'none' });
    t.is(Buffer.from(other.output).toString('hex'), sealed.ciphertext.toString('hex'));
    t.is(Buffer.from(other.tag ?? []).toString('hex'), sealed.tag.toString('hex'));
  }
});

// GHASH values published with the GCM specification (McGrew and Viega,
// "The Galois/Counter Mode of Operation", test cases 2, 3 and 4).
test('ghash: GCM specification test cases 2, 3 and 4', (t) => {
  const ghash = (h: string, aad: string, ciphertext: string): string => {
    const a = hex(aad);
    const c = hex(ciphertext);
    return new Ghash(hex(h)).update(a).update(c).updateLengths(a.length, c.length).digest().toString('hex');
  };
  t.is(ghash('66e94bd4ef8a2c3b884cfa59ca342b2e', '', '0388dace60b6a392f328c2b971b2fe78'), 'f38cbb1ad69223dcc3457ae5b6b0f885');
  const c3 = '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985';
  t.is(ghash('b83b533708bf535d0aa6e52980d53b78', '', c3), '7f1b32b81b820d02614f8895ac1d4eac');
  t.is(ghash('b83b533708bf535d0aa6e52980d53b78', 'feedfacedeadbeeffeedfacedeadbeefabaddad2', c3.slice(0, 120)), '698e57f70e6ecc7fd9463b7260a9ae5f');
});

test('ghash: equals OpenSSL\'s GHASH (tag XOR E(K, J0) of native aes-128-gcm) for lengths 0-80 and 16 KiB', (t) => {
  for (const length of [...Array.from({ length: 81 }, (_, i) => i), 16_384, 16_383]) {
    const key = randomBytes(16);
    const nonce = randomBytes(12);
    const aad = randomBytes(length % 29);
    const native = createCipheriv('aes-128-gcm', key, nonce);
    native.setAAD(aad);
    const ciphertext = Buffer.concat([native.update(randomBytes(length)), native.final()]);
    const ecb = createCipheriv('aes-128-ecb', key, null);
    ecb.setAutoPadding(false);
    const h = ecb.update(Buffer.alloc(16));
    const mask = ecb.update(Buffer.concat([nonce, Buffer.from([0, 0, 0, 1])]));
    const expected = Buffer.from(native.getAuthTag().map((byte, i) => byte ^ mask[i]!));
    t.deepEqual(new Ghash(h).update(aad).update(ciphertext).updateLengths(aad.length, ciphertext.length).digest(), expected, `length ${length}`);
  }
});

test('ghash: absorbing in pieces equals absorbing padded blocks', (t) => {
  const h = randomBytes(16);
  const data = randomBytes(48);
  const a = new Ghash(h);
  a.update(data);
  const b = new Ghash(h);
  b.update(data.subarray(0, 16));
  b.update(data.subarray(16, 48));
  t.deepEqual(a.digest(), b.digest());
});

// --- SM2, GB/T 32918 / GM/T 0003 examples ----------------------------------

const testCurve = new Curve(SM2_TEST_CURVE_PARAMS);
const referenceSm2Curve = new Curve(SM2_CURVE_PARAMS);

test('sm2 sign: GB/T 32918.2 test-curve example (ALICE123@YAHOO.COM)', (t) => {
  const keyPair = sm2KeyPairFromPrivate(hex('128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263'), testCurve);
  const id = Buffer.from('ALICE123@YAHOO.COM');
  const e = sm2MessageDigest(testCurve, keyPair.publicKey, Buffer.from('message digest'), id);
  const signature = sm2SignDigestWith(testCurve, keyPair.privateKey, e, () => 0x6cb28d99385c175c94f94e934817663fc176d925dd72b727260dbaae1fb2f96fn);
  t.is(signature.r.toString(16), '40f1ec59f793d9f49e09dcef49130d4194f79fb1eed2caa55bacdb49c4e755d1');
  t.is(signature.s.toString(16), '6fc6dac32c5d5cf10c77dfb20f7c2eb667a457872fb09ec56327a67ec7deebe7');
  t.true(sm2VerifyDigestWith(testCurve, keyPair.publicKey, e, signature));
  t.false(sm2VerifyDigestWith(testCurve, keyPair.publicKey, e + 1n, signature));
});

const annexPrivateKey = hex('3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8');
const annexK = 0x59276e27d506861a16680f3ad9c02dccef3cc1fa3cdbe4ce6d54b80deac1bc21n;

test('sm2 sign: GB/T 32918.5 Annex A recommended-curve example (default ID)', (t) => {
  for (const curve of [referenceSm2Curve, sm2Curve]) {
    const keyPair = sm2KeyPairFromPrivate(annexPrivateKey, curve);
    const e = sm2MessageDigest(curve, keyPair.publicKey, Buffer.from('message digest'), SM2_DEFAULT_ID);
    const signature = sm2SignDigestWith(curve, keyPair.privateKey, e, () => annexK);
    t.is(signature.r.toString(16), 'f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3');
    t.is(signature.s.toString(16), 'b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa');
  }
});

test('sm2 sign: sm-crypto-v2 reproduces the Annex A signature and sm2Verify accepts it', (t) => {
  const keyPair = sm2KeyPairFromPrivate(annexPrivateKey);
  const x1 = sm2Curve.multiply(annexK, sm2Curve.g)!.x;
  const signatureHex = smV2.doSignature(new Uint8Array(Buffer.from('message digest')), keyPair.privateKey.toString('hex'), {
    der: true, hash: true, publicKey: keyPair.publicKey.toString('hex'), userId: '1234567812345678', pointPool: [{ k: annexK, x1 }],
  });
  const decoded = decodeSm2Signature(Buffer.from(signatureHex, 'hex'));
  t.is(decoded?.r.toString(16), 'f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3');
  t.is(decoded?.s.toString(16), 'b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa');
  const der = encodeSm2Signature(0xf5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3n, 0xb1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aan);
  t.true(sm2Verify(keyPair.publicKey, Buffer.from('message digest'), der));
  t.false(sm2Verify(keyPair.publicKey, Buffer.from('message digesT'), der));
  t.false(sm2Verify(keyPair.publicKey, Buffer.from('message digest'), der, Buffer.from('other-id')));
});

test('sm2 sign: library signatures verify with the reference code and vice versa', (t) => {
  const keyPair = generateSm2KeyPair();
  const message = randomBytes(100);
  const signature = decodeSm2Signature(sm2Sign(keyPair, message))!;
  const e = sm2MessageDigest(referenceSm2Curve, keyPair.publicKey, message, SM2_DEFAULT_ID);
  t.true(sm2VerifyDigestWith(referenceSm2Curve, keyPair.publicKey, e, signature));
  const own = sm2SignDigestWith(referenceSm2Curve, keyPair.privateKey, e, () => bytesToBigInt(randomBytes(31)));
  t.true(sm2Verify(keyPair.publicKey, message, encodeSm2Signature(own.r, own.s)));
});

test('sm2 encrypt: test-curve example, GM/T 0009 DER ciphertext', (t) => {
  const keyPair = sm2KeyPairFromPrivate(hex('1649AB77A00637BD5E2EFE283FBF353534AA7F7CB89463F208DDBC2920BB0DA0'), testCurve);
  const ciphertext = sm2EncryptWith(testCurve, keyPair.publicKey, Buffer.from('encryption standard'), () => 0x4c62eefd6ecfc2b95b92fd6c3d9575148afa17425546d49018e5388d49dd7b4fn);
  const der = encodeSm2Ciphertext(ciphertext);
  t.is(der.toString('hex').toUpperCase(), '307B0220245C26FB68B1DDDDB12C4B6BF9F2B6D5FE60A383B0D18D1C4144ABF17F6252E7022076CB9264C2A7E88E52B19903FDC47378F605E36811F5C07423A24B84400F01B804209C3D7360C30156FAB7C80A0276712DA9D8094A634B766D3A285E07480653426D0413650053A89B41C418B0C3AAD00D886C00286467');
  t.is(sm2DecryptWith(testCurve, keyPair.privateKey, decodeSm2Ciphertext(der)!)?.toString(), 'encryption standard');
});

const annexCiphertext = hex('307C022004EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73022100E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0042059983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766041321886CA989CA9C7D58087307CA93092D651EFA');

test('sm2 encrypt: GB/T 32918.5 Annex C recommended-curve example', (t) => {
  const keyPair = sm2KeyPairFromPrivate(annexPrivateKey);
  const ciphertext = sm2EncryptWith(sm2Curve, keyPair.publicKey, Buffer.from('encryption standard'), () => annexK);
  t.deepEqual(encodeSm2Ciphertext(ciphertext), annexCiphertext);
  // The production decryptor (OpenSSL ladder + y recovery) reads the published ciphertext.
  t.is(sm2Decrypt(keyPair.privateKey, annexCiphertext)?.toString(), 'encryption standard');
  const tampered = Buffer.from(annexCiphertext);
  tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
  t.is(sm2Decrypt(keyPair.privateKey, tampered), null);
});

test('sm2 encrypt: library ciphertexts decrypt with the reference code', (t) => {
  const keyPair = generateSm2KeyPair();
  const premaster = randomBytes(48);
  const der = sm2Encrypt(keyPair.publicKey, premaster);
  const parsed = decodeSm2Ciphertext(der);
  t.truthy(parsed);
  t.deepEqual(sm2DecryptWith(referenceSm2Curve, keyPair.privateKey, parsed!), premaster);
  t.is(sm2Decrypt(keyPair.privateKey, Buffer.from('3003020100', 'hex')), null);
});

test('sm2 curve: native multiplication (OpenSSL ladder + y recovery) equals the reference double-and-add', (t) => {
  const n = SM2_CURVE_PARAMS.n;
  const points = [sm2Curve.g, ...Array.from({ length: 4 }, () => referenceSm2Curve.decodePoint(generateSm2KeyPair().publicKey)!)];
  const scalars = [1n, 2n, 3n, n - 3n, n - 2n, n - 1n, n, n + 5n, ...Array.from({ length: 6 }, () => bytesToBigInt(randomBytes(32)))];
  for (const point of points) {
    for (const scalar of scalars) {
      t.deepEqual(sm2Curve.multiply(scalar, point), referenceSm2Curve.multiply(scalar, point), `k = ${scalar.toString(16)}`);
    }
  }
});

test('sm2 decrypt: the y of [d]C1 is recovered exactly (C1 negated is rejected)', (t) => {
  const keyPair = generateSm2KeyPair();
  const message = randomBytes(48);
  const parsed = decodeSm2Ciphertext(sm2Encrypt(keyPair.publicKey, message))!;
  t.deepEqual(sm2Decrypt(keyPair.privateKey, encodeSm2Ciphertext(parsed)), message);
  const negated = encodeSm2Ciphertext({ ...parsed, c1: { x: parsed.c1.x, y: SM2_CURVE_PARAMS.p - parsed.c1.y } });
  t.is(sm2Decrypt(keyPair.privateKey, negated), null);
  t.is(sm2DecryptWith(referenceSm2Curve, keyPair.privateKey, decodeSm2Ciphertext(negated)!), null);
  const offCurve = encodeSm2Ciphertext({ ...parsed, c1: { x: parsed.c1.x, y: parsed.c1.y ^ 1n } });
  t.is(sm2Decrypt(keyPair.privateKey, offCurve), null);
});

test('sm2 key exchange: GM/T 0003.3 / GB/T 32918.3 test-curve example (128-bit key)', (t) => {
  const a = sm2KeyPairFromPrivate(hex('6FCBA2EF9AE0AB902BC3BDE3FF915D44BA4CC78F88E2F8E7F8996D3B8CCEEDEE'), testCurve);
  const ra = sm2KeyPairFromPrivate(hex('83A2C9C8B96E5AF70BD480B472409A9A327257F1EBB73F5B073354B248668563'), testCurve);
  const b = sm2KeyPairFromPrivate(hex('5E35D7D3F3C54DBAC72E61819E730B019A84208CA3A35E4C2E353DFCCB2A3B53'), testCurve);
  const rb = sm2KeyPairFromPrivate(hex('33FE21940342161C55619C4A0C060293D543C80AF19748CE176D83477DE71C80'), testCurve);
  const idA = Buffer.from('ALICE123@YAHOO.COM');
  const idB = Buffer.from('BILL456@YAHOO.COM');
  const ka = sm2KeyExchange({ curve: testCurve, initiator: true, self: a, selfEphemeral: ra, selfId: idA, peerPublicKey: b.publicKey, peerEphemeralPublicKey: rb.publicKey, peerId: idB, keyBytes: 16 });
  const kb = sm2KeyExchange({ curve: testCurve, initiator: false, self: b, selfEphemeral: rb, selfId: idB, peerPublicKey: a.publicKey, peerEphemeralPublicKey: ra.publicKey, peerId: idA, keyBytes: 16 });
  t.is(ka.toString('hex'), '55b0ac62a6b927ba23703832c853ded4');
  t.is(kb.toString('hex'), '55b0ac62a6b927ba23703832c853ded4');
});

test('sm2 key exchange: recommended curve agrees with sm-crypto-v2 calculateSharedKey', (t) => {
  const server = generateSm2KeyPair();
  const serverEphemeral = generateSm2KeyPair();
  const client = generateSm2KeyPair();
  const clientEphemeral = generateSm2KeyPair();
  const ours = sm2KeyExchange({ initiator: true, self: server, selfEphemeral: serverEphemeral, peerPublicKey: client.publicKey, peerEphemeralPublicKey: clientEphemeral.publicKey, keyBytes: 48 });
  const theirs = smV2.calculateSharedKey(
    { privateKey: client.privateKey.toString('hex'), publicKey: client.publicKey.toString('hex') },
    { privateKey: clientEphemeral.privateKey.toString('hex'), publicKey: clientEphemeral.publicKey.toString('hex') },
    server.publicKey.toString('hex'), serverEphemeral.publicKey.toString('hex'), 48, true);
  t.is(Buffer.from(theirs).toString('hex'), ours.toString('hex'));
  const reference = sm2KeyExchange({ curve: referenceSm2Curve, initiator: false, self: client, selfEphemeral: clientEphemeral, peerPublicKey: server.publicKey, peerEphemeralPublicKey: serverEphemeral.publicKey, keyBytes: 48 });
  t.is(reference.toString('hex'), ours.toString('hex'));
});

test('sm3: native digest equals createHash("sm3") of concatenated parts', (t) => {
  const parts = [randomBytes(5), randomBytes(70)];
  t.deepEqual(sm3(...parts), createHash('sm3').update(Buffer.concat(parts)).digest());
});

test('gcm: opening into the ciphertext itself gives the plaintext, with SM4 and with AES (the portable path)', (t) => {
  for (const [cipher, keyBytes] of [['sm4', 16], ['aes-128', 16]] as const) {
    const key = new GcmKey(cipher, randomBytes(keyBytes));
    const nonce = randomBytes(12);
    const aad = randomBytes(13);
    const plaintext = randomBytes(1000);
    const sealed = key.seal(nonce, plaintext, aad);
    const where = Buffer.from(sealed.ciphertext);
    const opened = key.open(nonce, where, sealed.tag, aad, where);
    t.deepEqual(opened, plaintext, cipher);
    t.true(opened !== null && opened.buffer === where.buffer && opened.byteOffset === where.byteOffset, `${cipher}: in place`);
  }
});
