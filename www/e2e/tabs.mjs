#!/usr/bin/env node
// End-to-end tests of tab sharing and the durable outbox (issue 12), and of the token lifecycle in
// the browser (issue 15: in-band refresh, an expired token replaced at once): several pages of one browser
// context (one origin, so one group of tabs) run www/e2e/tabs/index.html, a bare page using the
// built package, against a real sockline-server (--dev) on an OS-chosen 127.0.0.1 port, in
// Debian's /usr/bin/chromium driven by playwright-core. The page and pkg/ are served by
// playwright's request routing (so a reload works while the context is offline); the socket and
// /dev/token go to the server. Bounded: per-test timeouts and an overall deadline.
//
// Usage: node e2e/tabs.mjs [--server PATH] [--pkg DIR]   (DEBUG_TABS=1 prints the pages' console)
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchOptions } from '../../scripts/chromium.mjs';
import { SocklineServer } from '../../scripts/sockline-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const SERVER = resolve(opt('--server', resolve(here, '../../target/debug/sockline-server')));
const PKG = resolve(opt('--pkg', resolve(here, '../../pkg')));
const PAGE_DIR = resolve(here, 'tabs');
const OVERALL_MS = 180_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- the server ----------

let server = null;

const health = () => server.health();
const notify = (body) => server.notify(body);

/** Polls `fn` until it returns a truthy value or `ms` pass. */
async function until(what, fn, ms = 10_000, every = 50) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await sleep(every);
  }
}

// ---------- the browser ----------

let browser;
const deadline = setTimeout(async () => {
  console.error(`[tabs] overall deadline of ${OVERALL_MS / 1000} s reached: stopping everything`);
  server?.child?.kill('SIGKILL');
  await browser?.close().catch(() => {});
  process.exit(1);
}, OVERALL_MS);
deadline.unref();

before(async () => {
  server = await new SocklineServer(SERVER).start();
  browser = await chromium.launch(launchOptions({ routed: true }));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  clearTimeout(deadline);
});

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.ts': 'text/plain' };

// Every context a test opens is closed after it, passed or failed, so no socket outlives its test.
const contexts = new Set();
afterEach(async () => {
  for (const ctx of contexts) await ctx.close().catch(() => {});
  contexts.clear();
  await until('no connection left', async () => (await health()).connections === 0, 5_000);
});

/** A context (one origin's storage: one group of tabs) whose /t/ and /pkg/ come from disk. */
async function newContext() {
  const ctx = await browser.newContext();
  contexts.add(ctx);
  await ctx.route(
    (url) => url.origin === server.url && (url.pathname.startsWith('/t/') || url.pathname.startsWith('/pkg/')),
    async (route) => {
      const { pathname } = new URL(route.request().url());
      const [root, rest] = pathname.startsWith('/t/') ? [PAGE_DIR, pathname.slice(3) || 'index.html'] : [PKG, pathname.slice(5)];
      const file = normalize(join(root, rest));
      if (!file.startsWith(root)) return route.fulfill({ status: 403 });
      try {
        const body = await readFile(file);
        await route.fulfill({ status: 200, body, contentType: TYPES[extname(file)] ?? 'application/octet-stream' });
      } catch {
        await route.fulfill({ status: 404 });
      }
    },
  );
  return ctx;
}

