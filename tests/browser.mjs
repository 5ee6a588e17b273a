#!/usr/bin/env node
// Browser tests of the wasm face (`SocklineClient` of pkg/sockline.js: the wasm core and its
// TypeScript driver) in headless Chromium against the reference server. Run through
// `make test-browser`: scripts/browser-harness.mjs starts the server and passes its control URL
// in SOCKLINE_HARNESS (GET /config, /token; POST /notify, /kill, /start).
//
// Each test runs in a page of its own, answered by request routing on the harness's origin:
// /t/ is the test page (below), /pkg/ the built package. The test bodies run in the page
// (page.evaluate) with the helpers of `window.H`; an assertion that fails there throws, which
// fails the test. Usage: node tests/browser.mjs [--pkg DIR]
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { launchOptions } from '../scripts/chromium.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// playwright-core is one of www/'s npm packages (it drives Debian's chromium; nothing is downloaded).
const { chromium } = createRequire(resolve(here, '../www/package.json'))('playwright-core');
const args = process.argv.slice(2);
const i = args.indexOf('--pkg');
const PKG = resolve(i >= 0 ? args[i + 1] : resolve(here, '../pkg'));
const HARNESS = process.env.SOCKLINE_HARNESS;
if (!HARNESS) {
  console.error('SOCKLINE_HARNESS is not set: run the browser tests with `make test-browser`');
  process.exit(2);
}
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

// The page's helpers: the harness's control API, page events, recorders, waits and asserts.
const PAGE = `<!doctype html><meta charset="utf-8"><title>sockline browser tests</title>
<script type="module">
const S = await import('/pkg/sockline.js');
await S.default();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const show = (x) => { try { return JSON.stringify(x); } catch { return String(x); } };
const H = {
  sleep,
  async http(method, path, body) {
    const r = await fetch(path, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
    const text = await r.text();
    if (!r.ok) throw new Error(method + ' ' + path + ': ' + r.status + ' ' + text);
    return JSON.parse(text);
  },
  async wsUrl() { return (await H.http('GET', '/config')).ws; },
  async token(user) { return (await H.http('GET', '/token?user=' + user)).token; },
  async notify(body) { return (await H.http('POST', '/notify', JSON.stringify(body))).delivered; },
  /** A client for user with a fixed token and extra options merged in. */
  async clientFor(user, extra = {}) {
    return new S.SocklineClient({ url: await H.wsUrl(), token: await H.token(user), ...extra });
  },
  setHidden(hidden) {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange'));
  },
  fire(name) { window.dispatchEvent(new Event(name)); },
  recorder() { const calls = []; const f = (x) => { calls.push(x); }; f.calls = calls; return f; },
  /** Polls done every 20 ms for up to ms. */
  async waitUntil(what, ms, done) {
    for (let waited = 0; !done(); waited += 20) {
      if (waited >= ms) throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
      await sleep(20);
    }
  },
  waitState(client, state, ms) { return H.waitUntil('state ' + state, ms, () => client.state === state); },
  eq(actual, expected, what = 'value') {
    if (show(actual) !== show(expected) || typeof actual !== typeof expected) throw new Error(what + ': got ' + show(actual) + ', expected ' + show(expected));
  },
  ok(cond, what) { if (!cond) throw new Error('expected: ' + what); },
  /** The error f throws (it must throw). */
  thrown(f, what) {
    try { f(); } catch (e) { return e; }
    throw new Error(what + ' did not throw');
  },
};
window.S = S;
window.H = H;
document.title = 'ready';
</script>`;

let browser;
before(async () => {
  browser = await chromium.launch(launchOptions({ routed: true }));
});
after(() => browser?.close());

/** Runs body(H, S) in a fresh page; console output is printed, page errors fail the test. */
async function inPage(body) {
  const ctx = await browser.newContext();
  try {
    await ctx.route(
      (url) => url.origin === HARNESS && (url.pathname.startsWith('/t/') || url.pathname.startsWith('/pkg/')),
      async (route) => {
        const { pathname } = new URL(route.request().url());
        if (pathname.startsWith('/t/')) return route.fulfill({ status: 200, body: PAGE, contentType: 'text/html' });
        const file = normalize(join(PKG, pathname.slice(5)));
        if (!file.startsWith(PKG)) return route.fulfill({ status: 403 });
        try {
          await route.fulfill({ status: 200, body: await readFile(file), contentType: TYPES[extname(file)] ?? 'application/octet-stream' });
        } catch {
          await route.fulfill({ status: 404 });
        }
      },
    );
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => process.env.DEBUG_BROWSER && console.error('console:', m.text()));
    await page.goto(`${HARNESS}/t/`);
    await page.waitForFunction(() => document.title === 'ready', null, { timeout: 10_000 });
    await page.evaluate(`(${body})(window.H, window.S)`);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  } finally {
    await ctx.close();
  }
}

