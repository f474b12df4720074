// Signing with real SM2 certificates made by the same tooling as `admq certs`, and the
// ways a report can be tampered with or passed off.
import test from 'ava';
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issueDoubleCertificate, type DoubleCertificate, type Issued } from '../tls/index.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';
import { cmdReport, verifyFile } from './cli.ts';
import { canonicalJson, loadSigner, signDetached, signReport, verifyDetached, verifySignedReport, type Signer } from './signing.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`signing tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

let made: { ca: Issued; otherCa: Issued; shanghai: DoubleCertificate; beijing: DoubleCertificate; impostor: DoubleCertificate } | undefined;
function certs(): NonNullable<typeof made> {
  made ??= (() => {
    const ca = createCa({ commonName: 'admq test root' });
    const otherCa = createCa({ commonName: 'someone else' });
    return { ca, otherCa, shanghai: issueDoubleCertificate(ca, { region: 'shanghai' }), beijing: issueDoubleCertificate(ca, { region: 'beijing' }), impostor: issueDoubleCertificate(otherCa, { region: 'shanghai' }) };
  })();
  return made;
}

function signer(cert: DoubleCertificate = certs().shanghai, region = 'shanghai'): Signer {
  return loadSigner(region, cert.sign.certificatePem, cert.sign.keyPem);
}

const REPORT = { format: 'admq-lag-report', version: 1, id: 'r-1', generatedBy: 'shanghai', generatedAtMs: Date.now(), namespaces: [{ namespace: 'bank/pay', pairs: [{ from: 'shanghai', to: 'beijing', lag: { p99Ms: 812, maxMs: 9034 } }] }] };

test('signing: a signed report verifies against the CA; its chain and signer are named', (t) => {
  const signed = signReport(REPORT, signer(), Date.now());
  const result = verifySignedReport(JSON.parse(JSON.stringify(signed)), certs().ca.certificatePem);
  t.true(result.ok, result.problems.join('; '));
  t.is(result.region, 'shanghai');
  t.is(result.chain.length, 2);
  t.regex(result.signer ?? '', /OU=shanghai/);
});

test('signing: any change to a signed report fails verification, and says the content was changed', (t) => {
  const signed = JSON.parse(JSON.stringify(signReport(REPORT, signer(), Date.now()))) as typeof REPORT & { report: typeof REPORT; signature: Record<string, unknown> };
  const tampered = structuredClone(signed);
  (tampered.report.namespaces[0] as { pairs: Array<{ lag: { p99Ms: number } }> }).pairs[0]!.lag.p99Ms = 500;
  const result = verifySignedReport(tampered, certs().ca.certificatePem);
  t.false(result.ok);
  t.true(result.problems.some((p) => /changed after signing/.test(p)));
  t.true(result.problems.some((p) => /SM2 signature does not verify/.test(p)));
  // The signing time and region are signed too.
  const redated = structuredClone(signed);
  redated.signature.signedAtMs = (redated.signature.signedAtMs as number) + 1;
  t.false(verifySignedReport(redated, certs().ca.certificatePem).ok);
  // A forged signature value.
  const forged = structuredClone(signed);
  forged.signature.value = Buffer.from('3045022100' + 'ab'.repeat(32) + '0220' + 'cd'.repeat(32), 'hex').toString('base64');
  t.false(verifySignedReport(forged, certs().ca.certificatePem).ok);
});

test('signing: a key-order change or re-indentation of the JSON is not a change; the bytes signed are canonical', (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const shuffled = JSON.parse(JSON.stringify(value, null, 3)) as unknown;
      const reverse = (v: unknown): unknown => (Array.isArray(v) ? v.map(reverse) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverse(x)])) : v);
      return canonicalJson(value) === canonicalJson(reverse(shuffled));
    }),
    { seed, numRuns: 200 },
  );
  const signed = signReport(REPORT, signer(), Date.now());
  const reordered = JSON.parse(JSON.stringify({ signature: signed.signature, report: Object.fromEntries(Object.entries(signed.report).reverse()) }));
  t.true(verifySignedReport(reordered, certs().ca.certificatePem).ok);
});