/** Opens the test page in `ctx` with query `q` (after `prepare(page)`, e.g. routes); resolves once its client exists. */
async function open(ctx, q = {}, prepare = async () => {}) {
  const page = await ctx.newPage();
  await prepare(page);
  page.setDefaultTimeout(10_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (process.env.DEBUG_TABS) page.on('console', (m) => console.error('console:', m.text()));
  const expected = /ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|WebSocket connection to .* failed/;
  page.on('console', (m) => m.type() === 'error' && !expected.test(m.text()) && errors.push(m.text()));
  const query = new URLSearchParams({ user: 'alice', ...q });
  await page.goto(`${server.url}/t/index.html?${query}`);
  await page.waitForFunction(() => document.title === 'ready');
  page.errors = errors;
  return page;
}

const stateOf = (page) => page.evaluate(() => window.t.client.state);
const statsOf = (page) => page.evaluate(() => window.t.client.stats());
const connected = (pages) => until('every page connected', async () => (await Promise.all(pages.map(stateOf))).every((s) => s === 'connected'));
const countOf = (page, name, key, value) => page.evaluate(([n, k, v]) => window.t.count(n, (d) => d?.[k] === v), [name, key, value]);
const logOf = (page) => page.evaluate(() => window.t.log);

async function leaderOf(pages) {
  const flags = await Promise.all(pages.map(async (p) => (await statsOf(p)).isLeader));
  assert.equal(flags.filter(Boolean).length, 1, `exactly one leader among ${flags}`);
  return pages[flags.indexOf(true)];
}

/** Each page of `pages` got exactly one `name` event whose data[key] is value. */
async function onceEach(pages, name, key, value) {
  await until(`${name} ${value} on every page`, async () => (await Promise.all(pages.map((p) => countOf(p, name, key, value)))).every((n) => n >= 1));
  await sleep(500); // a duplicate would have arrived by now
  assert.deepEqual(await Promise.all(pages.map((p) => countOf(p, name, key, value))), pages.map(() => 1), `${name} ${value} exactly once per page`);
}

let users = 0;
/** A user of its own per test (so one test's sessions and rooms never meet another's). */
const freshUser = () => `u${++users}-${process.pid}`;

// ---------- tests ----------

test('three pages of one origin share one socket; a /notify reaches each page once', { timeout: 30_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await open(ctx, { user }));
  await connected(pages);
  await sleep(300); // a second socket, if any, would be open by now
  assert.equal((await health()).connections, 1, '/health: one connection');
  const leader = await leaderOf(pages);
  assert.equal((await statsOf(leader)).tabs, 3);
  assert.equal((await statsOf(leader)).debug.sockets, 1);
  for (const p of pages.filter((p) => p !== leader)) assert.equal((await statsOf(p)).debug.sockets, 0);

  await notify({ user, event: 'new_notification', data: { id: 'n-1', title: 'hello' } });
  await onceEach(pages, 'new_notification', 'id', 'n-1');
  for (const p of pages) assert.deepEqual(p.errors, []);
});

test('a send and a request from a follower: delivered once, the ack reaches that page only', { timeout: 30_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await open(ctx, { user, room: 'chat:f' }));
  const observer = await open(await newContext(), { user: freshUser(), room: 'chat:f' });
  await connected([...pages, observer]);
  const leader = await leaderOf(pages);
  const [follower, other] = pages.filter((p) => p !== leader);

  const id = await follower.evaluate(() => window.t.send('message', { chat_id: 'f', text: 'from a follower' }));
  await until('the ack on the follower', async () => (await logOf(follower)).acks.some((a) => a.id === id && a.ok));
  await onceEach([...pages, observer], 'new_message', 'text', 'from a follower');
  assert.deepEqual((await logOf(follower)).acks.map((a) => a.id), [id], 'one ack, on the page that sent');
  assert.deepEqual((await logOf(leader)).acks, [], 'no ack on the leader');
  assert.deepEqual((await logOf(other)).acks, [], 'no ack on the other follower');

  // Every page sends at once (the tabs' own ids collide: each numbers from 1): each page gets
  // one ack, for its own message (the ack's data names the message the room saw).
  const texts = pages.map((_, i) => `at once ${i}`);
  const sent = await Promise.all(pages.map((p, i) => p.evaluate((text) => window.t.send('message', { chat_id: 'f', text }), texts[i])));
  for (const [i, p] of pages.entries()) {
    await until(`page ${i}'s ack and its message back from the room`, async () => {
      const { acks, events } = await logOf(p);
      return acks.some((a) => a.id === sent[i]) && events.some((e) => e.name === 'new_message' && e.data.text === texts[i]);
    });
    const { acks, events } = await logOf(p);
    const own = events.find((e) => e.name === 'new_message' && e.data.text === texts[i]);
    const ack = acks.find((a) => a.id === sent[i]);
    assert.equal(ack.data?.id, own?.data.id, `page ${i}: the ack is for its own message`);
  }
  for (const text of texts) await onceEach([...pages, observer], 'new_message', 'text', text);

  const reply = await follower.evaluate(() => window.t.request('get_unread_count', {}, 5000));
  assert.deepEqual(reply, { ok: true, value: { count: 0 } });
  const refused = await follower.evaluate(() => window.t.request('no_such_event', {}, 5000));
  assert.equal(refused.code, 'unknown_event');
  for (const p of pages) assert.deepEqual(p.errors, []);
});

