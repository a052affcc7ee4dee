/** The tendril.v1 wire codec: pure functions over bytes (docs/protocol.md). */
export * from './frames.js';
export * from './errors.js';
export * from './error-meanings.js';
export * from './limits.js';
export { decodeDeviceFrame, decodeHubFrame } from './decode.js';
export { encodeDeviceFrame, encodeHubFrame, truncateUtf8 } from './encode.js';
export { zigzag, unzigzag } from './bytes.js';
