/**
 * SM3 (GB/T 32905-2016), HMAC-SM3 and the TLCP PRF, all on Node's native
 * OpenSSL implementation.
 */
import { createHash, createHmac } from 'node:crypto';

export const SM3_DIGEST_BYTES = 32;

export function sm3(...parts: Buffer[]): Buffer {
  const hash = createHash('sm3');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

export function hmacSm3(key: Buffer, ...parts: Buffer[]): Buffer {
  const hmac = createHmac('sm3', key);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

/**
 * PRF(secret, label, seed) = P_SM3(secret, label + seed), the TLS 1.2 P_hash
 * construction (RFC 5246 §5) with HMAC-SM3, as GB/T 38636-2020 §6.5.1 says.
 */
export function prf(secret: Buffer, label: string, seed: Buffer, outputBytes: number): Buffer {
  return pHash('sm3', secret, label, seed, outputBytes);
}

/** P_hash of RFC 5246 §5 over any Node digest (tests run it with SHA-256). */
export function pHash(digest: string, secret: Buffer, label: string, seed: Buffer, outputBytes: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const mac = (...parts: Buffer[]): Buffer => {
    const hmac = createHmac(digest, secret);
    for (const part of parts) hmac.update(part);
    return hmac.digest();
  };
  const blocks: Buffer[] = [];
  let produced = 0;
  let a: Buffer = labelSeed;
  while (produced < outputBytes) {
    a = mac(a);
    const block = mac(a, labelSeed);
    blocks.push(block);
    produced += block.length;
  }
  return Buffer.concat(blocks).subarray(0, outputBytes);
}

/** KDF of GB/T 32918.4 §5.4.3: SM3(Z || ct) for ct = 1, 2, ... (32-bit). */
export function sm2Kdf(z: Buffer, outputBytes: number): Buffer {
  const blocks: Buffer[] = [];
  const counter = Buffer.alloc(4);
  for (let ct = 1, produced = 0; produced < outputBytes; ct++, produced += SM3_DIGEST_BYTES) {
    counter.writeUInt32BE(ct);
    blocks.push(sm3(z, counter));
  }
  return Buffer.concat(blocks).subarray(0, outputBytes);
}