test('the leader page closes: another page leads within a second, resumes, and misses nothing', { timeout: 40_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await open(ctx, { user, room: 'chat:s' }));
  const observer = await open(await newContext(), { user: freshUser(), room: 'chat:s' });
  await connected([...pages, observer]);
  await notify({ user, event: 'new_notification', data: { id: 'before' } });
  await onceEach(pages, 'new_notification', 'id', 'before');
  const leader = await leaderOf(pages);
  const rest = pages.filter((p) => p !== leader);

  const t0 = Date.now();
  await leader.close();
  // During the switch: a server event for the user, and a send from a follower.
  await notify({ user, event: 'new_notification', data: { id: 'during' } });
  const id = await rest[1].evaluate(() => window.t.send('message', { chat_id: 's', text: 'during the switch' }));
  const next = await until('a new leader', async () => {
    for (const p of rest) if ((await statsOf(p)).isLeader) return p;
    return null;
  }, 5_000, 20);
  const took = Date.now() - t0;
  console.error(`[tabs] a new leader ${took} ms after the leader page closed`);
  assert.ok(took < 1000, `a new leader after ${took} ms`);
  await connected(rest);
  await onceEach(rest, 'new_notification', 'id', 'during');
  await onceEach([...rest, observer], 'new_message', 'text', 'during the switch');
  await until('the ack on the page that sent', async () => (await logOf(rest[1])).acks.some((a) => a.id === id && a.ok));
  assert.equal((await logOf(next)).resumed, 1, 'the new leader resumed the session');
  assert.equal((await logOf(next)).resumeFailed, 0);
  assert.equal((await health()).connections, 2, 'the new leader and the observer');
  for (const p of rest) assert.equal(await countOf(p, 'new_notification', 'id', 'before'), 1, 'no replay of what was seen');
  for (const p of rest) assert.deepEqual(p.errors, []);
});

test('a request whose ack was lost with the leader survives the switch and is processed once', { timeout: 40_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  // The first page leads; its socket goes through a route that can swallow the server's acks.
  const first = await ctx.newPage();
  let swallow = false;
  await first.routeWebSocket(/\/ws$/, (ws) => {
    const upstream = ws.connectToServer();
    ws.onMessage((m) => upstream.send(m));
    upstream.onMessage((m) => {
      if (swallow && typeof m === 'string' && m.includes('"type":"ack"') && m.includes('"id"')) return;
      ws.send(m);
    });
  });
  await first.goto(`${server.url}/t/index.html?user=${user}&room=chat:r`);
  await first.waitForFunction(() => document.title === 'ready');
  await until('the first page leads', async () => (await statsOf(first)).isLeader);
  const follower = await open(ctx, { user, room: 'chat:r' });
  const observer = await open(await newContext(), { user: freshUser(), room: 'chat:r' });
  await connected([first, follower, observer]);

  swallow = true;
  const reply = follower.evaluate(() => window.t.request('message', { chat_id: 'r', text: 'asked once' }, 8000));
  // The server processed it (the observer sees it) but the ack never reaches the leader.
  await until('the observer sees the message', async () => (await countOf(observer, 'new_message', 'text', 'asked once')) === 1);
  await sleep(200);
  await first.close();
  const result = await reply;
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.match(result.value.id, /./, 'the ack data of the first (and only) processing');
  await sleep(500);
  assert.equal(await countOf(observer, 'new_message', 'text', 'asked once'), 1, 'processed once');
  assert.equal(await countOf(follower, 'new_message', 'text', 'asked once'), 1, 'delivered once to the follower');
});

