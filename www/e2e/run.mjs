#!/usr/bin/env node
// End-to-end tests of the demo (www/dist) against the real sockline-server, in Debian's
// /usr/bin/chromium driven by playwright-core (no browser download). Each test starts its own
// server on 127.0.0.1 with an OS-chosen port; the kill/restart test restarts it on that port.
// Everything is bounded: per-test timeouts and an overall deadline that kills what is left.
//
// Usage: node e2e/run.mjs [--server PATH] [--dist DIR] [--dist-dev DIR] [--docs-screenshot PATH]
// --dist is the production build (what `make demo` serves); --dist-dev a development build
// (`vite build --mode development`): StrictMode double-invokes effects only with React's
// development build, so the StrictMode test uses that one.
// Screenshots go to www/test-results/ (git-ignored); --docs-screenshot also writes the demo
// screenshot there (make docs-screenshot uses it for docs/demo.png).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchOptions } from '../../scripts/chromium.mjs';
import { running, SocklineServer } from '../../scripts/sockline-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const SERVER = resolve(opt('--server', resolve(here, '../../target/debug/sockline-server')));
const DIST = resolve(opt('--dist', resolve(here, '../dist')));
const DIST_DEV = resolve(opt('--dist-dev', resolve(here, '../dist-dev')));
const DOCS_SHOT = opt('--docs-screenshot', null);
const RESULTS = resolve(here, '../test-results');
const OVERALL_MS = 270_000;
// One secret for every incarnation of a server, so tokens survive a restart (the demo fetches a
// new one before every attempt anyway).
const JWT_SECRET = 'e2e-secret-0123456789abcdef0123456789abcdef';

mkdirSync(RESULTS, { recursive: true });
const log = (...m) => console.error('[e2e]', ...m);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- servers ----------

/** A server for the demo's build `dist` (served with --static-dir), with this run's secret. */
const newServer = (dist = DIST) =>
  new SocklineServer(SERVER, { args: ['--static-dir', dist], env: { SOCKLINE_JWT_SECRET: JWT_SECRET } });