test('connects, authenticates and delivers a notification as a plain object', () =>
  inPage(async (H) => {
    const client = await H.clientFor('bw-notify');
    const notes = H.recorder();
    const states = H.recorder();
    client.on('new_notification', notes);
    client.onState(states);
    H.eq(client.state, 'disconnected', 'state');
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    H.eq(states.calls.map((s) => s.state), ['connecting', 'authenticating', 'connected'], 'states');
    const delivered = await H.notify({ user: 'bw-notify', event: 'new_notification', data: { id: 'n1', title: 'Hello', body: 'b' } });
    H.eq(delivered, 1, 'delivered');
    await H.waitUntil('the notification', 3_000, () => notes.calls.length === 1);
    const note = notes.calls[0];
    H.ok(note !== null && typeof note === 'object' && Object.getPrototypeOf(note) === Object.prototype, 'a plain object');
    H.eq(note.title, 'Hello', 'title');
    H.eq(note.id, 'n1', 'id');
  }));

test('server killed: reconnects after the restart and re-joins its rooms', () =>
  inPage(async (H, S) => {
    // getToken: the token is fetched again for every attempt.
    const client = new S.SocklineClient({
      url: await H.wsUrl(),
      getToken: async () => (await H.http('GET', '/token?user=bw-restart')).token,
      backoff: { initialMs: 100, maxMs: 300, maxRetries: 100 },
    });
    const messages = H.recorder();
    client.on('new_message', messages);
    client.join('chat:bw-restart');
    client.connect();
    await H.waitState(client, 'connected', 5_000);

    const states = H.recorder();
    client.onState(states);
    const before = client.stats().debug;
    await H.http('POST', '/kill');
    await H.waitState(client, 'reconnecting', 5_000);
    // `reconnecting` says why, as every transition does.
    const lost = states.calls[0];
    H.eq(lost.state, 'reconnecting', 'state');
    H.eq(lost.reason, 'socket_closed', 'reason');
    H.ok(lost.message.includes('1006'), `the message names the close code: ${lost.message}`);
    await H.sleep(400); // a few failed retries while the server is down
    H.ok(client.state !== 'connected', 'not connected while the server is down');
    await H.http('POST', '/start');
    await H.waitState(client, 'connected', 10_000);

    // The room was re-joined on the new session: a room notification reaches the client.
    const body = { room: 'chat:bw-restart', event: 'new_message', data: { chat_id: 'bw-restart', from: 'srv', text: 'hi', id: 'm1' } };
    let delivered = 0;
    for (let i = 0; i < 50 && delivered < 1; i++) {
      delivered = await H.notify(body);
      if (delivered < 1) await H.sleep(50);
    }
    H.ok(delivered >= 1, 'room chat:bw-restart was re-joined');
    await H.waitUntil('the room message', 3_000, () => messages.calls.length >= 1);
    H.eq(messages.calls.at(-1).text, 'hi', 'text');
    H.eq(client.stats().reconnects, 1, 'reconnects');
    // The sockets the server dropped were released with their closures.
    const after = client.stats().debug;
    H.eq(after.sockets, 1, 'sockets');
    H.eq(after.closures, before.closures, 'closures');
    H.eq(after.tokenFetches, 0, 'tokenFetches');
  }));

