// The wasm core's face (`sockline.js`): `init` / `initSync`, which load the `.wasm`, and
// `SocklineClient`, one connection in one tab, driven by core/client.ts. The package entry
// (index.ts) re-exports all of it, with the tab-sharing `SocklineClient` in its place.
export { default, initSync } from './core/abi.js';
export type { InitInput, InitOutput, SyncInitInput } from './core/abi.js';
export { SocklineClient } from './core/client.js';
export type * from './core/types.js';
