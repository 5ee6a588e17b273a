// React bindings for sockline: `import { SocklineProvider, useSockline } from 'sockline/react'`.
//
// One `SocklineClient` per `<SocklineProvider>`. The WASM module is initialised once per page
// (lazily, by the first provider); until it is ready the provider renders its children with
// `client: null` and state `disconnected` (or `fallback`, when given). Rooms joined and events sent
// before that are applied as soon as the client exists.
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
} from 'react';
import type { ReactElement, ReactNode } from 'react';
import init, { SocklineClient } from '../index.js';
import type {
  ClientOptions,
  ClientPayload,
  ConnectionState,
  DisconnectReason,
  EventMap,
  StateCause,
  StateChange,
} from '../index.js';

export type { ClientOptions, ConnectionState, DisconnectReason, EventMap, StateCause, StateChange };

/** What `useConnectionState()` returns. */
export interface ConnectionInfo {
  state: ConnectionState;
  /** 0 for a fresh start, n while making (or waiting for) retry n. */
  attempt: number;
  /** Why the last transition happened (a `StateCause` code, for every state). */
  reason: StateCause;
  /** A human-readable explanation of `reason`. */
  message: string;
  /** Milliseconds until the next retry, as of the last transition (null unless reconnecting online). */
  nextRetryMs: number | null;
  /** Whether this tab runs the connection that the app's tabs share (see `shareAcrossTabs`). */
  isLeader: boolean;
}

/** What `useSockline()` returns. */
export interface SocklineApi {
  /** The client, or `null` until the WASM module is initialised (and after unmount). */
  client: SocklineClient | null;
  state: ConnectionState;
  isConnected: boolean;
  /**
   * Queues an event (see `SocklineClient.send`); returns its id, or `null` when the client does
   * not exist yet: the event is then sent by the client as soon as it is created.
   */
  send<K extends string>(name: K, data?: ClientPayload<K>): number | null;
  /** `SocklineClient.request`, waiting for the client to exist first. */
  request<T = unknown, K extends string = string>(
    name: K,
    data?: ClientPayload<K>,
    options?: { timeoutMs?: number },
  ): Promise<T>;
  /** Joins `room`; reference-counted, so two components may join the same room. */
  join(room: string): void;
  /** Undoes one `join(room)`; the client leaves when the last joiner leaves. */
  leave(room: string): void;
  /** Closes the current socket (if any) and connects at once, with the backoff reset. */
  reconnect(): void;
}

export interface SocklineProviderProps {
  /**
   * `new SocklineClient(options)`. Read once, when the client is created; to use other options,
   * remount the provider (e.g. with a `key`). `getToken` is the exception: the latest one is called.
   */
  options: ClientOptions;
  /** Call `connect()` once the client is created (default true). */
  autoConnect?: boolean;
  /** Rendered instead of the children until the client exists (default: the children). */
  fallback?: ReactNode;
  children?: ReactNode;
}

let initPromise: Promise<unknown> | null = null;

/** Initialises the WASM module once per page; later calls return the same promise. */
export function initSockline(): Promise<unknown> {
  if (!initPromise) {
    initPromise = init().catch((e: unknown) => {
      initPromise = null; // let a later provider try again
      throw e;
    });
  }
  return initPromise;
}

const INITIAL: ConnectionInfo = {
  state: 'disconnected',
  attempt: 0,
  reason: 'not_started',
  message: 'not started',
  nextRetryMs: null,
  isLeader: false,
};

interface Controller {
  client: SocklineClient | null;
  send: SocklineApi['send'];
  request: SocklineApi['request'];
  join: SocklineApi['join'];
  leave: SocklineApi['leave'];
  reconnect: SocklineApi['reconnect'];
}

const ControllerContext = createContext<Controller | null>(null);
const StateContext = createContext<ConnectionInfo>(INITIAL);

function missingProvider(): never {
  throw new Error('sockline/react: this hook must be used inside <SocklineProvider>');
}

