// The HTTP/2 windows of the gRPC server really are raised: the per-stream window in the
// SETTINGS frame and the connection window by a WINDOW_UPDATE. The connection window once
// stayed at 64 KiB because a throw before it (setNoDelay on the session's socket proxy)
// was swallowed; a 512 KiB send batch then crossed loopback in 64 KiB steps.
import http2 from 'node:http2';
import test from 'ava';
import { HTTP2_WINDOW_BYTES, installHttp2ServerWindows } from './http2-window.ts';

test('http2 windows: a client of the server may send 16 MiB on the stream and on the connection', async (t) => {
  installHttp2ServerWindows();
  const server = http2.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as { port: number };
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => client.close());
  const settings = await new Promise<http2.Settings>((resolve) => client.once('remoteSettings', resolve));
  t.is(settings.initialWindowSize, HTTP2_WINDOW_BYTES);
  // The connection-level WINDOW_UPDATE follows the SETTINGS frame; wait for it, bounded.
  const deadline = Date.now() + 5_000;
  while (client.state.remoteWindowSize !== HTTP2_WINDOW_BYTES && Date.now() < deadline) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.is(client.state.remoteWindowSize, HTTP2_WINDOW_BYTES);
});
