#!/usr/bin/env node
// Browser-test harness: runs the reference server on a fixed free loopback port, exposes a small
// control API (with CORS, so the test page may call it) and runs a command with the control URL
// in SOCKLINE_HARNESS. Everything it starts stops when the command ends, on a signal, or at the
// overall deadline.
//
// Usage: node scripts/browser-harness.mjs --server PATH [--timeout-s N] -- COMMAND [ARGS...]
//
// Control API (http://127.0.0.1:PORT):
//   GET  /config           -> {"ws": "ws://127.0.0.1:P/ws", "http": "http://127.0.0.1:P"}
//   GET  /token?user=ID    -> the server's {"token": "…"} (GET /dev/token)
//   POST /notify           -> forwards the body to the server's POST /notify with the dev key
//   POST /kill             -> SIGKILL the server (clients see an abnormal close), wait for exit
//   POST /start            -> start it again on the same port, wait for "listening on"
//
// `/config` also names `scripted`: a tiny WebSocket server (RFC 6455 by hand, no packages) that
// answers the first client frame with `authenticated` and then sends one binary frame, which the
// reference server never does (the browser tests check what the client reports).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

const args = process.argv.slice(2);
const sep = args.indexOf('--');
if (sep < 0 || sep === args.length - 1) {
  console.error('usage: browser-harness.mjs --server PATH [--timeout-s N] -- COMMAND [ARGS...]');
  process.exit(2);
}
const opts = args.slice(0, sep);
const command = args.slice(sep + 1);
const opt = (name, fallback) => {
  const i = opts.indexOf(name);
  return i >= 0 ? opts[i + 1] : fallback;
};
const serverBin = opt('--server');
const timeoutS = Number(opt('--timeout-s', '600'));
if (!serverBin) {
  console.error('browser-harness: --server PATH is required');
  process.exit(2);
}

const log = (...m) => console.error('[harness]', ...m);
const SERVER_KEY = 'dev-key';
// One secret for every incarnation of the server, so tokens survive a kill/start.
const JWT_SECRET = randomBytes(32).toString('hex');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let server = null;

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(serverBin, ['--addr', `127.0.0.1:${port}`, '--dev'], {
      env: { ...process.env, SOCKLINE_JWT_SECRET: JWT_SECRET, SOCKLINE_SERVER_KEY: SERVER_KEY, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    server = child;
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('server did not print "listening on" within 10 s'));
    }, 10_000);
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      if (buf.includes('listening on')) {
        clearTimeout(timer);
        child.stdout.resume();
        resolve();
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (server === child) server = null;
      reject(new Error(`server exited (${code ?? signal}) before listening`));
    });
  });
}

function killServer() {
  const child = server;
  if (!child) return Promise.resolve();
  server = null;
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

async function startWithRetry() {
  // The port was just released; the OS may take a moment to let it be bound again.
  for (let i = 0; ; i++) {
    try {
      return await startServer();
    } catch (e) {
      if (i >= 20) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function forward(path, init = {}) {
  const res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

// The scripted peer: `authenticated` after the first frame, then a binary frame; it ignores
// everything else the client sends and never closes first.
const scripted = http.createServer((_req, res) => {
  res.writeHead(404);
  res.end();
});
scripted.on('upgrade', (req, socket) => {
  const accept = createHash('sha1')
    .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  // Unmasked server frames of under 126 bytes: FIN + opcode, length, payload.
  const frame = (opcode, payload) => Buffer.concat([Buffer.from([0x80 | opcode, payload.length]), payload]);
  let answered = false;
  socket.on('data', () => {
    if (answered) return;
    answered = true;
    const hello = { type: 'authenticated', user_id: 'scripted', session: 's-scripted', heartbeat_ms: 30000, resumed: false };
    socket.write(frame(1, Buffer.from(JSON.stringify(hello))));
    socket.write(frame(2, Buffer.from([1, 2, 3])));
  });
  socket.on('error', () => {});
});

const control = http.createServer(async (req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, {
      'content-type': 'application/json',
      'access-control-allow-origin': '*',
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'content-type',
      // The test page is cross-origin isolated (COEP require-corp).
      'cross-origin-resource-policy': 'cross-origin',
    });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  try {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'OPTIONS') return reply(204, '');
    if (url.pathname === '/config') {
      return reply(200, {
        ws: `ws://127.0.0.1:${port}/ws`,
        http: base,
        scripted: `ws://127.0.0.1:${scripted.address().port}/`,
      });
    }
    if (url.pathname === '/token') {
      const r = await forward(`/dev/token?user=${encodeURIComponent(url.searchParams.get('user') ?? '')}`);
      return reply(r.status, r.body);
    }
    if (url.pathname === '/notify' && req.method === 'POST') {
      const r = await forward('/notify', {
        method: 'POST',
        headers: { authorization: `Bearer ${SERVER_KEY}`, 'content-type': 'application/json' },
        body: await readBody(req),
      });
      return reply(r.status, r.body);
    }
    if (url.pathname === '/kill' && req.method === 'POST') {
      await killServer();
      return reply(200, { ok: true });
    }
    if (url.pathname === '/start' && req.method === 'POST') {
      if (!server) await startWithRetry();
      return reply(200, { ok: true });
    }
    reply(404, { error: 'not found' });
  } catch (e) {
    reply(500, { error: String(e?.message ?? e) });
  }
});

let child = null;
let exiting = false;
async function shutdown(code) {
  if (exiting) return;
  exiting = true;
  if (child && child.exitCode === null) child.kill('SIGTERM');
  await killServer();
  control.close();
  scripted.close();
  process.exit(code);
}

await startWithRetry();
await new Promise((resolve) => control.listen(0, '127.0.0.1', resolve));
await new Promise((resolve) => scripted.listen(0, '127.0.0.1', resolve));
const harness = `http://127.0.0.1:${control.address().port}`;
log(`server ${base}, control ${harness}`);

const deadline = setTimeout(() => {
  log(`deadline of ${timeoutS} s reached; stopping`);
  shutdown(124);
}, timeoutS * 1000);
deadline.unref();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => shutdown(130));

child = spawn(command[0], command.slice(1), {
  env: { ...process.env, SOCKLINE_HARNESS: harness },
  stdio: 'inherit',
});
child.on('exit', (code, signal) => shutdown(code ?? (signal ? 1 : 0)));
child.on('error', (e) => {
  log(`cannot run ${command[0]}: ${e.message}`);
  shutdown(127);
});
