import { expect, test } from 'vitest';
import { DEFAULT_LIMITS, resolveLimits } from '@tendril/device-sdk/codec';
test('an option given as undefined keeps its default (a config object with unset fields must not lift the limit)', () => {
  expect(resolveLimits({ maxFrameBytes: undefined }).maxFrameBytes).toBe(DEFAULT_LIMITS.maxFrameBytes);
});