test('signing: a certificate from another CA, another region, or the wrong role is refused', (t) => {
  const ca = certs().ca.certificatePem;
  // Signed by a shanghai certificate that a different CA issued.
  const impostor = verifySignedReport(signReport(REPORT, signer(certs().impostor), Date.now()), ca);
  t.false(impostor.ok);
  t.true(impostor.problems.some((p) => /certificate chain: .*unknown CA/.test(p)), impostor.problems.join('; '));
  // A beijing certificate cannot sign as shanghai, nor can its report claim shanghai.
  t.throws(() => loadSigner('shanghai', certs().beijing.sign.certificatePem, certs().beijing.sign.keyPem), { message: /names region "beijing"/ });
  t.throws(() => signReport(REPORT, signer(certs().beijing, 'beijing'), Date.now()), { message: /names shanghai as its region, the signer is beijing/ });
  const relabeled = JSON.parse(JSON.stringify(signReport({ ...REPORT, generatedBy: 'beijing' }, signer(certs().beijing, 'beijing'), Date.now())));
  relabeled.report.generatedBy = 'shanghai';
  t.false(verifySignedReport(relabeled, ca).ok);
  // The enc certificate is not for signatures; a key that is not the certificate's is refused.
  t.throws(() => loadSigner('shanghai', certs().shanghai.enc.certificatePem, certs().shanghai.enc.keyPem), { message: /not a sign certificate/ });
  t.throws(() => loadSigner('shanghai', certs().shanghai.sign.certificatePem, certs().beijing.sign.keyPem), { message: /does not belong/ });
  // Signed at a time the certificate was not valid.
  const late = verifySignedReport(signReport(REPORT, signer(), Date.now() + 3 * 365 * 86_400_000), ca);
  t.true(late.problems.some((p) => /not valid at/.test(p)));
});

test('signing: a detached signature binds a rendering to its bytes and to the JSON report', (t) => {
  const s = signer();
  const signed = signReport(REPORT, s, Date.now());
  const html = Buffer.from('<!DOCTYPE html><p>p99 812 ms</p>');
  const sig = JSON.parse(JSON.stringify(signDetached('report.html', html, signed, s, Date.now())));
  t.true(verifyDetached(html, sig, certs().ca.certificatePem).ok);
  t.is(sig.reportDigestSm3, signed.signature.digestSm3);
  const changed = Buffer.from(html.toString().replace('812', '512'));
  const result = verifyDetached(changed, sig, certs().ca.certificatePem);
  t.false(result.ok);
  t.true(result.problems.some((p) => /file does not match the signature/.test(p)));
  // Pointing the signature at another report is a change too.
  t.false(verifyDetached(html, { ...sig, reportDigestSm3: '00'.repeat(32) }, certs().ca.certificatePem).ok);
});

test('admq report verify: exit 0 for an intact report and its renderings, 1 after tampering, with the reason', async (t) => {
  const dir = tempDir('admq-verify-');
  t.teardown(() => removeTempDir(dir));
  const s = signer();
  const signed = signReport(REPORT, s, Date.now());
  writeFileSync(join(dir, 'ca.crt'), certs().ca.certificatePem);
  writeFileSync(join(dir, 'report.json'), JSON.stringify(signed, null, 2));
  const csv = Buffer.from('section,metric,value\r\npair,lag_p99,812\r\n');
  writeFileSync(join(dir, 'report.csv'), csv);
  writeFileSync(join(dir, 'report.csv.sig'), JSON.stringify(signDetached('report.csv', csv, signed, s, Date.now())));
  const lines: string[] = [];
  const log = console.log;
  console.log = (line: string) => lines.push(line);
  try {
    t.is(await cmdReport(['verify', join(dir, 'report.json'), '--ca', join(dir, 'ca.crt')]), 0);
    t.is(await cmdReport(['verify', join(dir, 'report.csv'), '--ca', join(dir, 'ca.crt')]), 0);
    writeFileSync(join(dir, 'report.json'), readFileSync(join(dir, 'report.json'), 'utf8').replace('"p99Ms": 812', '"p99Ms": 400'));
    writeFileSync(join(dir, 'report.csv'), Buffer.from(csv.toString().replace('812', '400')));
    t.is(await cmdReport(['verify', join(dir, 'report.json'), '--ca', join(dir, 'ca.crt')]), 1);
    t.is(await cmdReport(['verify', join(dir, 'report.csv'), '--ca', join(dir, 'ca.crt')]), 1);
  } finally {
    console.log = log;
  }
  t.true(lines.some((l) => /^OK: .*report\.json is signed by region shanghai/.test(l)));
  t.true(lines.some((l) => /changed after signing/.test(l)));
  t.true(lines.some((l) => /file does not match the signature/.test(l)));
  // A signature that belongs to another file is named as such.
  writeFileSync(join(dir, 'other.csv'), csv);
  const other = verifyFile(join(dir, 'other.csv'), certs().ca.certificatePem, join(dir, 'report.csv.sig'));
  t.false(other.ok);
  t.true(other.problems.some((p) => /signature is for report\.csv, not other\.csv/.test(p)));
});
