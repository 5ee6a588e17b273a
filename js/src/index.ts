// The package entry (`import init, { SocklineClient } from 'sockline'`): `init` (the wasm glue's,
// which also finds the `.wasm` on disk in Node), the types of the wasm build, and
// `SocklineClient`, the client shared across tabs (client.ts) that wraps the wasm one.
// Everything else the wasm glue exports passes through unchanged.
import initWasm from './sockline.js';
import type {
  ClientOptions as CoreOptions,
  ClientStats as CoreStats,
  EventMap as CoreEventMap,
  InitInput,
  InitOutput,
} from './sockline.js';

export * from './sockline.js';
export { SocklineClient } from './client.js';

/** The `.wasm` next to this file (not written inside `new URL(…)`, so bundlers do not emit it twice). */
const WASM_FILE = 'sockline_bg.wasm';

/**
 * Loads and instantiates the WASM module, once (later calls return the first result). Pass
 * `{ module_or_path }` — a URL, a `Response` (or a promise of one), the bytes or a compiled
 * `WebAssembly.Module` — where the default cannot be reached. The default is the
 * `sockline_bg.wasm` next to the package's JS: fetched in a browser (bundlers such as Vite,
 * webpack and Turbopack rewrite that URL to the file they emit), read from disk in Node
 * (20.16 or later: `process.getBuiltinModule`).
 */
export default function init(
  input?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput> {
  // As the glue reads it: a plain object is `{ module_or_path }`, anything else the input itself.
  const plain = input !== undefined && input !== null && Object.getPrototypeOf(input) === Object.prototype;
  const where = plain ? (input as { module_or_path?: unknown }).module_or_path : input;
  if (where !== undefined) return initWasm(input);
  let bytes: Uint8Array | undefined;
  try {
    bytes = wasmFromDisk();
  } catch (e) {
    // Unless the module is loaded already (initSync, an earlier init): then that one is returned.
    return initWasm(input).catch(() => Promise.reject(e));
  }
  return initWasm(bytes === undefined ? input : { module_or_path: bytes });
}

/** Node (and runtimes like it): the `.wasm` beside this file, read from disk; else `undefined`. */
function wasmFromDisk(): Uint8Array | undefined {
  type Fs = { readFileSync(path: URL): Uint8Array };
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (typeof proc?.getBuiltinModule !== 'function') return undefined;
  const url = new URL(WASM_FILE, import.meta.url);
  if (url.protocol !== 'file:') return undefined;
  try {
    return (proc.getBuiltinModule('node:fs') as Fs).readFileSync(url);
  } catch (e) {
    throw new Error(
      `sockline: could not read ${url.href} (${(e as Error).message}); pass the WASM to init({ module_or_path })`,
      { cause: e },
    );
  }
}

/** Options of `new SocklineClient(options)`. One of `token` and `getToken` is required. */
export interface ClientOptions extends CoreOptions {
  /**
   * Share one connection among the tabs of this app (same origin, `url` and `key`): one tab,
   * the leader, holds the socket; the others reach it over a BroadcastChannel, and another
   * takes over when it closes. Default true where Web Locks and BroadcastChannel exist (else
   * each tab connects on its own). The tabs should authenticate as the same user.
   */
  shareAcrossTabs?: boolean;
  /** Separates clients of one origin and `url` (e.g. two apps, or one per user). Default `''`. */
  key?: string;
  /**
   * Keep unacked sends in IndexedDB until their ack, and send them again (same ids: once)
   * after a reload or a browser restart. Default true where IndexedDB and Web Locks exist.
   */
  persist?: boolean;
}

/** What `leader_changed` listeners get. */
export interface LeaderChange {
  /** Whether this tab now runs the connection. */
  isLeader: boolean;
  /** The leader tab's id (`null` while there is none). */
  leader: string | null;
}

/** `stats()`: the connection's counters (the leader's) and this tab's part in the group. */
export interface ClientStats extends CoreStats {
  /** Whether this tab runs the connection (always true without sharing). */
  isLeader: boolean;
  /** The leader tab's id, `null` while a new leader is being chosen. */
  leader: string | null;
  /** This tab's id. */
  tab: string;
  /** How many tabs share the connection. */
  tabs: number;
  /** Whether this client shares its connection across tabs. */
  sharing: boolean;
  /** Whether unacked sends are kept in IndexedDB. */
  persist: boolean;
}

/**
 * What `on(name, listener)` accepts and what each listener gets: the wasm client's events plus
 * `leader_changed`. Apps add their own by augmentation:
 * `declare module 'sockline' { interface EventMap { order_shipped: { order_id: string } } }`.
 */
export interface EventMap extends CoreEventMap {
  /** This tab became the leader, or stopped being it, or another tab leads now. */
  leader_changed: LeaderChange;
}
