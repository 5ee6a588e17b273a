// A reference `sockline-server` child process for the JavaScript test suites (www/e2e/run.mjs,
// www/e2e/tabs.mjs, examples/node/client.test.mjs): started with `--dev` on 127.0.0.1 (an
// OS-chosen port the first time, the same port after a kill, so clients can come back), ready
// once it prints "listening on", SIGKILLed like a crash, plus the HTTP calls the tests make
// (a dev token, /health, /notify). Every wait is bounded.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every server started and not stopped yet, for a suite's overall deadline. */
export const running = new Set();

export class SocklineServer {
  port = 0;
  child = null;

  /**
   * @param {string} bin  the sockline-server binary
   * @param {{ args?: string[], env?: Record<string, string> }} [opts]  extra arguments after
   *   `--addr … --dev`, extra environment (RUST_LOG defaults to `warn`)
   */
  constructor(bin, { args = [], env = {} } = {}) {
    this.bin = bin;
    this.args = args;
    this.env = env;
  }

  /** Starts it (port 0 the first time; the same port after a kill); resolves once it listens. */
  async start() {
    for (let i = 0; ; i++) {
      try {
        return await this.#spawn();
      } catch (e) {
        // A restart right after a kill may find the port not yet free: retry briefly.
        if (this.port === 0 || i >= 30) throw e;
        await sleep(100);
      }
    }
  }

  #spawn() {
    return new Promise((resolveStart, reject) => {
      const argv = ['--addr', `127.0.0.1:${this.port}`, '--dev', ...this.args];
      const child = spawn(this.bin, argv, {
        env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...this.env },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      this.child = child;
      running.add(this);
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('sockline-server did not print "listening on" within 10 s'));
      }, 10_000);
      child.stdout.on('data', (chunk) => {
        out += chunk;
        const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
        if (m) {
          clearTimeout(timer);
          this.port = Number(m[1]);
          child.stdout.resume();
          resolveStart(this);
        }
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.child === child) this.child = null;
        reject(new Error(`sockline-server exited (${code ?? signal}) before listening`));
      });
    });
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** SIGKILL: clients see an abnormal close, as after a crash. */
  kill() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((r) => {
      child.once('exit', () => r());
      child.kill('SIGKILL');
    });
  }

  async stop() {
    await this.kill();
    running.delete(this);
  }

  /** A dev token for `user` (each `--dev` run has its own secret: fetch one per attempt). */
  async token(user) {
    const res = await fetch(`${this.url}/dev/token?user=${encodeURIComponent(user)}`, { signal: AbortSignal.timeout(3000) });
    assert.equal(res.status, 200);
    return (await res.json()).token;
  }

  async health() {
    const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(3000) });
    return res.json();
  }

  /** POST /notify with the dev key; asserts 202 and returns the answer (`{ delivered, … }`). */
  async notify(body) {
    const res = await fetch(`${this.url}/notify`, {
      method: 'POST',
      headers: { authorization: 'Bearer dev-key', 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(3000),
    });
    const text = await res.text();
    assert.equal(res.status, 202, text);
    return JSON.parse(text);
  }
}
