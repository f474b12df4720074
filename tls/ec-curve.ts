/**
 * Short-Weierstrass curve arithmetic over prime fields with BigInt. It is the
 * independent reference behind the SM2 code: the published SM2 examples of
 * GB/T 32918 (and GM/T 0003) use a test curve as well as the recommended one,
 * so the protocol code is written against this `Curve` interface and the
 * known-answer tests run it on both. The recommended curve plugs in the
 * faster scalar multiplication of sm-crypto-v2 (see sm2.ts).
 */

export interface Point {
  readonly x: bigint;
  readonly y: bigint;
}

export interface CurveParams {
  readonly name: string;
  readonly p: bigint;
  readonly a: bigint;
  readonly b: bigint;
  readonly gx: bigint;
  readonly gy: bigint;
  readonly n: bigint;
}

export function mod(value: bigint, modulus: bigint): bigint {
  const r = value % modulus;
  return r < 0n ? r + modulus : r;
}

export function modInverse(value: bigint, modulus: bigint): bigint {
  let [oldR, r] = [mod(value, modulus), modulus];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw new RangeError('value is not invertible');
  return mod(oldS, modulus);
}

type Jacobian = { x: bigint; y: bigint; z: bigint };

export class Curve {
  readonly g: Point;
  readonly byteLength: number;

  constructor(readonly params: CurveParams) {
    this.g = { x: params.gx, y: params.gy };
    this.byteLength = Math.ceil(params.p.toString(16).length / 2);
  }

  get n(): bigint {
    return this.params.n;
  }

  isOnCurve(point: Point): boolean {
    const { p, a, b } = this.params;
    if (point.x < 0n || point.x >= p || point.y < 0n || point.y >= p) return false;
    return mod(point.y * point.y - (point.x * point.x * point.x + a * point.x + b), p) === 0n;
  }

  /** Affine addition; returns null for the point at infinity. */
  add(left: Point | null, right: Point | null): Point | null {
    if (left === null) return right;
    if (right === null) return left;
    const { p, a } = this.params;
    let lambda: bigint;
    if (left.x === right.x) {
      if (mod(left.y + right.y, p) === 0n) return null;
      lambda = mod((3n * left.x * left.x + a) * modInverse(2n * left.y, p), p);
    } else {
      lambda = mod((right.y - left.y) * modInverse(right.x - left.x, p), p);
    }
    const x = mod(lambda * lambda - left.x - right.x, p);
    const y = mod(lambda * (left.x - x) - left.y, p);
    return { x, y };
  }

  /**
   * Scalar multiplication for a secret scalar. Here it is the reference
   * double-and-add; the recommended curve overrides it with OpenSSL's
   * constant-time ladder (sm2.ts).
   */
  multiply(scalar: bigint, point: Point): Point | null {
    return this.multiplyPublic(scalar, point);
  }

  /**
   * Scalar multiplication in Jacobian coordinates (double-and-add). Its
   * time depends on the scalar's bits, so it is for public scalars only
   * (verification, the key exchange's x̄·R) and for the reference.
   */
  multiplyPublic(scalar: bigint, point: Point): Point | null {
    const k = mod(scalar, this.params.n);
    if (k === 0n) return null;
    let result: Jacobian | null = null;
    const base: Jacobian = { x: point.x, y: point.y, z: 1n };
    for (let bit = BigInt(k.toString(2).length - 1); bit >= 0n; bit--) {
      if (result !== null) result = this.double(result);
      if ((k >> bit) & 1n) result = result === null ? { ...base } : this.addJacobian(result, base);
    }
    return result === null ? null : this.toAffine(result);
  }

  private double(point: Jacobian): Jacobian | null {
    const { p, a } = this.params;
    if (point.y === 0n) return null;
    const ysq = mod(point.y * point.y, p);
    const s = mod(4n * point.x * ysq, p);
    const zsq = mod(point.z * point.z, p);
    const m = mod(3n * point.x * point.x + a * zsq * zsq, p);
    const x = mod(m * m - 2n * s, p);
    const y = mod(m * (s - x) - 8n * ysq * ysq, p);
    const z = mod(2n * point.y * point.z, p);
    return { x, y, z };
  }

