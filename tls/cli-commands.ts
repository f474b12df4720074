/**
 * `admq certs ...` and `admq tls ...` subcommands. The entry point (cli/)
 * calls runCertsCommand / runTlsCommand with the arguments after the word
 * `certs` / `tls` and exits with the returned code.
 */
import { writeStandardRegionCertificate } from './standard-certs.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCa, describeCertificate, issueDoubleCertificate, loadIssued, verifyCertificateFile, writeIssued } from './cert-tool.ts';
import { formatName, parseCertificatesPem } from './certificates.ts';
import { CIPHER_SUITES } from './record-layer.ts';
import { connect, createServer, type TlcpSecureOptions, type TlcpSocket } from './tlcp-socket.ts';

const CERTS_HELP = `Usage: admq certs <command> [options]

Commands:
  create-ca      Create an SM2 root CA (ca.crt, ca.key)
  create         Create a sign + enc certificate pair for a region or node
  create-tls     Create a standard X.509 certificate for a region (transport kind "tls",
                 Node's TLS 1.3), and the deployment's TLS CA if it is missing
  inspect        Print certificates of a PEM file
  verify         Verify a certificate against a CA

Run "admq certs <command> --help" for the options of a command.`;

const CREATE_TLS_HELP = `Usage: admq certs create-tls --ca-dir DIR --region NAME

  --ca-dir DIR    directory of tls-ca.crt and tls-ca.key (both created if missing);
                  <region>-tls.crt and <region>-tls.key are written there too
  --region NAME   region name: the certificate's OU, and DNS name <region>.admq

RSA-2048 with SHA-256, for both server and client authentication between regions.`;

const CREATE_CA_HELP = `Usage: admq certs create-ca --out DIR [--cn NAME] [--org ORG] [--days N]

  --out DIR     directory for ca.crt and ca.key (created if missing)
  --cn NAME     CA common name (default "admq root CA")
  --org ORG     organization name (optional)
  --days N      validity in days (default 3650)`;

const CREATE_HELP = `Usage: admq certs create --ca-dir DIR --region REGION [--node ID] [--out DIR] [--dns NAME]... [--days N]

Creates <name>-sign.crt/.key (digitalSignature, nonRepudiation) and
<name>-enc.crt/.key (keyEncipherment, dataEncipherment, keyAgreement), where
<name> is "<region>" or "<region>-<node>". Names: CN and DNS
"<node>.<region>.admq", URI "admq://<region>/<node>".

  --ca-dir DIR  directory holding ca.crt and ca.key
  --region R    region name (lowercase DNS label)
  --node ID     node id (lowercase DNS label); omit for a region identity
  --out DIR     output directory (default: --ca-dir)
  --dns NAME    extra DNS subjectAltName (repeatable)
  --org ORG     organization name (optional)
  --days N      validity in days (default 825)`;

const INSPECT_HELP = `Usage: admq certs inspect FILE...

Prints subject, issuer, validity, role (sign/enc/ca), key usage and names.`;

const VERIFY_HELP = `Usage: admq certs verify --ca FILE [--role sign|enc] [--name NAME] FILE

Verifies FILE (leaf first, then intermediates) against the CA certificates
in --ca, checking signatures, validity, key usage role and name.
Exit code 0 when valid, 1 otherwise.`;

const TLS_HELP = `Usage: admq tls <server|client> [options]

Diagnose a TLCP (GB/T 38636-2020) link in the manner of openssl
s_server/s_client. Run "admq tls server --help" or "admq tls client --help".`;

const COMMON_TLS_OPTIONS = `  --sign-cert FILE   sign certificate (PEM)
  --sign-key FILE    sign private key (PEM)
  --enc-cert FILE    enc certificate (PEM)
  --enc-key FILE     enc private key (PEM)
  --ca FILE          trust anchors (PEM)
  --suite NAME       cipher suite, repeatable, in preference order
                     (${CIPHER_SUITES.map((suite) => suite.name).join(', ')})
  --no-verify        do not verify the peer's certificates
  --quiet            do not print handshake details`;

const TLS_SERVER_HELP = `Usage: admq tls server --port N [--host H] [options]

Accepts TLCP connections, prints each negotiated suite and the client's
certificates, and echoes data (or, with --stdio, joins one connection to
stdin/stdout).

  --port N           port to listen on (0 picks one and prints it)
  --host H           address to bind (default 127.0.0.1)
  --request-cert     ask clients for their double certificates
  --stdio            connect the first client to stdin/stdout instead of echoing
${COMMON_TLS_OPTIONS}`;

