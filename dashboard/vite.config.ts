/**
 * Vite build of the dashboard: a single-page app in dist/, served by the hub (hub/src/web/). Hashed
 * file names under dist/assets/ (the hub caches them as immutable); no inline script, so the hub's
 * Content-Security-Policy can forbid inline scripts. `npm run build` then prints the initial JS size.
 */
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [svelte()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No base64-inlined assets: CSP img-src stays 'self' and every asset is cacheable on its own.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
    // Plugin timing notes are noise on a shared machine (scripts/size.mjs prints what matters).
    rolldownOptions: { checks: { pluginTimings: false } },
  },
  server: {
    // `npm run dev -w @tendril/dashboard` against a hub on :8080.
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/v1/live': { target: 'ws://127.0.0.1:8080', ws: true },
    },
  },
});
