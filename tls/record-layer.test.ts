import test from 'ava';
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { sm4 as smV2Sm4 } from 'sm-crypto-v2';
import { TlcpRecordError } from './errors.ts';
import {
  CbcProtection,
  ContentType,
  GcmProtection,
  RECORD_HEADER_BYTES,
  RECORD_PLAINTEXT_BYTES_MAX,
  RecordParser,
  TLCP_VERSION,
  sealRecords,
  type RecordProtection,
  type TlcpRecord,
} from './record-layer.ts';
import { seededRandom, testSeed } from './test-fixtures.ts';

// Independent, per-record "textbook" codecs of GB/T 38636 §6.3.3: a fresh
// cipher context per record, the IV read from the record. The production
// classes keep one context per connection; these tests hold them to the
// same bytes on the wire in both directions.

function macHeader(sequence: number, type: number, length: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeBigUInt64BE(BigInt(sequence), 0);
  header[8] = type;
  header.writeUInt16BE(TLCP_VERSION, 9);
  header.writeUInt16BE(length, 11);
  return header;
}

function textbookCbcSeal(encKey: Buffer, macKey: Buffer, sequence: number, type: number, plaintext: Buffer): Buffer {
  const mac = createHmac('sm3', macKey).update(macHeader(sequence, type, plaintext.length)).update(plaintext).digest();
  const padLength = (16 - ((plaintext.length + 32 + 1) % 16)) % 16;
  const iv = randomBytes(16);
  const cipher = createCipheriv('sm4-cbc', encKey, iv);
  cipher.setAutoPadding(false);
  return Buffer.concat([iv, cipher.update(Buffer.concat([plaintext, mac, Buffer.alloc(padLength + 1, padLength)])), cipher.final()]);
}

function textbookCbcOpen(encKey: Buffer, macKey: Buffer, sequence: number, type: number, fragment: Buffer): Buffer {
  const decipher = createDecipheriv('sm4-cbc', encKey, fragment.subarray(0, 16));
  decipher.setAutoPadding(false);
  const decrypted = Buffer.concat([decipher.update(fragment.subarray(16)), decipher.final()]);
  const padLength = decrypted[decrypted.length - 1]!;
  const content = decrypted.subarray(0, decrypted.length - padLength - 1 - 32);
  const mac = decrypted.subarray(content.length, content.length + 32);
  const expected = createHmac('sm3', macKey).update(macHeader(sequence, type, content.length)).update(content).digest();
  if (!mac.equals(expected)) throw new Error(`textbook: MAC mismatch at record ${sequence}`);
  return content;
}

/** SM4-GCM by sm-crypto-v2: a second, independent GCM implementation. */
function textbookGcmSeal(encKey: Buffer, salt: Buffer, sequence: number, type: number, plaintext: Buffer): Buffer {
  const explicit = Buffer.alloc(8);
  explicit.writeBigUInt64BE(BigInt(sequence));
  const sealed = smV2Sm4.encrypt(new Uint8Array(plaintext), new Uint8Array(encKey), {
    mode: 'gcm', iv: new Uint8Array(Buffer.concat([salt, explicit])), associatedData: new Uint8Array(macHeader(sequence, type, plaintext.length)), output: 'array', outputTag: true, padding: 'none',
  });
  return Buffer.concat([explicit, Buffer.from(sealed.output), Buffer.from(sealed.tag ?? [])]);
}

function textbookGcmOpen(encKey: Buffer, salt: Buffer, sequence: number, type: number, fragment: Buffer): Buffer {
  const ciphertext = fragment.subarray(8, fragment.length - 16);
  const opened = smV2Sm4.decrypt(new Uint8Array(ciphertext), new Uint8Array(encKey), {
    mode: 'gcm', iv: new Uint8Array(Buffer.concat([salt, fragment.subarray(0, 8)])), associatedData: new Uint8Array(macHeader(sequence, type, ciphertext.length)),
    tag: new Uint8Array(fragment.subarray(fragment.length - 16)), output: 'array', padding: 'none',
  });
  return Buffer.from(opened);
}

function splitRecords(bytes: Buffer): TlcpRecord[] {
  const parser = new RecordParser();
  parser.push(bytes);
  const records: TlcpRecord[] = [];
  for (let record = parser.next(); record; record = parser.next()) records.push(record);
  return records;
}

/** Feeds `stream` to a new parser in chunks of 1 to `chunkMax` bytes; hands over each record as it completes. */
function parseInRandomChunks(stream: Buffer, chunkMax: number, random: () => number, onRecord: (record: TlcpRecord) => void): void {
  const parser = new RecordParser();
  for (let offset = 0; offset < stream.length;) {
    const size = 1 + Math.floor(random() * chunkMax);
    parser.push(stream.subarray(offset, offset + size));
    offset += size;
    for (let record = parser.next(); record; record = parser.next()) onRecord(record);
  }
}

