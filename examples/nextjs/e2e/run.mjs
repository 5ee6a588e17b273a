#!/usr/bin/env node
// The Next.js example against the real sockline-server, in Debian's /usr/bin/chromium driven by
// playwright-core (no browser download): the production build (`next build`, in .next/) served
// by `next start`, the server with --dev (its /dev/token route stands in for the app's token
// minting). Both listen on 127.0.0.1 with OS-chosen ports; an overall deadline kills what is left.
//
// Usage: node e2e/run.mjs [--server PATH]   (run from anywhere; `make test-next` builds first)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchOptions } from '../../../scripts/chromium.mjs';
import { SocklineServer } from '../../../scripts/sockline-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const app = resolve(here, '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const SERVER = resolve(opt('--server', resolve(app, '../../target/debug/sockline-server')));
const RESULTS = resolve(app, 'test-results');
const OVERALL_MS = 90_000;

mkdirSync(RESULTS, { recursive: true });
const log = (...m) => console.error('[next-e2e]', ...m);

// ---------- processes ----------

const children = new Set();

/**
 * Spawns `cmd` and resolves with the first match of `ready` in its stdout (10 s at most); its
 * stderr is kept in `.stderr` (and echoed) so a test can check that nothing went wrong.
 */
function start(cmd, argv, { env = {}, cwd, ready }) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(cmd, argv, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const proc = { child, stderr: '', stdout: '' };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} did not print ${ready} within 10 s:\n${proc.stdout}${proc.stderr}`));
    }, 10_000);
    child.stdout.on('data', (chunk) => {
      proc.stdout += chunk;
      const m = proc.stdout.match(ready);
      if (m && !proc.match) {
        proc.match = m;
        clearTimeout(timer);
        resolveStart(proc);
      }
    });
    child.stderr.on('data', (chunk) => {
      proc.stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (!proc.match) reject(new Error(`${cmd} exited (${code ?? signal}) before it was ready:\n${proc.stdout}${proc.stderr}`));
    });
  });
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once('exit', () => r());
    child.kill('SIGKILL');
  });
}

let sockline; // the SocklineServer
let next; // { url, proc }
let browser;

const deadline = setTimeout(async () => {
  console.error(`[next-e2e] overall deadline of ${OVERALL_MS / 1000} s reached: stopping everything`);
  for (const c of children) c.kill('SIGKILL');
  sockline?.child?.kill('SIGKILL');
  await browser?.close().catch(() => {});
  process.exit(1);
}, OVERALL_MS);
deadline.unref();

before(async () => {
  sockline = await new SocklineServer(SERVER).start();
  const serverUrl = sockline.url;
  const proc = await start(resolve(app, 'node_modules/.bin/next'), ['start', '-H', '127.0.0.1', '-p', '0'], {
    cwd: app,
    env: { SOCKLINE_URL: serverUrl, NEXT_TELEMETRY_DISABLED: '1', NODE_ENV: 'production' },
    ready: /Ready in/,
  });
  const m = proc.stdout.match(/Local:\s+(http:\/\/127\.0\.0\.1:\d+)/);
  assert.ok(m, `next start printed its address:\n${proc.stdout}`);
  next = { url: m[1], proc };
  log(`sockline-server ${serverUrl}, next start ${next.url}`);
  browser = await chromium.launch(launchOptions());
});

after(async () => {
  await browser?.close();
  for (const c of [...children]) await stop(c);
  await sockline?.stop();
  clearTimeout(deadline);
});

/** Polls `fn` until it returns a truthy value or `ms` pass. */
async function until(what, fn, ms = 10_000, every = 100) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn().catch((e) => e);
    if (last && !(last instanceof Error)) return last;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

// ---------- tests ----------

test('the server renders the page: 200, the provider\'s initial state in the HTML, no server errors', { timeout: 20_000 }, async () => {
  const res = await fetch(`${next.url}/?user=alice`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  const html = await res.text();
  // The client components rendered on the server with the provider's initial state.
  assert.match(html, /<b id="user">alice<\/b>/);
  assert.match(html, /<b id="state">disconnected<\/b>/);
  assert.match(html, /nothing yet/);
  assert.ok(html.includes(`${sockline.url.replace(/^http/, 'ws')}/ws`), 'the ws URL read at run time is in the page');
  assert.equal(next.proc.stderr, '', 'next start wrote nothing to stderr');
});

/**
 * Opens `path` in a fresh context and checks: hydration without console errors or warnings, no
 * page error and no 4xx/5xx, connected, the one `.wasm` fetched from `wasmAt` (a RegExp) as
 * application/wasm, a /notify to the user and one to the room useRoom joined shown, no `error`.
 */
async function liveInChromium(path, wasmAt, shot) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e}`));
  page.on('console', (m) => ['error', 'warning'].includes(m.type()) && problems.push(`console.${m.type()}: ${m.text()} (${m.location().url})`));
  const wasm = [];
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
    if (r.url().endsWith('.wasm')) wasm.push({ url: r.url(), status: r.status(), type: r.headers()['content-type'] });
  });

  const res = await page.goto(`${next.url}${path}`);
  assert.equal(res.status(), 200);
  await page.locator('#state', { hasText: /^connected$/ }).waitFor();
  assert.equal(wasm.length, 1, JSON.stringify(wasm));
  assert.match(wasm[0].url, wasmAt);
  assert.equal(wasm[0].status, 200);
  assert.equal(wasm[0].type, 'application/wasm');

  const id = `n-${shot}`;
  await sockline.notify({ user: 'alice', event: 'new_notification', data: { id, title: `Build passed (${shot})` } });
  await page.locator('#feed li', { hasText: `notification: Build passed (${shot})` }).waitFor();

  // useRoom('chat:lobby') joined the room: wait until the server counts the member, then notify it.
  await until('alice in chat:lobby', async () => (await sockline.notify({ room: 'chat:lobby', event: 'announcement', data: { text: 'probe' } })).delivered > 0);
  await page.locator('#feed li', { hasText: 'chat:lobby: probe' }).first().waitFor();

  await page.screenshot({ path: `${RESULTS}/${shot}.png` });
  assert.equal(await page.locator('#error').textContent(), '', 'no `error` event reached the page');
  assert.deepEqual(problems, []);
  assert.equal(next.proc.stderr, '', 'next start wrote nothing to stderr');
  await ctx.close();
}

test('in Chromium: hydrates without warnings, connects, shows a /notify to the user and one to the room it joined', { timeout: 40_000 }, async () => {
  // The WASM from Next's own static files (the bundler resolved the glue's
  // `new URL('sockline_bg.wasm', import.meta.url)`).
  await liveInChromium('/?user=alice', new RegExp(`^${next.url}/_next/static/.*\\.wasm$`), 'connected');
});

test('in Chromium, /public-wasm: the provider\'s wasm prop (a URL) is where the WASM comes from', { timeout: 40_000 }, async () => {
  await liveInChromium('/public-wasm?user=alice', new RegExp(`^${next.url}/sockline_bg\\.wasm$`), 'public-wasm');
});
