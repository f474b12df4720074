// The fault proxies of a NetworkProcess (benchmarks run theirs in a process of their own):
// bytes pass through, a blackhole then heal resets the connections that lived through it,
// as in this process, and new connections flow again.
import test from 'ava';
import { connect, createServer, type Socket } from 'node:net';
import { NetworkProcess } from './network-process.ts';

function echoServer(): Promise<{ port: number; close: () => void }> {
  // The proxy resets its side on heal: that reset is expected here, not an error.
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, close: () => server.close() })));
}

function roundTrip(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer): void => {
      got += chunk.toString();
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
}

function dial(address: string): Promise<Socket> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), host, () => resolve(socket));
    socket.once('error', reject);
  });
}

test('network process: a proxy in its own process forwards bytes, applies commands in order, and on heal resets what lived through a blackhole', async (t) => {
  const echo = await echoServer();
  const network = NetworkProcess.start();
  t.teardown(async () => {
    await network.stop();
    echo.close();
  });
  const proxy = await network.proxy('a->b', echo.port);
  proxy.setDelay(5);
  await network.settled();
  const first = await dial(proxy.address);
  t.is(await roundTrip(first, 'ping'), 'ping');
  const reset = new Promise<string>((resolve) => {
    first.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    first.once('close', () => resolve('closed'));
  });
  proxy.blackhole('both');
  proxy.heal();
  await network.settled();
  t.regex(await reset, /ECONNRESET|closed/, 'the connection that saw the blackhole is reset on heal');
  const second = await dial(proxy.address);
  t.is(await roundTrip(second, 'pong'), 'pong', 'a new connection flows after the heal');
  second.destroy();
  await proxy.close();
});
