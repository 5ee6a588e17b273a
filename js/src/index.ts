// The package entry (`import init, { SocklineClient } from 'sockline'`): `init` and the types of
// the wasm build, and `SocklineClient`, the client shared across tabs (client.ts) that wraps the
// wasm one. Everything else the wasm glue exports passes through unchanged.
import type {
  ClientOptions as CoreOptions,
  ClientStats as CoreStats,
  EventMap as CoreEventMap,
} from './sockline.js';

export * from './sockline.js';
export { default } from './sockline.js';
export { SocklineClient } from './client.js';

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
