// Baseline for bench/ingest.mjs: a bare `ws` server that only counts the binary messages it receives.
// Same settings the hub uses for devices (perMessageDeflate off). Controlled over IPC by the benchmark.
import { WebSocketServer } from 'ws';

let messages = 0;
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16384 });
wss.on('connection', (ws) => {
  ws.on('message', () => {
    messages++;
  });
});
wss.on('listening', () => process.send({ type: 'ready', port: wss.address().port, path: '/' }));
process.on('message', (m) => {
  if (m.type === 'sample')
    process.send({ type: 'sample', messages, cpu: process.cpuUsage(), rss: process.memoryUsage().rss });
  if (m.type === 'stop') wss.close(() => process.exit(0));
});
// The benchmark is gone (killed, or it gave up): do not outlive it.
process.on('disconnect', () => process.exit(0));
