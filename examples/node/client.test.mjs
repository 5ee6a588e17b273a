// sockline in Node, as a Node app uses it: the package from node_modules (a copy of ../../pkg,
// installed like a registry package), the `ws` package as the WebSocket (Node 20 has no global
// one), the WASM loaded by `init()` (from disk) or `initSync(bytes)`. Against the reference
// server, which this file starts on 127.0.0.1 (an OS-chosen port), SIGKILLs and restarts on the
// same port: the client goes `reconnecting` and back, a send queued meanwhile is processed, and
// a /notify after the restart arrives. Every wait is bounded.
//
// Usage: node --test client.test.mjs   (SOCKLINE_SERVER_BIN: the server binary; default
// ../../target/debug/sockline-server)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import init, { SocklineClient } from 'sockline';
import WebSocket from 'ws';
import { SocklineServer } from '../../scripts/sockline-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SERVER = resolve(process.env.SOCKLINE_SERVER_BIN ?? resolve(here, '../../target/debug/sockline-server'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- the server ----------

const server = new SocklineServer(SERVER);
after(() => server.kill());

/** Resolves with the first value `on(listener)` delivers that `pick` accepts; rejects after `ms`. */
function next(on, pick = () => true, what = 'an event', ms = 10_000) {
  return new Promise((resolveNext, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    timer.unref(); // a wait a failed test left behind does not hold the process
    const off = on((value) => {
      if (!pick(value)) return;
      clearTimeout(timer);
      off();
      resolveNext(value);
    });
  });
}

// ---------- tests ----------

test('init() with no argument reads the WASM beside the package from disk', async () => {
  const loaded = await init();
  assert.equal(typeof loaded.memory, 'object', 'the WASM exports');
  // Loaded once: a later init(), with the bytes this time, returns the same instance.
  const bytes = readFileSync(new URL(import.meta.resolve('sockline/sockline_bg.wasm')));
  assert.equal(await init({ module_or_path: bytes }), loaded);
});

test('without a global WebSocket, leaving out the WebSocket option is a clear invalid_options error', {
  skip: typeof globalThis.WebSocket === 'function' && 'this Node has a global WebSocket',
}, async () => {
  await init();
  assert.throws(() => new SocklineClient({ url: 'ws://127.0.0.1:9/ws', token: 't' }), (e) => {
    assert.equal(e.code, 'invalid_options');
    assert.match(e.message, /no global WebSocket.*pass `WebSocket` in the options/);
    return true;
  });
});

test('connects with ws, receives a /notify, reconnects after the server is killed and restarted', { timeout: 60_000 }, async () => {
  await init();
  await server.start();
  const client = new SocklineClient({
    url: `ws://127.0.0.1:${server.port}/ws`,
    getToken: () => server.token('alice'),
    WebSocket,
    backoff: { initialMs: 200, maxMs: 1000 },
  });
  try {
    // Node has no page, no IndexedDB and (Node 20) no navigator.locks: one connection of its
    // own, unacked sends kept in memory; the wrapper looked for them without touching them.
    const stats = client.stats();
    if (typeof navigator === 'undefined') assert.equal(stats.sharing, false);
    assert.equal(stats.persist, false);
    const states = [];
    client.onState((s) => states.push(s.state));
    const errors = [];
    client.on('error', (e) => errors.push(`${e.code}: ${e.message}`));
    const onEvent = (name) => (listener) => client.on(name, listener);
    const onState = (listener) => client.onState(listener);

    client.connect();
    await next(onState, (s) => s.state === 'connected', 'connected');
    const first = next(onEvent('new_notification'), (n) => n.id === 'n-1', 'n-1');
    assert.equal((await server.notify({ user: 'alice', event: 'new_notification', data: { id: 'n-1', title: 'before' } })).delivered, 1);
    assert.equal((await first).title, 'before');

    const reconnecting = next(onState, (s) => s.state === 'reconnecting', 'reconnecting');
    await server.kill();
    const change = await reconnecting;
    assert.ok(change.attempt >= 1, JSON.stringify(change));
    // Queued while the server is down, sent (and processed: the ack carries the message id the
    // server gave it) once it is back.
    const queued = client.send('message', { chat_id: 'node', text: 'sent during the outage' });
    const acked = next(onEvent('ack'), (a) => a.id === queued, `the ack of send ${queued}`, 20_000);
    await sleep(500); // at least one retry fails against the closed port

    const back = next(onState, (s) => s.state === 'connected', 'connected again', 20_000);
    await server.start();
    await back;
    const ack = await acked;
    assert.equal(ack.ok, true);
    assert.equal(typeof ack.data?.id, 'string', `processed, not taken for a repeat: ${JSON.stringify(ack)}`);
    const second = next(onEvent('new_notification'), (n) => n.id === 'n-2', 'n-2');
    assert.equal((await server.notify({ user: 'alice', event: 'new_notification', data: { id: 'n-2', title: 'after' } })).delivered, 1);
    assert.equal((await second).title, 'after');

    assert.deepEqual(states.slice(0, 3), ['connecting', 'authenticating', 'connected']);
    assert.equal(states.at(-1), 'connected');
    assert.ok(states.includes('reconnecting'), states.join(' → '));
    assert.deepEqual(errors, []);
  } finally {
    client.free();
  }
});