test('hidden pauses, and visible reconnects at once', () =>
  inPage(async (H) => {
    // debug: every transition is logged with a `[sockline]` prefix (exercised, not asserted).
    const client = await H.clientFor('bw-hidden', { debug: true });
    const states = H.recorder();
    client.onState(states);
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    H.setHidden(true);
    H.eq(client.state, 'disconnected', 'state when hidden');
    H.eq(states.calls.at(-1).reason, 'paused', 'reason');
    H.setHidden(false);
    // At once: no backoff, the attempt starts inside the event handler.
    H.eq(client.state, 'connecting', 'state when visible');
    await H.waitState(client, 'connected', 5_000);
  }));

test('offline waits without spending retries, and online connects at once', () =>
  inPage(async (H) => {
    const client = await H.clientFor('bw-offline', { backoff: { initialMs: 50, maxMs: 50 } });
    const states = H.recorder();
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    client.onState(states);
    H.fire('offline');
    H.eq(client.state, 'reconnecting', 'state when offline');
    const change = states.calls.at(-1);
    H.eq(change.nextRetryMs, null, 'nextRetryMs');
    H.eq(change.attempt, 0, 'attempt');
    // Far longer than the backoff: still waiting, nothing attempted, no retry spent.
    await H.sleep(600);
    H.eq(client.state, 'reconnecting', 'state after 600 ms offline');
    H.eq(states.calls.length, 1, 'state changes');
    H.eq(client.stats().attempt, 0, 'stats().attempt');
    H.fire('online');
    H.eq(client.state, 'connecting', 'state when online');
    await H.waitState(client, 'connected', 5_000);
  }));

test('disconnect() is not undone by visible or online', () =>
  inPage(async (H) => {
    const client = await H.clientFor('bw-stop');
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    client.disconnect();
    H.eq(client.state, 'disconnected', 'state');
    H.setHidden(true);
    H.setHidden(false);
    H.fire('offline');
    H.fire('online');
    H.fire('pageshow');
    await H.sleep(300);
    H.eq(client.state, 'disconnected', 'state after the page events');
    H.eq(client.stats().debug.sockets, 0, 'sockets');
  }));

test('a throwing listener neither stops the other listeners nor the client', () =>
  inPage(async (H) => {
    const client = await H.clientFor('bw-throw');
    const errors = H.recorder();
    const notes = H.recorder();
    client.on('error', errors);
    client.on('new_notification', () => {
      throw new Error('boom');
    });
    client.on('new_notification', notes);
    // A listener that calls straight back into the client.
    client.on('new_notification', (n) => client.send('mark_notification_read', { id: n.id }));
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    const body = (id) => ({ user: 'bw-throw', event: 'new_notification', data: { id, title: 't' } });
    await H.notify(body('a'));
    await H.notify(body('b'));
    await H.waitUntil('both notifications', 3_000, () => notes.calls.length === 2);
    await H.waitUntil('two listener errors', 3_000, () => errors.calls.length === 2);
    const err = errors.calls.at(-1);
    H.ok(err instanceof Error, 'an Error');
    H.eq(err.code, 'listener_threw', 'code');
    H.eq(client.state, 'connected', 'state');
    // The client still works: a request round-trips (both notifications were marked read).
    const reply = await client.request('get_unread_count', {}, { timeoutMs: 3000 });
    H.eq(reply.count, 0, 'unread count');
  }));

test('fifty reconnect cycles leave no growth', () =>
  inPage(async (H) => {
    const client = await H.clientFor('bw-cycles');
    const notes = H.recorder();
    const off = client.on('new_notification', notes);
    const offState = client.onState(H.recorder());
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    const before = client.stats().debug;
    H.eq(before.sockets, 1, 'sockets');
    H.eq(before.pageListeners, 5, 'pageListeners');
    for (let i = 0; i < 50; i++) {
      if (i % 3 === 0) {
        H.fire('offline');
        H.fire('online');
      } else if (i % 3 === 1) {
        H.setHidden(true);
        H.setHidden(false);
      } else {
        client.disconnect();
        client.connect();
      }
      await H.waitState(client, 'connected', 5_000);
    }
    // Let the closed sockets' late events (if any) arrive.
    await H.sleep(200);
    const after = client.stats().debug;
    for (const key of ['closures', 'sockets', 'pageListeners', 'listeners', 'stateListeners', 'pendingRequests', 'tokenFetches']) {
      H.eq(after[key], before[key], `debug.${key} over 50 cycles`);
    }
    // Unsubscribing removes exactly the listeners; free() releases everything.
    off();
    offState();
    const d = client.stats().debug;
    H.eq(d.listeners, 0, 'listeners');
    H.eq(d.stateListeners, 0, 'stateListeners');
    client.free();
    H.eq(H.thrown(() => client.state, 'state after free()').code, 'freed', 'code after free()');
  }));

