#!/usr/bin/env node
// Writes pkg/package.json (and copies the README) after wasm-opt has written the wasm core into
// pkg/ and tsc has compiled js/src/ into it. The version, description and license come from
// Cargo.toml so there is one source of truth. The `.` entry is index.js (compiled from
// js/src/index.ts): the wasm face's exports (sockline.js and its driver, core/) plus the
// tab-sharing `SocklineClient` (client.js, tabs/) that wraps the face's client. The `./react`
// subpath needs React, an optional peer dependency: apps without React install nothing extra.
// `./sockline_bg.wasm` is exported for apps that load the bytes themselves (Node: initSync).
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

const cargo = readFileSync('Cargo.toml', 'utf8');
const field = (name) => {
  const m = cargo.match(new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, 'm'));
  if (!m) throw new Error(`Cargo.toml has no ${name}`);
  return m[1];
};

const pkg = {
  name: 'sockline',
  version: field('version'),
  description: field('description'),
  license: field('license'),
  type: 'module',
  main: './index.js',
  module: './index.js',
  types: './index.d.ts',
  files: [
    'index.js',
    'index.d.ts',
    'client.js',
    'client.d.ts',
    'tabs/emitter.js',
    'tabs/emitter.d.ts',
    'tabs/leader.js',
    'tabs/leader.d.ts',
    'tabs/locks.js',
    'tabs/locks.d.ts',
    'tabs/pending.js',
    'tabs/pending.d.ts',
    'tabs/seen.js',
    'tabs/seen.d.ts',
    'tabs/solo.js',
    'tabs/solo.d.ts',
    'tabs/store.js',
    'tabs/store.d.ts',
    'tabs/wire.js',
    'tabs/wire.d.ts',
    'sockline.js',
    'sockline.d.ts',
    'core/abi.js',
    'core/abi.d.ts',
    'core/client.js',
    'core/client.d.ts',
    'core/options.js',
    'core/options.d.ts',
    'core/types.js',
    'core/types.d.ts',
    'core/util.js',
    'core/util.d.ts',
    'sockline_bg.wasm',
    'react/index.js',
    'react/index.d.ts',
    'README.md',
  ],
  exports: {
    '.': {
      types: './index.d.ts',
      import: './index.js',
      default: './index.js',
    },
    './react': {
      types: './react/index.d.ts',
      import: './react/index.js',
      default: './react/index.js',
    },
    './sockline_bg.wasm': './sockline_bg.wasm',
    './package.json': './package.json',
  },
  peerDependencies: { react: '>=18' },
  peerDependenciesMeta: { react: { optional: true } },
  sideEffects: false,
  keywords: ['websocket', 'reconnect', 'realtime', 'wasm'],
};

for (const f of pkg.files) {
  if (f !== 'README.md' && !existsSync(`pkg/${f}`)) throw new Error(`pkg/${f} is missing`);
}
writeFileSync('pkg/package.json', JSON.stringify(pkg, null, 2) + '\n');
copyFileSync('README.md', 'pkg/README.md');
console.log(`pkg/package.json: sockline@${pkg.version}`);
