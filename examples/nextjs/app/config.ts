// Server-side configuration, read when called (per request, not baked in at build time).

/** The sockline server's HTTP address (`SOCKLINE_URL`; its WebSocket is at `/ws`). */
export function socklineServer(): string {
  return process.env.SOCKLINE_URL ?? 'http://127.0.0.1:8080';
}