test('offline: a message sent, the page reloaded still offline, then online: delivered once', { timeout: 40_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const page = await open(ctx, { user, room: 'chat:o' });
  const observer = await open(await newContext(), { user: freshUser(), room: 'chat:o' });
  await connected([page, observer]);

  await ctx.setOffline(true);
  await until('reconnecting while offline', async () => (await stateOf(page)) === 'reconnecting');
  await page.evaluate(() => window.t.send('message', { chat_id: 'o', text: 'typed offline' }));
  await until('the send is stored', async () => (await page.evaluate(() => window.t.stored())) === 1);
  await page.reload();
  await page.waitForFunction(() => document.title === 'ready');
  assert.equal(await page.evaluate(() => navigator.onLine), false, 'the reload happened offline');
  await sleep(500);
  assert.equal(await countOf(observer, 'new_message', 'text', 'typed offline'), 0);

  await ctx.setOffline(false);
  await connected([page]);
  await until('delivered', async () => (await countOf(observer, 'new_message', 'text', 'typed offline')) === 1);
  await until('the stored send is deleted on its ack', async () => (await page.evaluate(() => window.t.stored())) === 0);
  await sleep(500);
  assert.equal(await countOf(observer, 'new_message', 'text', 'typed offline'), 1, 'delivered exactly once');
  assert.equal(await countOf(page, 'new_message', 'text', 'typed offline'), 1, 'and seen once by the page itself');
  assert.deepEqual((await logOf(page)).errors, []);
});

test('seven pages of one user: still one socket, none refused (4008)', { timeout: 40_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const pages = [];
  for (let i = 0; i < 7; i++) pages.push(await open(ctx, { user }));
  await connected(pages);
  await sleep(500);
  assert.equal((await health()).connections, 1);
  for (const p of pages) {
    const { states } = await logOf(p);
    assert.ok(!states.some((s) => s.reason === 'refused'), JSON.stringify(states));
  }
  await notify({ user, event: 'new_notification', data: { id: 'seven' } });
  await onceEach(pages, 'new_notification', 'id', 'seven');
});

test('sharing off, or no BroadcastChannel: a socket per page, as before', { timeout: 30_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const off = [await open(ctx, { user, share: '0' }), await open(ctx, { user, share: '0' })];
  const nobc = [await open(ctx, { user, nobc: '' }), await open(ctx, { user, nobc: '' })];
  await connected([...off, ...nobc]);
  await sleep(300);
  assert.equal((await health()).connections, 4);
  for (const p of [...off, ...nobc]) {
    const s = await statsOf(p);
    assert.equal(s.isLeader, true);
    assert.equal(s.sharing, false);
    assert.equal(s.debug.sockets, 1);
  }
  assert.equal(await nobc[0].evaluate(() => typeof BroadcastChannel), 'undefined');
  await notify({ user, event: 'new_notification', data: { id: 'solo' } });
  await onceEach([...off, ...nobc], 'new_notification', 'id', 'solo');
});

test('visibility: the connection pauses only when every tab is hidden', { timeout: 30_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const a = await open(ctx, { user });
  const b = await open(ctx, { user });
  await connected([a, b]);
  const leader = await leaderOf([a, b]);
  const follower = leader === a ? b : a;
  await leader.evaluate(() => window.t.setHidden(true));
  await sleep(500);
  assert.equal(await stateOf(leader), 'connected', 'a hidden leader stays connected while a follower is visible');
  await follower.evaluate(() => window.t.setHidden(true));
  await until('paused', async () => (await logOf(follower)).states.some((s) => s.reason === 'paused'));
  assert.equal(await stateOf(follower), 'disconnected');
  await follower.evaluate(() => window.t.setHidden(false));
  await connected([a, b]);
});