test('bad input is a JS error with a code, never a panic', () =>
  inPage(async (H, S) => {
    const bad = [
      '42',
      'null',
      '{"token":"t"}',
      '{"url":5,"token":"t"}',
      '{"url":"http://x","token":"t"}',
      '{"url":"ws://x"}',
      '{"url":"ws://x","token":"t","backoff":{"initialMs":"1"}}',
      '{"url":"ws://x","token":"t","backoff":{"maxRetries":1.5}}',
      '{"url":"ws://x","token":"t","outbox":3}',
      '{"url":"ws://x","token":"t","debug":"yes"}',
      '{"url":"ws://x","getToken":"not a function"}',
    ];
    for (const options of bad) {
      const err = H.thrown(() => new S.SocklineClient(JSON.parse(options)), options);
      H.ok(err instanceof Error, `${options}: an Error`);
      H.eq(err.code, 'invalid_options', options);
    }
    const client = new S.SocklineClient({ url: 'ws://127.0.0.1:9/ws', token: 't' });
    H.eq(H.thrown(() => client.on(5, H.recorder()), 'a bad name').code, 'invalid_argument', 'bad name');
    H.eq(H.thrown(() => client.on('x', 5), 'a bad listener').code, 'invalid_argument', 'bad listener');
    H.eq(H.thrown(() => client.send('x', { n: 10n }), 'a BigInt').code, 'bad_payload', 'bigint');
    H.eq(H.thrown(() => client.send('', null), 'an empty name').code, 'empty_event_name', 'empty name');
    H.eq(client.state, 'disconnected', 'state');
  }));

test('a binary frame is a binary_frame error, and the client stays connected', () =>
  inPage(async (H, S) => {
    const url = (await H.http('GET', '/config')).scripted;
    const client = new S.SocklineClient({ url, token: 't' });
    const errors = H.recorder();
    client.on('error', errors);
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    await H.waitUntil('the binary frame error', 3_000, () => errors.calls.length === 1);
    H.eq(errors.calls[0].code, 'binary_frame', 'code');
    await H.sleep(100);
    H.eq(client.state, 'connected', 'state');
    H.eq(errors.calls.length, 1, 'errors');
    client.free();
  }));

test('a failed plain send is an error event and an ack event', () =>
  inPage(async (H) => {
    const client = await H.clientFor('bw-failed-send');
    const errors = H.recorder();
    const acks = H.recorder();
    client.on('error', errors);
    client.on('ack', acks);
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    const ok = client.send('get_unread_count', undefined);
    const bad = client.send('no_such_event', undefined);
    await H.waitUntil('both acks', 3_000, () => acks.calls.length === 2);
    const [first, second] = acks.calls;
    H.eq(first.id, ok, 'first id');
    H.eq(first.ok, true, 'first ok');
    H.eq(first.data.count, 0, 'first data');
    H.eq(second.id, bad, 'second id');
    H.eq(second.ok, false, 'second ok');
    H.eq(second.error.code, 'unknown_event', 'second error');
    H.eq(errors.calls.length, 1, 'errors');
    H.eq(errors.calls[0].code, 'unknown_event', 'error code');
    H.eq(errors.calls[0].id, bad, 'error id');
    client.free();
  }));

test('reconnect() replaces a live socket now, and maxRetries: Infinity is accepted', () =>
  inPage(async (H) => {
    const client = await H.clientFor('bw-reconnect', { backoff: { maxRetries: Infinity } });
    const states = H.recorder();
    client.onState(states);
    client.connect();
    await H.waitState(client, 'connected', 5_000);
    const before = states.calls.length;
    client.reconnect();
    const first = states.calls[before];
    H.eq(first.state, 'connecting', 'state');
    H.eq(first.reason, 'reconnect', 'reason');
    await H.waitState(client, 'connected', 5_000);
    H.eq(client.stats().reconnects, 1, 'reconnects');
    client.free();
  }));
