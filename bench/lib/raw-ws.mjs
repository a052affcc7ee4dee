// A minimal WebSocket client over a raw TCP socket, for load generation only: it sends frames that were
// encoded (and masked) once, so the generator spends its CPU on syscalls, not on re-encoding.
// It understands just what the benchmarks receive from a server: unmasked binary/close/ping frames.
import net from 'node:net';
import crypto from 'node:crypto';

/** Builds a masked client binary frame (RFC 6455 §5.2) around `payload`. */
export function maskedFrame(payload, opcode = 0x2) {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = Buffer.alloc(2 + ext + 4 + len);
  out[0] = 0x80 | opcode;
  let o = 2;
  if (ext === 0) out[1] = 0x80 | len;
  else if (ext === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
    o = 4;
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
    o = 10;
  }
  const mask = crypto.randomBytes(4);
  mask.copy(out, o);
  o += 4;
  for (let i = 0; i < len; i++) out[o + i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * Opens a WebSocket to ws://host:port/path with the given subprotocol. Resolves with
 * { socket, onMessage(cb), send(buf, cb), close() } once the 101 arrives.
 */
export function connectRaw({ host = '127.0.0.1', port, path, protocol, timeoutMs = 10_000 }) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    const key = crypto.randomBytes(16).toString('base64');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for the WebSocket upgrade of ${path}`));
    }, timeoutMs);
    let head = Buffer.alloc(0);
    let listener = null;
    let pending = Buffer.alloc(0);
    const parse = () => {
      // Server frames are unmasked; payloads here are small.
      while (pending.length >= 2) {
        const op = pending[0] & 0x0f;
        let len = pending[1] & 0x7f;
        let o = 2;
        if (len === 126) {
          if (pending.length < 4) return;
          len = pending.readUInt16BE(2);
          o = 4;
        } else if (len === 127) {
          if (pending.length < 10) return;
          len = Number(pending.readBigUInt64BE(2));
          o = 10;
        }
        if (pending.length < o + len) return;
        const payload = pending.subarray(o, o + len);
        pending = pending.subarray(o + len);
        if (op === 0x9)
          socket.write(maskedFrame(payload, 0xa)); // answer pings with pongs
        else if (listener) listener(op, payload);
      }
    };
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      const status = head.subarray(0, head.indexOf('\r\n')).toString();
      if (!status.includes(' 101 ')) {
        socket.destroy();
        reject(new Error(`upgrade refused: ${status}`));
        return;
      }
      socket.off('data', onData);
      pending = head.subarray(end + 4);
      socket.on('data', (c) => {
        pending = pending.length ? Buffer.concat([pending, c]) : c;
        parse();
      });
      resolve({
        socket,
        onMessage(cb) {
          listener = cb;
          parse();
        },
        send(buf, cb) {
          return socket.write(buf, cb);
        },
        close() {
          socket.destroy();
        },
      });
    };
    socket.on('data', onData);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
        '\r\n',
    );
  });
}