async function withServer(fn, dist = DIST) {
  const server = await newServer(dist).start();
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
async function until(what, fn, ms = 10_000, every = 100) {
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

// ---------- browser ----------

let browser;
const deadline = setTimeout(async () => {
  console.error(`[e2e] overall deadline of ${OVERALL_MS / 1000} s reached: stopping everything`);
  for (const s of running) s.child?.kill('SIGKILL');
  await browser?.close().catch(() => {});
  process.exit(1);
}, OVERALL_MS);
deadline.unref();

before(async () => {
  browser = await chromium.launch(launchOptions());
});

after(async () => {
  await browser?.close();
  for (const s of [...running]) await s.stop();
  clearTimeout(deadline);
});

/** A page (in its own context, so its own network state) logged in as `user`. */
async function openAs(server, user, { context } = {}) {
  const ctx = context ?? (await browser.newContext({ viewport: { width: 1100, height: 680 } }));
  const page = await ctx.newPage();
  page.setDefaultTimeout(10_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // Refused connections while the server is down are expected; anything else is a bug.
  const expected = /ERR_CONNECTION_REFUSED|ERR_INTERNET_DISCONNECTED|WebSocket connection to .* failed/;
  page.on('console', (m) => m.type() === 'error' && !expected.test(m.text()) && errors.push(m.text()));
  await page.goto(`${server.url}/?user=${encodeURIComponent(user)}`);
  return { ctx, page, errors };
}

const stateOf = (page) => page.getByTestId('connection-state');

async function expectState(page, state, ms = 10_000) {
  await page.waitForFunction(
    (s) => document.querySelector('[data-testid="connection-state"]')?.dataset.state === s,
    state,
    { timeout: ms, polling: 50 },
  );
  const text = await stateOf(page).textContent();
  assert.ok(text.startsWith(state), `indicator text ${JSON.stringify(text)} starts with ${state}`);
  return text;
}

const messages = (page, text) => page.getByTestId('chat-messages').getByTestId('chat-message').filter({ hasText: text });

async function say(page, text) {
  const input = page.getByTestId('chat-input');
  await input.fill(text);
  await input.press('Enter');
}

// ---------- tests ----------

test('the page connects; /notify shows a notification and raises the unread count', { timeout: 30_000 }, () =>
  withServer(async (server) => {
    const { ctx, page, errors } = await openAs(server, 'alice');
    await expectState(page, 'connected');
    await page.getByTestId('unread-count').filter({ hasText: /^0$/ }).waitFor();

    await server.notify({ user: 'alice', event: 'new_notification', data: { id: 'n-1', title: 'Build passed', body: 'main is green' } });
    await page.getByTestId('notification-list').getByText('Build passed').waitFor();
    await page.getByTestId('unread-count').filter({ hasText: /^1$/ }).waitFor();
    await server.notify({ user: 'alice', event: 'new_notification', data: { id: 'n-2', title: 'New follower', body: 'bob follows you' } });
    await page.getByTestId('unread-count').filter({ hasText: /^2$/ }).waitFor();

    // The demo's own button goes through /notify too; mark-as-read brings the count down.
    await page.getByTestId('notify-one').click();
    await page.getByTestId('unread-count').filter({ hasText: /^3$/ }).waitFor();
    await page.getByTestId('notification').filter({ hasText: 'Build passed' }).getByRole('button', { name: 'Mark read' }).click();
    await page.getByTestId('unread-count').filter({ hasText: /^2$/ }).waitFor();

    await say(page, 'hello from alice');
    await messages(page, 'hello from alice').and(page.locator('[data-status="delivered"]')).waitFor();
    await page.screenshot({ path: `${RESULTS}/connected.png` });
    assert.deepEqual(errors, []);
    await ctx.close();
  }),
);

test('StrictMode (React development build): one socket and one set of listeners per provider', { timeout: 30_000 }, () =>
  withServer(async (server) => {
    const a = await openAs(server, 'alice');
    await expectState(a.page, 'connected');
    assert.ok(
      await a.page.evaluate(() => document.documentElement.dataset.reactBuild === 'development'),
      'the page runs React\'s development build, where StrictMode double-mounts',
    );
    await sleep(300); // a second socket, if any, would be open by now
    assert.equal((await server.health()).connections, 1);
    const debug = await a.page.evaluate(() => window.sockline.stats().debug);
    // Notifications (3) + Chat (2) useSocklineEvent calls and the provider's `leader_changed`;
    // the provider's onState and the connection panel's (each once, though mounted twice).
    assert.equal(debug.sockets, 1, JSON.stringify(debug));
    assert.equal(debug.listeners, 6, JSON.stringify(debug));
    assert.equal(debug.stateListeners, 2, JSON.stringify(debug));

    const b = await openAs(server, 'bob');
    await expectState(b.page, 'connected');
    await sleep(300);
    assert.equal((await server.health()).connections, 2);

    // Unmount = free(): closing a page releases its socket.
    await b.ctx.close();
    await until('1 connection after bob left', async () => (await server.health()).connections === 1);
    await a.ctx.close();
  }, DIST_DEV),
);

test('server killed: reconnecting with an attempt number; a message typed meanwhile is queued, then delivered once', { timeout: 45_000 }, () =>
  withServer(async (server) => {
    const { ctx, page, errors } = await openAs(server, 'alice');
    await expectState(page, 'connected');
    await say(page, 'before the outage');
    await messages(page, 'before the outage').and(page.locator('[data-status="delivered"]')).waitFor();

    await server.kill();
    const text = await expectState(page, 'reconnecting');
    assert.match(text, /^reconnecting · attempt \d+/);
    // Wait for the countdown to the next retry (the state while waiting on the backoff timer).
    await page.waitForFunction(() => /next try in \d/.test(document.querySelector('[data-testid="connection-state"]').textContent));
    const attempt = Number(await stateOf(page).getAttribute('data-attempt'));
    assert.ok(attempt >= 1, `attempt ${attempt}`);
    await say(page, 'typed during the outage');
    const queued = messages(page, 'typed during the outage');
    await queued.and(page.locator('[data-status="queued"]')).waitFor();
    await page.screenshot({ path: `${RESULTS}/reconnecting.png` });

    await sleep(1500); // let at least one retry fail against the dead port
    await server.start();
    await expectState(page, 'connected', 20_000);
    await queued.and(page.locator('[data-status="delivered"]')).waitFor({ timeout: 10_000 });
    await sleep(1000); // a duplicate would arrive by now
    assert.equal(await queued.count(), 1, 'the queued message shows once');
    assert.equal(await messages(page, 'before the outage').count(), 1);
    assert.equal((await server.health()).connections, 1);
    assert.deepEqual(errors, []);
    await ctx.close();
  }),
);

/** The connection panel's timeline, oldest first: `state:reason` per entry. */
async function timeline(page) {
  return page.getByTestId('timeline').locator('li').evaluateAll((items) =>
    items.map((li) => `${li.dataset.state}:${li.dataset.reason}`).reverse(),
  );
}

test('the connection panel: "drop my link" shows the cut, its cause, the backoff and the way back', { timeout: 30_000 }, () =>
  withServer(async (server) => {
    const { ctx, page, errors } = await openAs(server, 'alice');
    await expectState(page, 'connected');
    await page.getByTestId('rtt').filter({ hasText: /ms$/ }).waitFor({ timeout: 15_000 }).catch(() => {});
    await page.getByTestId('drop-code').selectOption('1011');
    await page.getByTestId('drop-link').click();
    await page.getByTestId('fault-note').filter({ hasText: '"closed":1' }).waitFor();
    await page.getByTestId('timeline').locator('li[data-state="reconnecting"][data-reason="socket_closed"]').waitFor();
    await expectState(page, 'connected');
    const lost = page.getByTestId('timeline').locator('li[data-state="reconnecting"]').first();
    assert.match(await lost.textContent(), /retry in \d/);
    assert.match(await lost.textContent(), /1011/);
    const seen = await timeline(page);
    assert.deepEqual(seen.slice(-4), ['reconnecting:socket_closed', 'connecting:retry', 'authenticating:socket_open', 'connected:authenticated']);
    assert.equal(await page.getByTestId('reconnects').textContent(), '1');
    await page.screenshot({ path: `${RESULTS}/panel-drop.png` });
    assert.deepEqual(errors, []);
    await ctx.close();
  }),
);

test('the connection panel: "outage for 10 s" refuses the way back until it ends; a message typed meanwhile arrives once', { timeout: 45_000 }, () =>
  withServer(async (server) => {
    const { ctx, page, errors } = await openAs(server, 'alice');
    await expectState(page, 'connected');
    const t0 = Date.now();
    await page.getByTestId('outage').click();
    await page.getByTestId('fault-note').filter({ hasText: 'link dropped' }).waitFor();
    await expectState(page, 'reconnecting');
    await say(page, 'typed during the outage');
    const queued = messages(page, 'typed during the outage');
    await queued.and(page.locator('[data-status="queued"]')).waitFor();
    // Refused right after auth, again and again: each a 1013 (`try again later`), with backoff.
    await until('two refused attempts', async () =>
      (await timeline(page)).filter((e) => e === 'reconnecting:socket_closed').length >= 3,
    15_000);
    await page.screenshot({ path: `${RESULTS}/panel-outage.png`, fullPage: true });
    if (DOCS_SHOT) {
      const shot = resolve(dirname(resolve(DOCS_SHOT)), 'outage.png');
      copyFileSync(`${RESULTS}/panel-outage.png`, shot);
      log(`wrote ${shot}`);
    }
    await expectState(page, 'connected', 30_000);
    assert.ok(Date.now() - t0 >= 9_500, 'not back before the outage ended');
    await queued.and(page.locator('[data-status="delivered"]')).waitFor({ timeout: 10_000 });
    await sleep(800);
    assert.equal(await queued.count(), 1, 'the queued message shows once');
    assert.deepEqual(errors, []);
    await ctx.close();
  }),
);

test('the connection panel: "expire my token" closes with 4002 and the client comes back with a fresh token', { timeout: 30_000 }, () =>
  withServer(async (server) => {
    const { ctx, page, errors } = await openAs(server, 'alice');
    await expectState(page, 'connected');
    await page.getByTestId('expire-token').click();
    await page.getByTestId('timeline').locator('li[data-state="reconnecting"][data-reason="token_expired"]').waitFor();
    await expectState(page, 'connected');
    const lost = page.getByTestId('timeline').locator('li[data-state="reconnecting"]').first();
    assert.match(await lost.textContent(), /retry in 0\.0 s/, 'retried at once, not after a backoff');
    await server.notify({ user: 'alice', event: 'new_notification', data: { id: 'x-1', title: 'After the new token' } });
    await page.getByTestId('notification-list').getByText('After the new token').waitFor();
    assert.deepEqual(errors, []);
    await ctx.close();
  }),
);

test('offline: waits without spending retries; online: connected at once', { timeout: 30_000 }, () =>
  withServer(async (server) => {
    const { ctx, page } = await openAs(server, 'alice');
    await expectState(page, 'connected');

    await ctx.setOffline(true);
    const text = await expectState(page, 'reconnecting');
    assert.match(text, /waiting for the network/);
    const attempt = await stateOf(page).getAttribute('data-attempt');
    await sleep(3000); // with the backoff running, 1-2 retries would have been spent by now
    assert.equal(await stateOf(page).getAttribute('data-state'), 'reconnecting');
    assert.equal(await stateOf(page).getAttribute('data-attempt'), attempt, 'no retry spent while offline');
    assert.match(await stateOf(page).textContent(), /waiting for the network/);

    const t0 = Date.now();
    await ctx.setOffline(false);
    await expectState(page, 'connected', 5_000);
    const took = Date.now() - t0;
    assert.ok(took < 1500, `connected ${took} ms after coming back online`);
    await ctx.close();
  }),
);

test('two users in two pages see each other’s messages and typing', { timeout: 30_000 }, () =>
  withServer(async (server) => {
    const alice = await openAs(server, 'alice');
    const bob = await openAs(server, 'bob');
    await expectState(alice.page, 'connected');
    await expectState(bob.page, 'connected');

    await alice.page.getByTestId('chat-input').pressSequentially('hi bo');
    await bob.page.getByTestId('typing-indicator').filter({ hasText: 'alice is typing' }).waitFor();
    await alice.page.getByTestId('chat-input').pressSequentially('b');
    await alice.page.getByTestId('chat-input').press('Enter');
    await messages(bob.page, 'hi bob').filter({ hasText: 'alice' }).waitFor();
    await bob.page.getByTestId('typing-indicator').filter({ hasText: /^$/ }).waitFor();

    await bob.page.getByTestId('chat-input').pressSequentially('hey alice');
    await alice.page.getByTestId('typing-indicator').filter({ hasText: 'bob is typing' }).waitFor();
    await bob.page.getByTestId('chat-input').press('Enter');
    await messages(alice.page, 'hey alice').filter({ hasText: 'bob' }).waitFor();
    await messages(alice.page, 'hi bob').and(alice.page.locator('[data-status="delivered"]')).waitFor();
    assert.equal(await messages(bob.page, 'hi bob').count(), 1);
    assert.equal(await messages(alice.page, 'hey alice').count(), 1);

    if (DOCS_SHOT) {
      await server.notify({ user: 'alice', event: 'new_notification', data: { id: 'd-1', title: 'Deploy finished', body: 'v0.1.0 is live' } });
      await server.notify({ user: 'alice', event: 'new_notification', data: { id: 'd-2', title: 'Mentioned', body: 'bob mentioned you in #lobby' } });
      await alice.page.getByTestId('unread-count').filter({ hasText: /^2$/ }).waitFor();
      await bob.page.getByTestId('chat-input').pressSequentially('see you');
      await alice.page.getByTestId('typing-indicator').filter({ hasText: 'bob is typing' }).waitFor();
      await alice.page.screenshot({ path: `${RESULTS}/demo.png`, fullPage: true });
      mkdirSync(dirname(resolve(DOCS_SHOT)), { recursive: true });
      copyFileSync(`${RESULTS}/demo.png`, DOCS_SHOT);
      log(`wrote ${DOCS_SHOT}`);
    }
    await alice.ctx.close();
    await bob.ctx.close();
  }),
);