const TLS_CLIENT_HELP = `Usage: admq tls client --port N [--host H] [--servername NAME] [options]

Connects, prints the negotiated suite and the server's certificates, then
copies stdin to the connection and the connection to stdout.

  --port N           server port
  --host H           server address (default 127.0.0.1)
  --servername NAME  name the server's sign certificate must carry
${COMMON_TLS_OPTIONS}`;

function parsePositiveInteger(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return parsed;
}

export async function runCertsCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'create-ca': {
        const { values } = parseArgs({ args: rest, options: { out: { type: 'string' }, cn: { type: 'string' }, org: { type: 'string' }, days: { type: 'string' }, help: { type: 'boolean' } } });
        if (values.help) return print(CREATE_CA_HELP, 0);
        if (!values.out) return print(`--out is required\n\n${CREATE_CA_HELP}`, 2, true);
        const ca = createCa({ commonName: values.cn ?? 'admq root CA', ...(values.org ? { organization: values.org } : {}), validDays: parsePositiveInteger(values.days, 'days', 3650) });
        const paths = await writeIssued(values.out, 'ca', ca);
        console.log(`wrote ${paths.certificatePath} and ${paths.keyPath}`);
        return 0;
      }
      case 'create': {
        const { values } = parseArgs({ args: rest, options: { 'ca-dir': { type: 'string' }, region: { type: 'string' }, node: { type: 'string' }, out: { type: 'string' }, dns: { type: 'string', multiple: true }, org: { type: 'string' }, days: { type: 'string' }, help: { type: 'boolean' } } });
        if (values.help) return print(CREATE_HELP, 0);
        if (!values['ca-dir'] || !values.region) return print(`--ca-dir and --region are required\n\n${CREATE_HELP}`, 2, true);
        const ca = await loadIssued(join(values['ca-dir'], 'ca.crt'), join(values['ca-dir'], 'ca.key'));
        const pair = issueDoubleCertificate(ca, {
          region: values.region,
          ...(values.node ? { nodeId: values.node } : {}),
          ...(values.dns ? { dnsNames: values.dns } : {}),
          ...(values.org ? { organization: values.org } : {}),
          validDays: parsePositiveInteger(values.days, 'days', 825),
        });
        const base = values.node ? `${values.region}-${values.node}` : values.region;
        const out = values.out ?? values['ca-dir'];
        for (const [role, value] of [['sign', pair.sign], ['enc', pair.enc]] as const) {
          const paths = await writeIssued(out, `${base}-${role}`, value);
          console.log(`wrote ${paths.certificatePath} and ${paths.keyPath}`);
        }
        return 0;
      }
      case 'create-tls': {
        const { values } = parseArgs({ args: rest, options: { 'ca-dir': { type: 'string' }, region: { type: 'string' }, help: { type: 'boolean' } } });
        if (values.help) return print(CREATE_TLS_HELP, 0);
        if (!values['ca-dir'] || !values.region) return print(`--ca-dir and --region are required\n\n${CREATE_TLS_HELP}`, 2, true);
        for (const path of await writeStandardRegionCertificate(values['ca-dir'], values.region)) console.log(`wrote ${path}`);
        return 0;
      }
      case 'inspect': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { help: { type: 'boolean' } } });
        if (values.help || positionals.length === 0) return print(INSPECT_HELP, values.help ? 0 : 2, !values.help);
        for (const file of positionals) {
          for (const certificate of parseCertificatesPem(await readFile(file))) console.log(`${file}:\n${describeCertificate(certificate)}\n`);
        }
        return 0;
      }
      case 'verify': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ca: { type: 'string' }, role: { type: 'string' }, name: { type: 'string' }, help: { type: 'boolean' } } });
        if (values.help) return print(VERIFY_HELP, 0);
        if (!values.ca || positionals.length !== 1) return print(`--ca and one FILE are required\n\n${VERIFY_HELP}`, 2, true);
        if (values.role !== undefined && values.role !== 'sign' && values.role !== 'enc') return print('--role must be sign or enc', 2, true);
        const result = await verifyCertificateFile(positionals[0]!, values.ca, { ...(values.role ? { role: values.role } : {}), ...(values.name ? { name: values.name } : {}) });
        console.log(result.message);
        return result.ok ? 0 : 1;
      }
      case undefined:
      case '--help':
      case 'help':
        return print(CERTS_HELP, command === undefined ? 2 : 0, command === undefined);
      default:
        return print(`unknown certs command ${command}\n\n${CERTS_HELP}`, 2, true);
    }
  } catch (error) {
    console.error(`admq certs ${command}: ${(error as Error).message}`);
    return 1;
  }
}

function print(text: string, code: number, toStderr = false): number {
  (toStderr ? console.error : console.log)(text);
  return code;
}

