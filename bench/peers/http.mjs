// The HTTP side both Node peers share: the port argument, `GET /health`, `POST /notify` body
// parsing, and the `listening on http://127.0.0.1:PORT` line (the first line on stdout, as
// sockline-server prints it).

import http from 'node:http';

/** Largest `/notify` body accepted, in bytes (sockline's frame limit). */
const MAX_BODY = 64 * 1024;

/** The port from argv[2] (0, the default, lets the OS pick one); exits on a bad value. */
export function portArg() {
  const raw = process.argv[2] ?? '0';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`usage: node ${process.argv[1]} [PORT]  (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return port;
}

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * An HTTP request handler: `GET /health` → `{status, connections, rss_bytes}` and
 * `POST /notify {room, event, data}` → `fanOut(room, event, data)` (which returns how many
 * sockets it reached) → 202 `{delivered}`. Anything else is a 404.
 */
export function handler({ connections, fanOut }) {
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/health') {
      return reply(res, 200, { status: 'ok', connections: connections(), rss_bytes: process.memoryUsage.rss() });
    }
    if (req.method !== 'POST' || path !== '/notify') {
      return reply(res, 404, { error: { code: 'not_found', message: 'GET /health or POST /notify' } });
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reply(res, 413, { error: { code: 'too_large', message: `body over ${MAX_BODY} bytes` } });
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return reply(res, 400, { error: { code: 'bad_request', message: `invalid JSON: ${e.message}` } });
      }
      const { room, event, data = null } = body ?? {};
      if (typeof room !== 'string' || room === '' || typeof event !== 'string' || event === '') {
        return reply(res, 400, { error: { code: 'bad_request', message: '`room` and `event` must be non-empty strings' } });
      }
      reply(res, 202, { delivered: fanOut(room, event, data) });
    });
  };
}

/** Listens on 127.0.0.1:`port`, prints the listening line, and closes on SIGINT/SIGTERM. */
export function listen(server, port, onStop) {
  server.listen(port, '127.0.0.1', () => {
    console.log(`listening on http://127.0.0.1:${server.address().port}`);
  });
  const stop = () => {
    onStop();
    server.close(() => process.exit(0));
    // Open sockets would keep close() waiting; the bench wants a prompt exit.
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export { http };