test('crashes: a crashed follower’s rooms are left; a crashed leader is replaced and its rooms are left after the resume', { timeout: 40_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const a = await open(ctx, { user, room: 'chat:a' });
  await until('the first page leads', async () => (await statsOf(a)).isLeader);
  const b = await open(ctx, { user, room: 'chat:b' });
  const c = await open(ctx, { user, room: 'chat:c' });
  await connected([a, b, c]);
  await until('three rooms joined', async () => (await statsOf(a)).rooms === 3);

  // A follower crashes (no pagehide, no bye): its tab lock is released, the leader leaves its room.
  const crash = async (page) => {
    const crashed = page.waitForEvent('crash');
    (await ctx.newCDPSession(page)).send('Page.crash').catch(() => {}); // never answers
    await crashed;
  };
  await crash(c);
  await until('the crashed follower’s room is left', async () => (await statsOf(a)).rooms === 2);
  await until('tabs: 2', async () => (await statsOf(a)).tabs === 2);

  // The leader crashes: b takes over, resumes the session, and leaves chat:a, which the session kept.
  await crash(a);
  await until('b leads', async () => (await statsOf(b)).isLeader, 5_000, 20);
  await connected([b]);
  await until('b resumed', async () => (await logOf(b)).resumed === 1);
  await until('chat:a left', async () => (await statsOf(b)).rooms === 1);
  await notify({ room: 'chat:a', event: 'new_notification', data: { id: 'to-a' } });
  await notify({ room: 'chat:b', event: 'new_notification', data: { id: 'to-b' } });
  await onceEach([b], 'new_notification', 'id', 'to-b');
  assert.equal(await countOf(b, 'new_notification', 'id', 'to-a'), 0, 'nothing from the room no tab wants');
});

test('a frozen leader hands over; resumed, it follows', { timeout: 30_000 }, async () => {
  // Chromium's CDP Page.setWebLifecycleState does not fire `freeze` on a visible headless page,
  // so the test dispatches the Page Lifecycle events the browser would.
  const user = freshUser();
  const ctx = await newContext();
  const a = await open(ctx, { user });
  await until('the first page leads', async () => (await statsOf(a)).isLeader);
  const b = await open(ctx, { user });
  await connected([a, b]);
  await a.evaluate(() => document.dispatchEvent(new Event('freeze')));
  await until('b leads', async () => (await statsOf(b)).isLeader, 5_000, 20);
  assert.equal((await statsOf(a)).debug.sockets, 0, 'the frozen page holds no socket');
  await connected([b]);
  await a.evaluate(() => document.dispatchEvent(new Event('resume')));
  await until('a follows', async () => {
    const s = await statsOf(a);
    return !s.isLeader && s.leader === (await statsOf(b)).tab;
  });
  // The leader's answer to the thawed tab's hello carries its state; a relay sent before it may
  // still be in flight, so the mirror is checked within a bound, not at the first message.
  await until('the follower mirrors the new leader (connected)', async () => (await stateOf(a)) === 'connected', 3_000, 20);
  assert.equal(await stateOf(b), 'connected', 'the leader stayed connected');
  await notify({ user, event: 'new_notification', data: { id: 'thawed' } });
  await onceEach([a, b], 'new_notification', 'id', 'thawed');
  assert.equal((await health()).connections, 1);
});

test('each durable event once per tab, even when a new leader’s replay overtakes the old one’s last relays', { timeout: 30_000 }, async () => {
  // White-box: the tab protocol's `ev` messages, posted by hand as two leaders' relays that
  // interleave out of order (11 arrives after 12), with repeats.
  const user = freshUser();
  const ctx = await newContext();
  const a = await open(ctx, { user });
  const b = await open(ctx, { user });
  await connected([a, b]);
  const scope = `sockline::ws://${new URL(server.url).host}/ws`;
  await a.evaluate((scope) => {
    const ch = new BroadcastChannel(scope);
    const ev = (from, seq) => ch.postMessage({ t: 'ev', from, name: 'new_notification', data: { id: `s${seq}` }, seq, session: 'relayed' });
    for (const [from, seq] of [['old', 10], ['new', 12], ['old', 11], ['new', 11], ['old', 12], ['new', 13], ['old', 9]]) ev(from, seq);
    ch.close();
  }, scope);
  const expected = { s9: 0, s10: 1, s11: 1, s12: 1, s13: 1 };
  for (const page of [a, b]) {
    await until('s13', async () => (await countOf(page, 'new_notification', 'id', 's13')) === 1);
    await sleep(200);
    const got = {};
    for (const id of Object.keys(expected)) got[id] = await countOf(page, 'new_notification', 'id', id);
    assert.deepEqual(got, expected);
  }
});

