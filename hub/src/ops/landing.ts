/**
 * GET / : a static page telling whoever opens the hub's URL in a browser what is running and where to go.
 * It shows no fleet data (it is unauthenticated); the dashboard will take this place when it exists.
 */
import type { FastifyInstance } from 'fastify';

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tendril hub</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; color: #1d2a22; }
  h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
  code { background: #eef3ef; padding: 0.1rem 0.3rem; border-radius: 3px; }
  td { padding: 0.2rem 1rem 0.2rem 0; vertical-align: top; }
</style>
</head>
<body>
<h1>Tendril hub is running</h1>
<p>Devices connect to <code>/v1/device</code> (WebSocket, subprotocol <code>tendril.v1</code>).
The web dashboard is not part of this version yet; the fleet is available through the HTTP API.</p>
<table>
<tr><td><a href="/api/v1/devices"><code>/api/v1/devices</code></a></td><td>devices, presence and latest values (needs <code>Authorization: Bearer &lt;admin token&gt;</code>)</td></tr>
<tr><td><a href="/healthz"><code>/healthz</code></a>, <a href="/readyz"><code>/readyz</code></a></td><td>liveness and readiness</td></tr>
<tr><td><a href="/metrics"><code>/metrics</code></a></td><td>Prometheus metrics</td></tr>
</table>
<p>Without <code>HUB_ADMIN_TOKEN</code> set, the hub generated an admin token into <code>admin-token</code> in its
data directory. Try: <code>curl -H "Authorization: Bearer $(cat data/admin-token)" http://localhost:8080/api/v1/devices</code></p>
<p>Documentation: <code>README.md</code> and <code>docs/</code> in the Tendril repository (API: <code>docs/api.md</code>).</p>
</body>
</html>
`;

export async function landingPage(app: FastifyInstance): Promise<void> {
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(PAGE));
}
