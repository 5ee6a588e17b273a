import { defineConfig } from 'vite';

// `sockline` is installed from ../pkg as a symlink (file:../pkg); dedupe makes the package's
// `import 'react'` resolve to this app's React, as it would from a registry install.
// `npm run dev` proxies the server routes to a sockline-server on 127.0.0.1:8080 (`make demo`).
const server = process.env.SOCKLINE_SERVER ?? 'http://127.0.0.1:8080';
export default defineConfig({
  resolve: { dedupe: ['react', 'react-dom'] },
  server: {
    proxy: {
      '/ws': { target: server.replace(/^http/, 'ws'), ws: true },
      '/dev': server,
      '/notify': server,
      '/health': server,
    },
  },
  build: { target: 'es2022' },
});
