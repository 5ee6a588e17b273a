#!/usr/bin/env node
// Writes pkg/package.json (and copies the README) after wasm-bindgen --target web has filled pkg/.
// The version, description and license come from Cargo.toml so there is one source of truth.
// The `./react` subpath (pkg/react/, compiled from js/ by `make pkg`) needs React, an optional
// peer dependency: apps without React install nothing extra.
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
  main: './sockline.js',
  module: './sockline.js',
  types: './sockline.d.ts',
  files: [
    'sockline.js',
    'sockline.d.ts',
    'sockline_bg.wasm',
    'sockline_bg.wasm.d.ts',
    'react/index.js',
    'react/index.d.ts',
    'README.md',
  ],
  exports: {
    '.': {
      types: './sockline.d.ts',
      import: './sockline.js',
      default: './sockline.js',
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
