// Reading `new SocklineClient(options)`: each option checked in the order and words they were
// always checked in (a missing or mistyped one throws `invalid_options` naming it), then handed
// to the wasm core as numbers and strings (src/wasm/options.rs turns them into the core's
// `ConnectionConfig`, whose defaults apply to whatever is not given). `undefined` and `null`
// both mean not given.
import type { ClientOptions } from './types.js';
import { randomId, sockError } from './util.js';

/** What the driver keeps, and what the core is given. */
export interface Read {
  /** The core's numbers (src/wasm/options.rs `NUMS`, in its order; NaN: not given). */
  nums: number[];
  url: string;
  clientId: string;
  /** The static token, if one is the token source. */
  token: string | undefined;
  getToken: (() => unknown) | undefined;
  WebSocket: (new (url: string) => WebSocket) | undefined;
  follow: boolean;
  debug: boolean;
}

type Obj = Record<string, unknown>;

const fail = (message: string): never => {
  throw sockError('invalid_options', message);
};
const must = (path: string, what: string) => fail(`\`${path}\` must be ${what}`);
const given = (v: unknown) => v != null;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function string(o: Obj, key: string, path = key): string | undefined {
  const v = o[key];
  if (given(v) && typeof v !== 'string') must(path, 'a string');
  return given(v) ? (v as string) : undefined;
}

/** 1 / 0 for a boolean, NaN when not given. */
function bool(o: Obj, key: string, path = key): number {
  const v = o[key];
  if (given(v) && typeof v !== 'boolean') must(path, 'a boolean');
  return given(v) ? +(v as boolean) : NaN;
}

/** A finite number of at least `min` (0 or 1), NaN when not given; `integer`: whole too. */
function number(o: Obj, key: string, path: string, min = 0, integer = false): number {
  const v = o[key];
  if (!given(v)) return NaN;
  if (typeof v !== 'number' || !isFinite(v) || v < min) must(path, `a finite number of at least ${min}`);
  if (integer && (v as number) % 1) must(path, 'an integer');
  return v as number;
}

function object(o: Obj, key: string): Obj {
  const v = o[key];
  if (given(v) && !isObject(v)) must(key, 'an object');
  return (v as Obj) ?? {};
}

/** Reads and checks the options; throws `invalid_options`. */
export function readOptions(options: ClientOptions): Read {
  const o = options as unknown as Obj;
  if (!isObject(o)) fail('options must be an object: { url, token | getToken, … }');
  const url = string(o, 'url') ?? fail('`url` is required (e.g. "wss://example.com/ws")');
  if (!/^wss?:\/\//.test(url)) fail('`url` must start with ws:// or wss://');
  const token = string(o, 'token');
  const getToken = o.getToken;
  if (given(getToken) && typeof getToken !== 'function') fail('`getToken` must be a function returning a Promise<string>');
  if (!given(getToken) && token === undefined) fail('one of `token` or `getToken` is required');
  const b = object(o, 'backoff');
  const nums = [
    number(b, 'initialMs', 'backoff.initialMs'),
    number(b, 'maxMs', 'backoff.maxMs'),
    number(b, 'factor', 'backoff.factor', 1),
    // `Infinity`: never give up (as socket.io does by default).
    b.maxRetries === Infinity ? Infinity : number(b, 'maxRetries', 'backoff.maxRetries', 0, true),
    bool(b, 'jitter', 'backoff.jitter'),
    bool(o, 'pauseWhenHidden'),
    number(o, 'hiddenGraceMs', 'hiddenGraceMs'),
    number(o, 'heartbeatGraceMs', 'heartbeatGraceMs'),
  ];
  const box = object(o, 'outbox');
  nums.push(number(box, 'maxMessages', 'outbox.maxMessages', 0, true), number(box, 'maxBytes', 'outbox.maxBytes', 0, true));
  const clientId = string(o, 'clientId');
  if (clientId !== undefined && !/^[A-Za-z0-9_-]{16,64}$/.test(clientId)) fail('`clientId` must be 16-64 characters of [A-Za-z0-9_-]');
  nums.push(number(o, 'firstSendId', 'firstSendId', 0, true));
  const follow = bool(o, 'followPageVisibility') !== 0;
  const ctor = o.WebSocket;
  if (given(ctor)) {
    if (typeof ctor !== 'function') fail("`WebSocket` must be a WebSocket constructor (e.g. `import WebSocket from 'ws'`)");
  } else if (typeof WebSocket === 'undefined') {
    fail('there is no global WebSocket here (Node < 22?): pass `WebSocket` in the options, e.g. the `ws` package');
  }
  return {
    nums,
    url,
    clientId: clientId ?? randomId(),
    token: given(getToken) ? undefined : token,
    getToken: getToken as (() => unknown) | undefined,
    WebSocket: ctor as (new (url: string) => WebSocket) | undefined,
    follow,
    debug: bool(o, 'debug') === 1,
  };
}