const LENGTHS = [1, 15, 16, 17, 31, 32, 33, 47, 48, 100, 1000, 16_383, RECORD_PLAINTEXT_BYTES_MAX, 5];

type Suite = {
  name: string;
  make: (key: Buffer, extra: Buffer) => RecordProtection;
  extraBytes: number;
  seal: (key: Buffer, extra: Buffer, sequence: number, type: number, plaintext: Buffer) => Buffer;
  open: (key: Buffer, extra: Buffer, sequence: number, type: number, fragment: Buffer) => Buffer;
};

const SUITES: Suite[] = [
  { name: 'cbc', make: (key, macKey) => new CbcProtection(key, macKey), extraBytes: 32, seal: textbookCbcSeal, open: textbookCbcOpen },
  { name: 'gcm', make: (key, salt) => new GcmProtection(key, salt), extraBytes: 4, seal: textbookGcmSeal, open: textbookGcmOpen },
];

for (const suite of SUITES) {
  test(`record ${suite.name}: a run of records sealed on one context opens record by record with fresh contexts`, (t) => {
    const key = randomBytes(16);
    const extra = randomBytes(suite.extraBytes);
    const sealer = suite.make(key, extra);
    const plaintexts = LENGTHS.map((length) => randomBytes(length));
    const wire = Buffer.concat(plaintexts.map((plaintext) => sealRecords(sealer, ContentType.application_data, plaintext)));
    const records = splitRecords(wire);
    t.is(records.length, plaintexts.length);
    records.forEach((record, sequence) => {
      t.is(record.type, ContentType.application_data);
      t.is(record.version, TLCP_VERSION);
      t.deepEqual(suite.open(key, extra, sequence, record.type, record.fragment), plaintexts[sequence]);
    });
  });

  test(`record ${suite.name}: records sealed with fresh contexts open in sequence on one context`, (t) => {
    const key = randomBytes(16);
    const extra = randomBytes(suite.extraBytes);
    const opener = suite.make(key, extra);
    LENGTHS.forEach((length, sequence) => {
      const plaintext = randomBytes(length);
      const type = sequence % 3 === 0 ? ContentType.handshake : ContentType.application_data;
      t.deepEqual(opener.open(type, suite.seal(key, extra, sequence, type, plaintext)), plaintext);
    });
  });

  test(`record ${suite.name}: a flipped bit, a replayed or a reordered record fails with bad_record_mac`, (t) => {
    const key = randomBytes(16);
    const extra = randomBytes(suite.extraBytes);
    const sealer = suite.make(key, extra);
    const records = [0, 1, 2].map(() => splitRecords(sealRecords(sealer, ContentType.application_data, randomBytes(100)))[0]!.fragment);
    for (let bit = 0; bit < records[0]!.length * 8; bit += 7) {
      const flipped = Buffer.from(records[0]!);
      flipped[bit >> 3] = flipped[bit >> 3]! ^ (1 << (bit & 7));
      const error = t.throws<TlcpRecordError>(() => suite.make(key, extra).open(ContentType.application_data, flipped));
      t.is(error?.alert, 20, `bit ${bit}`);
    }
    // Copies: opening may decrypt a fragment in place, and each check needs the bytes as sent.
    const replay = suite.make(key, extra);
    replay.open(ContentType.application_data, Buffer.from(records[0]!));
    t.throws(() => replay.open(ContentType.application_data, Buffer.from(records[0]!)), { instanceOf: TlcpRecordError });
    const reorder = suite.make(key, extra);
    t.throws(() => reorder.open(ContentType.application_data, Buffer.from(records[1]!)), { instanceOf: TlcpRecordError });
    t.throws(() => suite.make(key, extra).open(ContentType.handshake, Buffer.from(records[0]!)), { instanceOf: TlcpRecordError }, 'the type is authenticated');
  });
}

test('record: sealRecords splits at 2^14 bytes and writes each header', (t) => {
  const sealer = new CbcProtection(randomBytes(16), randomBytes(32));
  const data = randomBytes(2 * RECORD_PLAINTEXT_BYTES_MAX + 7000);
  const wire = sealRecords(sealer, ContentType.application_data, data);
  const records = splitRecords(wire);
  // IV(16) + plaintext + MAC(32) + padding to whole blocks (padding byte included).
  const sealed = (length: number): number => 16 + Math.ceil((length + 32 + 1) / 16) * 16;
  t.deepEqual(records.map((record) => record.fragment.length), [sealed(16_384), sealed(16_384), sealed(7000)]);
  t.is(wire.length, records.reduce((sum, record) => sum + RECORD_HEADER_BYTES + record.fragment.length, 0));
  t.is(sealRecords(sealer, ContentType.application_data, Buffer.alloc(0)).length, 0);
});