/** Owns one client for its subtree. Safe under StrictMode: one socket, freed on unmount. */
export function SocklineProvider({
  options,
  autoConnect = true,
  fallback,
  children,
}: SocklineProviderProps): ReactElement {
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const [client, setClient] = useState<SocklineClient | null>(null);
  const [info, setInfo] = useState<ConnectionInfo>(INITIAL);

  // Survives StrictMode's simulated unmount/remount, so work queued by children's effects
  // (which run before this provider's effect) is not lost.
  const pending = useRef({
    rooms: new Map<string, number>(),
    sends: [] as Array<[string, unknown]>,
    waiters: [] as Array<(c: SocklineClient) => void>,
    client: null as SocklineClient | null,
  }).current;

  useEffect(() => {
    let cancelled = false;
    let created: SocklineClient | null = null;
    let offState: (() => void) | null = null;
    let offLeader: (() => void) | null = null;
    initSockline().then(
      () => {
        // Under StrictMode the first effect is cleaned up before this runs: no client for it.
        if (cancelled) return;
        const opts: ClientOptions = { ...optionsRef.current };
        if (opts.getToken) opts.getToken = () => optionsRef.current.getToken!();
        const c = new SocklineClient(opts);
        created = c;
        offState = c.onState((s: StateChange) =>
          setInfo({
            state: s.state,
            attempt: s.attempt,
            reason: s.reason,
            message: s.message,
            nextRetryMs: s.nextRetryMs,
            isLeader: c.isLeader,
          }),
        );
        offLeader = c.on('leader_changed', ({ isLeader }) => setInfo((i) => ({ ...i, isLeader })));
        for (const room of pending.rooms.keys()) c.join(room);
        for (const [name, data] of pending.sends.splice(0)) c.send(name, data as never);
        pending.client = c;
        for (const w of pending.waiters.splice(0)) w(c);
        setInfo({ ...INITIAL, state: c.state as ConnectionState, isLeader: c.isLeader });
        setClient(c);
        if (autoConnect) c.connect();
      },
      (e: unknown) => {
        if (!cancelled) console.error('sockline/react: WASM init failed', e);
      },
    );
    return () => {
      cancelled = true;
      if (created) {
        pending.client = null;
        offState?.();
        offLeader?.();
        created.free();
        setClient(null);
        setInfo(INITIAL);
      }
    };
    // Created once per mount; option changes are read through optionsRef.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const controller = useMemo<Controller>(
    () => ({
      client,
      send(name, data) {
        const c = pending.client;
        if (c) return c.send(name, data);
        pending.sends.push([name, data]);
        return null;
      },
      request(name, data, opts) {
        const c = pending.client;
        if (c) return c.request(name, data, opts);
        return new Promise<SocklineClient>((resolve) => pending.waiters.push(resolve)).then((c2) =>
          c2.request(name, data, opts),
        );
      },
      join(room) {
        const n = pending.rooms.get(room) ?? 0;
        pending.rooms.set(room, n + 1);
        if (n === 0) pending.client?.join(room);
      },
      leave(room) {
        const n = pending.rooms.get(room) ?? 0;
        if (n <= 1) {
          pending.rooms.delete(room);
          if (n === 1) pending.client?.leave(room);
        } else {
          pending.rooms.set(room, n - 1);
        }
      },
      reconnect() {
        const c = pending.client;
        if (!c) return;
        if (c.state !== 'disconnected') c.disconnect();
        c.connect();
      },
    }),
    [client, pending],
  );

  const body = client === null && fallback !== undefined ? fallback : children;
  return createElement(
    ControllerContext.Provider,
    { value: controller },
    createElement(StateContext.Provider, { value: info }, body),
  );
}

/** The client and its commands, plus the current state. */
export function useSockline(): SocklineApi {
  const controller = useContext(ControllerContext) ?? missingProvider();
  const { state } = useContext(StateContext);
  return useMemo(
    () => ({
      client: controller.client,
      state,
      isConnected: state === 'connected',
      send: controller.send,
      request: controller.request,
      join: controller.join,
      leave: controller.leave,
      reconnect: controller.reconnect,
    }),
    [controller, state],
  );
}

/** `{ state, attempt, reason, message, nextRetryMs, isLeader }`, updated on every transition and leader change. */
export function useConnectionState(): ConnectionInfo {
  if (useContext(ControllerContext) === null) missingProvider();
  return useContext(StateContext);
}

/**
 * Listens for `name` while mounted. The latest `handler` is always the one called; changing it
 * does not resubscribe (only a new `name` or a new client does).
 */
export function useSocklineEvent<K extends keyof EventMap>(
  name: K,
  handler: (data: EventMap[K]) => void,
): void {
  const { client } = useContext(ControllerContext) ?? missingProvider();
  const handlerRef = useRef(handler);
  useLayoutEffect(() => {
    handlerRef.current = handler;
  });
  useEffect(() => {
    if (!client) return;
    const off = client.on(name, (data: EventMap[K]) => handlerRef.current(data));
    return () => {
      // The provider may have freed the client first (it unmounts before its children).
      try {
        off();
      } catch {
        /* already released with the client */
      }
    };
  }, [client, name]);
}
