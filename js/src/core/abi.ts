// Loading the wasm core (`init`, `initSync`) and calling it: `call(client, op, a, b, ...strings)`
// writes the strings into the core's buffer as UTF-8 (0xFF between them, a byte UTF-8 never
// uses), runs `sl_call` at `performance.now()` and reads its answer: nothing, `[…]` (returned),
// or `{ code, message }` (thrown as a `SocklineError`). The wasm imports nothing and never calls
// out, so a call never re-enters JS. src/wasm/abi.rs documents every op.
import { sockError } from './util.js';

/** What `init()` accepts: where the `.wasm` comes from. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;
/** What `initSync()` accepts. */
export type SyncInitInput = BufferSource | WebAssembly.Module;

/** The wasm core's exports (what `init()` resolves with). */
export interface InitOutput {
  readonly memory: WebAssembly.Memory;
  /** The call buffer, at least `len` bytes long: its address. */
  readonly sl_buf: (len: number) => number;
  /** One call: the answer's length in bytes (the answer is at `sl_buf(0)`). */
  readonly sl_call: (client: number, op: number, now: number, a: number, b: number, len: number) => number;
}

// The ops (src/wasm/abi.rs `op`).
export const NEW = 0, FREE = 1, DRAIN = 2, CONNECT = 3, RECONNECT = 4, DISCONNECT = 5, JOIN = 6,
  LEAVE = 7, SEND = 8, REQUEST = 9, RESTORE = 10, RESUME_FROM = 11, PAGE = 12, TIMEOUT = 13,
  OPENED = 14, FRAME = 15, BINARY = 16, CLOSED = 17, SOCKET_ERROR = 18, TOKEN = 19, STATE = 20,
  USER = 21, RESUME_POINT = 22, NEXT_SEND_ID = 23, STATS = 24;

let wasm: InitOutput | undefined;
let loading: Promise<InitOutput> | undefined;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs one call on the core; see the file comment. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function call(client: number, op: number, a = 0, b = 0, ...strings: string[]): any {
  return run(client, op, a, b, [], strings);
}

/** `NEW`: the options' numbers (little-endian f64s) before its strings; the new client's handle. */
export function create(nums: number[], a: number, b: number, ...strings: string[]): number {
  return run(0, NEW, a, b, nums, strings)[0];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function run(client: number, op: number, a: number, b: number, nums: number[], strings: string[]): any {
  if (!wasm) throw sockError('not_initialized', 'call `await init()` before creating a client');
  let len = nums.length * 8;
  let room = len + strings.length;
  for (const s of strings) room += s.length * 3;
  if (room) {
    const at = wasm.sl_buf(room); // first: it may grow the memory (a new buffer)
    const bytes = new Uint8Array(wasm.memory.buffer, at, room);
    const view = new DataView(wasm.memory.buffer, at, room);
    nums.forEach((n, i) => view.setFloat64(i * 8, n, true));
    strings.forEach((s, i) => {
      if (i) bytes[len++] = 255;
      len += encoder.encodeInto(s, bytes.subarray(len)).written;
    });
  }
  const n = wasm.sl_call(client, op, performance.now(), a, b, len);
  if (!n) return;
  const answer = JSON.parse(decoder.decode(new Uint8Array(wasm.memory.buffer, wasm.sl_buf(0), n)));
  if (Array.isArray(answer)) return answer;
  throw sockError(answer.code, answer.message);
}

function instantiate(module: WebAssembly.Module | BufferSource): InitOutput {
  if (!(module instanceof WebAssembly.Module)) module = new WebAssembly.Module(module);
  return (wasm = new WebAssembly.Instance(module, {}).exports as unknown as InitOutput);
}

/** `{ module }` or, as before, the module itself. */
function unwrap<T>(arg: T | Record<string, T>, key: string): T {
  return arg !== undefined && Object.getPrototypeOf(arg) === Object.prototype ? (arg as Record<string, T>)[key] : (arg as T);
}

/** Loads the core synchronously from its bytes or a compiled module (`{ module }`). */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput {
  return wasm ?? instantiate(unwrap(module, 'module') as SyncInitInput);
}

async function load(source: InitInput | Promise<InitInput> | undefined): Promise<InitOutput> {
  let input = await (source ?? new URL('../sockline_bg.wasm', import.meta.url));
  if (typeof input === 'string' || input instanceof URL || (typeof Request === 'function' && input instanceof Request)) {
    input = await fetch(input);
  }
  if (typeof Response === 'function' && input instanceof Response) {
    if (!input.ok) throw new Error(`failed to fetch Wasm: ${input.status} ${input.statusText} fetching '${input.url}'`);
    try {
      return (wasm = (await WebAssembly.instantiateStreaming(input.clone(), {})).instance.exports as unknown as InitOutput);
    } catch {
      // Served without the `application/wasm` type (or no streaming here): compile the bytes.
      input = await input.arrayBuffer();
    }
  }
  const module = input instanceof WebAssembly.Module ? input : await WebAssembly.compile(input as BufferSource);
  return instantiate(module);
}

/**
 * Loads the wasm core once per page (later calls return the same promise): by default from next
 * to this file (`new URL('../sockline_bg.wasm', import.meta.url)`, which Vite and webpack resolve),
 * or from `{ module_or_path }`: a URL, a `Response` (or a promise of one), the bytes or a
 * compiled `WebAssembly.Module`.
 */
export default function init(
  module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput> {
  if (wasm) return Promise.resolve(wasm);
  loading ??= load(unwrap(module_or_path, 'module_or_path') as InitInput | undefined).catch((e) => {
    loading = undefined;
    throw e;
  });
  return loading;
}
