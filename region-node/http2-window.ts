// HTTP/2 flow-control windows for the gRPC server.
//
// grpc-js leaves the server's receive windows at HTTP/2's 64 KiB default and offers no
// option to raise them. On a busy event loop, 64 KiB per window update caps one
// connection at roughly 64 MB/s (about 60,000 1 KiB messages/s), however many streams it
// carries. grpc-js creates its servers with node:http2's createServer, so this wraps that
// function once to raise the per-stream window in the SETTINGS frame and the connection
// window as each session starts. Clients get the same through grpc-js's own
// 'grpc-node.flow_control_window' channel option.
import http2 from 'node:http2';
import type { Socket } from 'node:net';

export const HTTP2_WINDOW_BYTES = 16 * 1024 * 1024;

let installed = false;

export function installHttp2ServerWindows(windowBytes = HTTP2_WINDOW_BYTES): void {
  if (installed) return;
  installed = true;
  const original = http2.createServer;
  const patched = (options?: http2.ServerOptions, listener?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void): http2.Http2Server => {
    const withWindow: http2.ServerOptions = {
      ...options,
      settings: { ...options?.settings, initialWindowSize: Math.min(windowBytes, 2 ** 31 - 1) },
    };
    const server = listener ? original(withWindow, listener) : original(withWindow);
    // Small frames (a receipt, one delivery) must not wait for Nagle's algorithm. This is
    // set on the raw socket as it is accepted: the session's `socket` is a proxy that
    // throws ERR_HTTP2_NO_SOCKET_MANIPULATION on setNoDelay, and that throw used to skip
    // the window raise below, leaving every connection at 64 KiB.
    server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    server.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(windowBytes);
      } catch {
        // The session may already be closing; nothing to raise then.
      }
    });
    return server;
  };
  (http2 as { createServer: unknown }).createServer = patched;
}
