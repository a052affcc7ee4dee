// A benchmark device on the hub's device channel: provisioned over the HTTP API, connected over raw TCP
// (raw-ws.mjs), HELLO sent, WELCOME awaited. Acks are handed to `onAck`, BACKOFFs after WELCOME to
// `onBackoff` when given; frames are the caller's to send.
import { decodeHubFrame, encodeDeviceFrame, newDeltaContext, SUBPROTOCOL } from '../../device-sdk/dist/index.js';
import { connectRaw, maskedFrame } from './raw-ws.mjs';

/** Resolves with the raw connection once WELCOME arrived; rejects on ERROR/BACKOFF before it or a timeout. */
export async function connectHubDevice({
  port,
  path,
  adminToken,
  id,
  clock,
  metrics,
  epoch = 1,
  onAck,
  onBackoff = null,
  timeoutMs = 10_000,
}) {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/devices`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id }),
  });
  if (res.status !== 201) throw new Error(`provisioning ${id}: HTTP ${res.status} ${await res.text()}`);
  const { token } = await res.json();
  const conn = await connectRaw({ port, path, protocol: SUBPROTOCOL });
  let welcomed = false;
  await new Promise((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for WELCOME for ${id}`)),
      timeoutMs,
    );
    conn.onMessage((op, payload) => {
      if (op !== 0x2) return;
      const f = decodeHubFrame(payload);
      if (f.type === 'welcome') {
        welcomed = true;
        clearTimeout(t);
        resolve();
      } else if (f.type === 'ack') {
        onAck(f.seq);
      } else if (f.type === 'backoff' && welcomed && onBackoff) {
        onBackoff(f);
      } else if (f.type === 'error' || f.type === 'backoff') {
        // Before WELCOME this fails the run; after it, the figures would be wrong, so say so.
        if (!welcomed) reject(new Error(`${id}: hub answered ${f.type} ${f.code}`));
        else process.stderr.write(`bench: ${id}: hub answered ${f.type} ${f.code} during the run\n`);
      }
    });
    const hello = {
      type: 'hello',
      deviceId: id,
      token,
      firmware: 'bench',
      sdk: 'bench',
      epoch,
      lastSeq: 0,
      clock,
      dropped: 0,
      metrics,
    };
    conn.send(maskedFrame(encodeDeviceFrame(hello, newDeltaContext())));
  });
  return conn;
}