test('record parser: any split of a record stream gives the same records (seeded)', (t) => {
  const seed = testSeed();
  t.log(`seed ${seed} (ADMQ_SEED=${seed} replays)`);
  const random = seededRandom(seed);
  const sealer = new GcmProtection(randomBytes(16), randomBytes(4));
  const wire = Buffer.concat(LENGTHS.map((length) => sealRecords(sealer, ContentType.application_data, randomBytes(length))));
  const expected = splitRecords(wire).map((record) => record.fragment.toString('hex'));
  for (let round = 0; round < 30; round++) {
    const seen: string[] = [];
    parseInRandomChunks(wire, round < 10 ? 8 : round < 20 ? 600 : 40_000, random, (record) => seen.push(record.fragment.toString('hex')));
    t.deepEqual(seen, expected, `round ${round}`);
  }
});

test('record gcm: a record is decrypted where it lies; a record that fails its check is left as it came', (t) => {
  const key = randomBytes(16);
  const salt = randomBytes(4);
  const sealer = new GcmProtection(key, salt);
  const plaintext = randomBytes(1000);
  const fragment = splitRecords(sealRecords(sealer, ContentType.application_data, plaintext))[0]!.fragment;
  const opened = new GcmProtection(key, salt).open(ContentType.application_data, fragment);
  t.deepEqual(opened, plaintext);
  t.is(opened.buffer, fragment.buffer, 'no new buffer');
  t.is(opened.byteOffset, fragment.byteOffset + 8, 'the plaintext took the ciphertext\'s place, after the explicit nonce');

  const tampered = splitRecords(sealRecords(sealer, ContentType.application_data, plaintext))[0]!.fragment;
  tampered[20] = tampered[20]! ^ 1;
  const asSent = Buffer.from(tampered);
  t.throws(() => new GcmProtection(key, salt).open(ContentType.application_data, tampered), { instanceOf: TlcpRecordError });
  t.deepEqual(tampered, asSent, 'nothing decrypted before the tag verified');
});

test('record parser: records opened in place as they arrive, in any split of the stream, give the plaintexts sent (seeded)', (t) => {
  const seed = testSeed();
  t.log(`seed ${seed} (ADMQ_SEED=${seed} replays)`);
  const random = seededRandom(seed);
  const key = randomBytes(16);
  const salt = randomBytes(4);
  const plaintexts = LENGTHS.map((length) => randomBytes(length));
  const sealer = new GcmProtection(key, salt);
  const wire = Buffer.concat(plaintexts.map((plaintext) => sealRecords(sealer, ContentType.application_data, plaintext)));
  for (let round = 0; round < 30; round++) {
    // Each round decrypts its own copy of the stream in place.
    const opener = new GcmProtection(key, salt);
    const seen: Buffer[] = [];
    parseInRandomChunks(Buffer.from(wire), round < 10 ? 8 : round < 20 ? 600 : 70_000, random, (record) => seen.push(Buffer.from(opener.open(record.type, record.fragment))));
    t.deepEqual(seen, plaintexts, `round ${round}`);
  }
});

test('record parser: a record inside one chunk is a view of it; one that straddles chunks is a copy', (t) => {
  const sealer = new GcmProtection(randomBytes(16), randomBytes(4));
  const wire = Buffer.concat([100, 200, 300].map((length) => sealRecords(sealer, ContentType.application_data, randomBytes(length))));
  const first = RECORD_HEADER_BYTES + 8 + 100 + 16;
  const second = RECORD_HEADER_BYTES + 8 + 200 + 16;
  const overlaps = (x: Buffer, y: Buffer): boolean => x.buffer === y.buffer && x.byteOffset < y.byteOffset + y.length && y.byteOffset < x.byteOffset + x.length;
  const parser = new RecordParser();
  const chunkA = wire.subarray(0, first + 50);
  const chunkB = wire.subarray(first + 50);
  parser.push(chunkA);
  parser.push(chunkB);
  const a = parser.next()!;
  t.true(a.fragment.buffer === chunkA.buffer && a.fragment.byteOffset === chunkA.byteOffset + RECORD_HEADER_BYTES, 'a view of the first chunk');
  const b = parser.next()!;
  t.false(overlaps(b.fragment, chunkA) || overlaps(b.fragment, chunkB), 'a copy');
  t.true(b.fragment.equals(wire.subarray(first + RECORD_HEADER_BYTES, first + second)));
  const c = parser.next()!;
  t.true(c.fragment.buffer === chunkB.buffer && c.fragment.byteOffset === chunkB.byteOffset + (first + second - first - 50) + RECORD_HEADER_BYTES, 'the record after it is a view of the second chunk');
  t.is(parser.next(), null);
});