test('disconnect(), connect() and reconnect() from a follower act on the shared connection', { timeout: 30_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const a = await open(ctx, { user });
  await until('the first page leads', async () => (await statsOf(a)).isLeader);
  const b = await open(ctx, { user });
  await connected([a, b]);
  await b.evaluate(() => window.t.client.disconnect());
  await until('both disconnected', async () => (await stateOf(a)) === 'disconnected' && (await stateOf(b)) === 'disconnected');
  assert.equal((await logOf(a)).states.at(-1).reason, 'requested');
  await until('no connection', async () => (await health()).connections === 0);
  await b.evaluate(() => window.t.client.connect());
  await connected([a, b]);
  const before = (await statsOf(a)).reconnects;
  await b.evaluate(() => window.t.client.reconnect());
  await until('reconnected', async () => (await statsOf(a)).reconnects === before + 1);
  await connected([a, b]);
  assert.ok((await logOf(b)).states.some((s) => s.reason === 'reconnect'), 'the follower saw the reconnect');
  assert.equal((await health()).connections, 1);
});

test('storage that fails is an error event (storage_failed), and sends still go out', { timeout: 30_000 }, async () => {
  for (const idb of ['open', 'put']) {
    const user = freshUser();
    const ctx = await newContext();
    const page = await open(ctx, { user, idb, room: 'chat:q' });
    await connected([page]);
    const id = await page.evaluate(() => window.t.send('message', { chat_id: 'q', text: 'kept in memory' }));
    await until(`${idb}: the ack`, async () => (await logOf(page)).acks.some((a) => a.id === id && a.ok));
    await until(`${idb}: storage_failed`, async () => (await logOf(page)).errors.some((e) => e.code === 'storage_failed'));
    const { errors } = await logOf(page);
    assert.ok(errors.every((e) => e.code === 'storage_failed'), JSON.stringify(errors));
    assert.match(errors[0].message, idb === 'open' ? /IndexedDB is not available: refused by the test/ : /could not write to IndexedDB: over quota/);
    await onceEach([page], 'new_message', 'text', 'kept in memory');
    await ctx.close();
  }
});

test('per user: a send queued as one user is never sent when another user logs in', { timeout: 30_000 }, async () => {
  const alice = freshUser();
  const bob = freshUser();
  const ctx = await newContext();
  const page = await open(ctx, { user: alice });
  const observer = await open(await newContext(), { user: freshUser(), room: 'chat:u' });
  await connected([page, observer]);
  await ctx.setOffline(true);
  await until('reconnecting while offline', async () => (await stateOf(page)) === 'reconnecting');
  await page.evaluate(() => window.t.send('message', { chat_id: 'u', text: 'written by alice' }));
  await until('the send is stored', async () => (await page.evaluate(() => window.t.stored())) === 1);
  // The same browser, now logged in as bob (the page's token is bob's).
  await page.goto(`${server.url}/t/index.html?user=${bob}`);
  await page.waitForFunction(() => document.title === 'ready');
  await ctx.setOffline(false);
  await connected([page]);
  await until('other_user', async () => (await logOf(page)).errors.some((e) => e.code === 'other_user'));
  await until('the stored send is dropped', async () => (await page.evaluate(() => window.t.stored())) === 0);
  await sleep(500);
  assert.equal(await countOf(observer, 'new_message', 'text', 'written by alice'), 0, 'not sent in bob’s name');
  assert.match((await logOf(page)).errors.find((e) => e.code === 'other_user').message, /`message` send restored from storage failed/);
});