test('with a room joined, a send queued during the outage is processed after the restart', {
  // A fresh session re-joins the room set first, under send ids above the queued send's; a
  // server that kept only the highest id it processed answered the lower one as a repeat (acked
  // `ok` without its data, never processed). The server now dedupes per (user, client) id.
  timeout: 60_000,
}, async () => {
  await init();
  if (!server.child) await server.start();
  const client = new SocklineClient({
    url: `ws://127.0.0.1:${server.port}/ws`,
    getToken: () => server.token('bob'),
    WebSocket,
    backoff: { initialMs: 200, maxMs: 1000 },
  });
  try {
    const onEvent = (name) => (listener) => client.on(name, listener);
    const onState = (listener) => client.onState(listener);
    client.join('chat:node');
    client.connect();
    await next(onState, (s) => s.state === 'connected', 'connected');
    const reconnecting = next(onState, (s) => s.state === 'reconnecting', 'reconnecting');
    await server.kill();
    await reconnecting;
    const queued = client.send('message', { chat_id: 'node', text: 'queued with a room' });
    const acked = next(onEvent('ack'), (a) => a.id === queued, `the ack of send ${queued}`, 20_000);
    const echoed = next(onEvent('new_message'), (m) => m.text === 'queued with a room', 'the queued message in the room', 20_000);
    acked.catch(() => {});
    echoed.catch(() => {});
    await server.start();
    const ack = await acked;
    assert.equal(typeof ack.data?.id, 'string', `processed, not taken for a repeat: ${JSON.stringify(ack)}`);
    assert.equal((await echoed).from, 'bob');
  } finally {
    client.free();
  }
});

test('init() where the .wasm is not beside the package rejects saying so (and where to pass it)', () => {
  // A bundled server without the file: a copy of the package minus sockline_bg.wasm.
  const dir = mkdtempSync(join(tmpdir(), 'sockline-'));
  try {
    cpSync(dirname(fileURLToPath(import.meta.resolve('sockline'))), dir, { recursive: true });
    rmSync(join(dir, 'sockline_bg.wasm'));
    const entry = pathToFileURL(join(dir, 'index.js')).href;
    const wasm = fileURLToPath(import.meta.resolve('sockline/sockline_bg.wasm'));
    const script = `
      import { readFileSync } from 'node:fs';
      const { default: init, initSync } = await import(${JSON.stringify(entry)});
      const report = (p) => p.then(() => console.log('loaded'), (e) => console.log(e.message));
      await report(init());
      // Once the module is loaded (here by initSync with the bytes), init() returns it.
      initSync({ module: readFileSync(${JSON.stringify(wasm)}) });
      await report(init());
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    const [first, second] = out.trim().split('\n');
    assert.match(first, /^sockline: could not read file:.*sockline_bg\.wasm \(ENOENT.*\); pass the WASM to init\(\{ module_or_path \}\)$/);
    assert.equal(second, 'loaded');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Node app with the bytes instead: initSync({ module }) in a fresh process', () => {
  // Each process loads the WASM once, so this runs in a child of its own.
  const script = `
    import { readFileSync } from 'node:fs';
    import { initSync, SocklineClient } from 'sockline';
    import WebSocket from 'ws';
import { SocklineServer } from '../../scripts/sockline-server.mjs';
    initSync({ module: readFileSync(new URL(import.meta.resolve('sockline/sockline_bg.wasm'))) });
    const c = new SocklineClient({ url: 'ws://127.0.0.1:9/ws', token: 't', WebSocket });
    console.log(c.state);
    c.free();
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: here, encoding: 'utf8', timeout: 10_000 });
  assert.equal(out.trim(), 'disconnected');
});