const TLS_OPTIONS = {
  'sign-cert': { type: 'string' },
  'sign-key': { type: 'string' },
  'enc-cert': { type: 'string' },
  'enc-key': { type: 'string' },
  ca: { type: 'string' },
  suite: { type: 'string', multiple: true },
  'no-verify': { type: 'boolean' },
  quiet: { type: 'boolean' },
  port: { type: 'string' },
  host: { type: 'string' },
  help: { type: 'boolean' },
} as const;

async function secureOptions(values: Record<string, string | boolean | string[] | undefined>): Promise<TlcpSecureOptions> {
  const read = async (key: string): Promise<string | undefined> => (typeof values[key] === 'string' ? readFile(values[key] as string, 'utf8') : undefined);
  const [signCert, signKey, encCert, encKey, ca] = await Promise.all([read('sign-cert'), read('sign-key'), read('enc-cert'), read('enc-key'), read('ca')]);
  return {
    ...(signCert !== undefined ? { signCert } : {}),
    ...(signKey !== undefined ? { signKey } : {}),
    ...(encCert !== undefined ? { encCert } : {}),
    ...(encKey !== undefined ? { encKey } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(Array.isArray(values['suite']) ? { cipherSuites: values['suite'] } : {}),
    rejectUnauthorized: values['no-verify'] !== true,
  };
}

function describeConnection(socket: TlcpSocket, peerLabel: string): string {
  const lines = [`cipher suite: ${socket.cipherSuite} (0x${socket.cipherSuiteId?.toString(16)})`, `verified: ${socket.authorized}${socket.authorizationError ? ` (${socket.authorizationError.message})` : ''}`];
  const peer = socket.peerCertificates;
  if (!peer) lines.push(`${peerLabel} certificates: none`);
  else {
    lines.push(`${peerLabel} sign certificate:\n${describeCertificate(peer.sign)}`);
    lines.push(`${peerLabel} enc certificate:\n${describeCertificate(peer.enc)}`);
    for (const extra of peer.chain) lines.push(`${peerLabel} chain: ${formatName(extra.subject)}`);
  }
  return lines.join('\n');
}

export async function runTlsCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'server') {
      const { values } = parseArgs({ args: rest, options: { ...TLS_OPTIONS, 'request-cert': { type: 'boolean' }, stdio: { type: 'boolean' } } });
      if (values.help) return print(TLS_SERVER_HELP, 0);
      if (values.port === undefined) return print(`--port is required\n\n${TLS_SERVER_HELP}`, 2, true);
      const port = Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) return print('--port must be an integer in [0, 65535]', 2, true);
      const options = await secureOptions(values);
      let stdioTaken = false;
      const server = createServer({ ...options, requestCert: values['request-cert'] === true }, (socket) => {
        if (!values.quiet) console.error(`connection from ${socket.remoteAddress}:${socket.remotePort}\n${describeConnection(socket, 'client')}`);
        socket.on('error', (error: Error) => console.error(`connection error: ${error.message}`));
        if (values.stdio && !stdioTaken) {
          stdioTaken = true;
          process.stdin.pipe(socket);
          socket.pipe(process.stdout);
        } else socket.pipe(socket);
      });
      server.on('tlsClientError', (error: Error) => console.error(`handshake failed: ${error.message}`));
      server.listen(port, values.host ?? '127.0.0.1', () => console.error(`listening on ${values.host ?? '127.0.0.1'}:${server.address().port}`));
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      server.close();
      return 0;
    }
    if (command === 'client') {
      const { values } = parseArgs({ args: rest, options: { ...TLS_OPTIONS, servername: { type: 'string' } } });
      if (values.help) return print(TLS_CLIENT_HELP, 0);
      if (values.port === undefined) return print(`--port is required\n\n${TLS_CLIENT_HELP}`, 2, true);
      const options = await secureOptions(values);
      const socket = connect({ ...options, host: values.host ?? '127.0.0.1', port: Number(values.port), ...(values.servername ? { servername: values.servername } : {}) });
      return await new Promise<number>((resolve) => {
        socket.once('error', (error: Error) => {
          console.error(`error: ${error.message}`);
          resolve(1);
        });
        socket.once('secureConnect', () => {
          if (!values.quiet) console.error(describeConnection(socket, 'server'));
          process.stdin.pipe(socket);
          socket.pipe(process.stdout);
          socket.once('close', () => resolve(0));
        });
      });
    }
    if (command === undefined || command === '--help' || command === 'help') return print(TLS_HELP, command === undefined ? 2 : 0, command === undefined);
    return print(`unknown tls command ${command}\n\n${TLS_HELP}`, 2, true);
  } catch (error) {
    console.error(`admq tls ${command}: ${(error as Error).message}`);
    return 1;
  }
}