  private addJacobian(left: Jacobian | null, right: Jacobian): Jacobian | null {
    if (left === null) return right;
    const { p } = this.params;
    const z1sq = mod(left.z * left.z, p);
    const z2sq = mod(right.z * right.z, p);
    const u1 = mod(left.x * z2sq, p);
    const u2 = mod(right.x * z1sq, p);
    const s1 = mod(left.y * z2sq * right.z, p);
    const s2 = mod(right.y * z1sq * left.z, p);
    if (u1 === u2) {
      if (s1 !== s2) return null;
      return this.double(left);
    }
    const h = mod(u2 - u1, p);
    const r = mod(s2 - s1, p);
    const h2 = mod(h * h, p);
    const h3 = mod(h * h2, p);
    const x = mod(r * r - h3 - 2n * u1 * h2, p);
    const y = mod(r * (u1 * h2 - x) - s1 * h3, p);
    const z = mod(h * left.z * right.z, p);
    return { x, y, z };
  }

  private toAffine(point: Jacobian): Point {
    const { p } = this.params;
    const zInv = modInverse(point.z, p);
    const zInv2 = mod(zInv * zInv, p);
    return { x: mod(point.x * zInv2, p), y: mod(point.y * zInv2 * zInv, p) };
  }

  encodeScalar(value: bigint): Buffer {
    return Buffer.from(value.toString(16).padStart(this.byteLength * 2, '0'), 'hex');
  }

  /** Uncompressed SEC1 encoding 04 || x || y. */
  encodePoint(point: Point): Buffer {
    return Buffer.concat([Buffer.from([4]), this.encodeScalar(point.x), this.encodeScalar(point.y)]);
  }

  /** Decodes an uncompressed point and checks that it lies on the curve. */
  decodePoint(bytes: Buffer): Point | null {
    if (bytes.length !== 1 + 2 * this.byteLength || bytes[0] !== 4) return null;
    const point = {
      x: BigInt('0x' + bytes.subarray(1, 1 + this.byteLength).toString('hex')),
      y: BigInt('0x' + bytes.subarray(1 + this.byteLength).toString('hex')),
    };
    return this.isOnCurve(point) ? point : null;
  }
}

export function bytesToBigInt(bytes: Buffer): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + bytes.toString('hex'));
}

/** The recommended SM2 curve, GB/T 32918.5-2017. */
export const SM2_CURVE_PARAMS: CurveParams = {
  name: 'sm2p256v1',
  p: 0xfffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffffn,
  a: 0xfffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffcn,
  b: 0x28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93n,
  gx: 0x32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7n,
  gy: 0xbc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0n,
  n: 0xfffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123n,
};

/** The 256-bit prime test curve of GB/T 32918 (GM/T 0003) Annex examples. */
export const SM2_TEST_CURVE_PARAMS: CurveParams = {
  name: 'sm2-test-fp256',
  p: 0x8542d69e4c044f18e8b92435bf6ff7de457283915c45517d722edb8b08f1dfc3n,
  a: 0x787968b4fa32c3fd2417842e73bbfeff2f3c848b6831d7e0ec65228b3937e498n,
  b: 0x63e4c6d3b23b0c849cf84241484bfe48f61d59a5b16ba06e6e12d1da27c5249an,
  gx: 0x421debd61b62eab6746434ebc3cc315e32220b3badd50bdc4c4e6c147fedd43dn,
  gy: 0x0680512bcbb42c07d47349d2153b70c4e5d7fdfcbfa36ea1a85841b9e46e09a2n,
  n: 0x8542d69e4c044f18e8b92435bf6ff7dd297720630485628d5ae74ee7c32e79b7n,
};
