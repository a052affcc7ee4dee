import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import each package from its TypeScript source, so `npm test` needs no build step.
const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@tendril\/device-sdk\/codec$/, replacement: src('./device-sdk/src/codec/index.ts') },
      { find: /^@tendril\/device-sdk$/, replacement: src('./device-sdk/src/index.ts') },
      { find: /^@tendril\/hub$/, replacement: src('./hub/src/index.ts') },
      { find: /^@tendril\/simulator$/, replacement: src('./simulator/src/index.ts') },
    ],
  },
  test: {
    include: ['{dashboard,device-sdk,hub,simulator,test}/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
