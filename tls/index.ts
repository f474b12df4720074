/**
 * Public surface of tls/: TLCP (GB/T 38636-2020) connections, gRPC over
 * TLCP, transport security settings, SM2 certificate tooling, and errors.
 */
export { connect, createServer, classifyPeerCertificates, TlcpServer, TlcpSocket } from './tlcp-socket.ts';
export type { KeyedCertificate, PeerCertificates, TlcpConnectOptions, TlcpSecureOptions, TlcpServerOptions } from './tlcp-socket.ts';
export { CIPHER_SUITES, cipherSuiteById, cipherSuiteByName, TLCP_VERSION } from './record-layer.ts';
export type { CipherSuite, CipherSuiteName } from './record-layer.ts';
export { bindTlcpGrpcServer, createTlcpChannelCredentials, TlcpChannelCredentials, tlcpPeerIdentity } from './grpc-tlcp.ts';
export type { TlcpGrpcBinding, TlcpPeerIdentity } from './grpc-tlcp.ts';
export { bindGrpcServer, channelCredentials, channelOptions, validateTransportSecurity } from './transport.ts';
export type { ServerBinding, TransportSecurity } from './transport.ts';
export { createCa, describeCertificate, identityNames, issueDoubleCertificate, loadIssued, verifyCertificateFile, writeIssued } from './cert-tool.ts';
export type { CreateCaOptions, DoubleCertificate, IdentityOptions, Issued } from './cert-tool.ts';
export {
  certificateMatchesName,
  certificateRole,
  certificateToPem,
  formatName,
  parseCertificateDer,
  parseCertificatesPem,
  parsePrivateKeyPem,
  privateKeyToPem,
  verifyCertificateChain,
} from './certificates.ts';
export type { CertificateRole, NameAttributes, Sm2Certificate } from './certificates.ts';
export { generateSm2KeyPair, sm2Decrypt, sm2Encrypt, sm2Sign, sm2Verify, SM2_DEFAULT_ID } from './sm2.ts';
export type { Sm2KeyPair } from './sm2.ts';
export {
  AlertDescription,
  alertName,
  TlcpAlertError,
  TlcpCertificateError,
  TlcpClosedError,
  TlcpConfigError,
  TlcpCryptoError,
  TlcpHandshakeError,
  TlcpRecordError,
  TlsModuleError,
  TransportConfigError,
} from './errors.ts';
export type { TlsErrorCode } from './errors.ts';
export { runCertsCommand, runTlsCommand } from './cli-commands.ts';
export { createStandardCa, issueStandardCertificate, writeStandardRegionCertificate } from './standard-certs.ts';
export type { StandardIssued } from './standard-certs.ts';
export { nativeStatus as sm4Acceleration } from './native/index.ts';
export type { NativeStatus } from './native/index.ts';