test('a send whose ack was lost, then a reload (a new session): processed once, by the server’s (user, client) dedupe', { timeout: 40_000 }, async () => {
  const user = freshUser();
  const ctx = await newContext();
  const observer = await open(await newContext(), { user: freshUser(), room: 'chat:d' });
  const page = await ctx.newPage();
  let swallow = false;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const upstream = ws.connectToServer();
    ws.onMessage((m) => upstream.send(m));
    upstream.onMessage((m) => {
      if (swallow && typeof m === 'string' && m.includes('"type":"ack"') && m.includes('"id"')) return;
      ws.send(m);
    });
  });
  await page.goto(`${server.url}/t/index.html?user=${user}`);
  await page.waitForFunction(() => document.title === 'ready');
  await connected([page, observer]);
  swallow = true;
  await page.evaluate(() => window.t.send('message', { chat_id: 'd', text: 'ack lost' }));
  await until('processed once', async () => (await countOf(observer, 'new_message', 'text', 'ack lost')) === 1);
  assert.equal(await page.evaluate(() => window.t.stored()), 1, 'unacked, so still stored');
  swallow = false;
  await page.reload();
  await page.waitForFunction(() => document.title === 'ready');
  await connected([page]);
  await until('the resent send is acked and its record deleted', async () => (await page.evaluate(() => window.t.stored())) === 0);
  await sleep(500);
  assert.equal(await countOf(observer, 'new_message', 'text', 'ack lost'), 1, 'processed exactly once');
});

// ---------- tokens (issue 15): refreshed in-band before expiry; an expired one replaced at once ----------

/** Opens the test page with a WebSocket route that records every text frame each way. */
async function openRecorded(ctx, q) {
  const frames = { sent: [], received: [] };
  const page = await open(ctx, q, (p) =>
    p.routeWebSocket(/\/ws$/, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((m) => (typeof m === 'string' && frames.sent.push(m), upstream.send(m)));
      upstream.onMessage((m) => (typeof m === 'string' && frames.received.push(m), ws.send(m)));
    }),
  );
  const typed = (list, type) => list.filter((m) => JSON.parse(m).type === type);
  return { page, sent: (type) => typed(frames.sent, type), received: (type) => typed(frames.received, type) };
}

test('a token about to expire is refreshed in-band: one socket outlives several tokens', { timeout: 40_000 }, async () => {
  const user = freshUser();
  const { page, sent, received } = await openRecorded(await newContext(), { user, ttl: 3, share: '0' });
  await connected([page]);
  // Tokens live 2–3 s (`exp` is in whole seconds); the client refetches one and sends `refresh`
  // 10 % of the life before expiry. Without that the server closes the socket with 4002.
  await until('three refreshes answered', async () => received('refreshed').length >= 3, 15_000);
  assert.equal(sent('auth').length, 1, 'one auth: the socket was never replaced');
  assert.ok(sent('refresh').length >= 3);
  const log = await logOf(page);
  assert.deepEqual(log.states.map((s) => s.state), ['connecting', 'authenticating', 'connected'], 'no reconnect');
  assert.ok(log.tokens >= 4, `a token per refresh (${log.tokens})`);
  await notify({ user, event: 'new_notification', data: { id: 'after-refresh', title: 'still here' } });
  await onceEach([page], 'new_notification', 'id', 'after-refresh');
  assert.deepEqual(page.errors, []);
});

test('an expired token is replaced at once: auth_error expired, a fresh token, connected', { timeout: 30_000 }, async () => {
  const { page, sent, received } = await openRecorded(await newContext(), { user: freshUser(), expiredfirst: '', share: '0' });
  await connected([page]);
  const refusals = received('auth_error').map((m) => JSON.parse(m).code);
  assert.deepEqual(refusals, ['expired'], 'the first token was refused as expired');
  assert.equal(sent('auth').length, 2, 'two auths: the expired token, then the fresh one');
  const log = await logOf(page);
  assert.equal(log.tokens, 2, 'getToken called again at once');
  const [first, second] = sent('auth').map((m) => JSON.parse(m).token);
  assert.notEqual(first, second, 'the expired token is never sent again');
  assert.ok(!log.states.some((s) => s.state === 'disconnected'), `never final: ${JSON.stringify(log.states)}`);
  assert.equal(log.states.find((s) => s.state === 'reconnecting')?.reason, 'token_expired');
  assert.deepEqual(page.errors, []);
});
