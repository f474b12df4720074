import test from 'ava';
import grpc from '@grpc/grpc-js';
import { bindTlcpGrpcServer, createTlcpChannelCredentials, tlcpPeerIdentity } from './grpc-tlcp.ts';
import { validateTransportSecurity, channelCredentials } from './transport.ts';
import { TransportConfigError } from './errors.ts';
import { clientCredentials, fixtures, serverOptions } from './test-fixtures.ts';

const passthrough = (value: Buffer): Buffer => value;
const echoService = {
  echo: {
    path: '/admq.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: passthrough,
    requestDeserialize: passthrough,
    responseSerialize: passthrough,
    responseDeserialize: passthrough,
  },
} satisfies grpc.ServiceDefinition;

for (const suite of ['ECC_SM4_GCM_SM3', 'ECDHE_SM4_CBC_SM3']) {
  test(`grpc over tlcp: unary calls with ${suite}; the handler sees the client's certificate identity`, async (t) => {
    const server = new grpc.Server();
    server.addService(echoService, {
      echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const peer = tlcpPeerIdentity(call);
        callback(null, Buffer.concat([Buffer.from(`${peer?.commonName}|${peer?.uris.join(',')}|${peer?.cipherSuite}|`), call.request]));
      },
    });
    const binding = await bindTlcpGrpcServer(server, { ...serverOptions(), cipherSuites: [suite] });
    t.teardown(() => binding.close());
    const Client = grpc.makeGenericClientConstructor(echoService, 'Echo');
    const credentials = createTlcpChannelCredentials({ ca: [fixtures().ca.certificate], servername: 'localhost', cipherSuites: [suite], ...clientCredentials() });
    const client = new Client(`127.0.0.1:${binding.port}`, credentials) as unknown as grpc.Client & { echo(request: Buffer, callback: (error: grpc.ServiceError | null, response?: Buffer) => void): void };
    t.teardown(() => client.close());
    for (const size of [5, 70_000]) {
      const request = Buffer.alloc(size, 7);
      const response = await new Promise<Buffer>((resolve, reject) => client.echo(request, (error, value) => (error ? reject(error) : resolve(value!))));
      const prefix = `n7.cn-west.admq|admq://cn-west/n7|${suite}|`;
      t.is(response.subarray(0, prefix.length).toString(), prefix);
      t.deepEqual(response.subarray(prefix.length), request);
    }
  });
}

test('transport: settings are validated with errors naming the field', (t) => {
  t.is(validateTransportSecurity({ kind: 'insecure' }).kind, 'insecure');
  const missing = t.throws(() => validateTransportSecurity({ kind: 'tlcp', caPem: 'x' }), { instanceOf: TransportConfigError });
  t.regex(missing?.message ?? '', /transport\.signCertPem/);
  t.is(missing?.code, 'ADMQ_ERR_TRANSPORT_CONFIG');
  t.throws(() => validateTransportSecurity({ kind: 'ssl3' }), { message: /transport\.kind/ });
  t.throws(() => validateTransportSecurity({ kind: 'tlcp', caPem: 'a', signCertPem: 'b', signKeyPem: 'c', encCertPem: 'd', encKeyPem: 'e', cipherSuites: ['RC4'] }), { message: /unknown suite RC4/ });
  t.truthy(channelCredentials({ kind: 'insecure' }));
});
