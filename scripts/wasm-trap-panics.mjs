#!/usr/bin/env node
// Makes the package's wasm trap at once on a panic or an allocation failure, as nightly's
// `panic_immediate_abort` would: the bodies of `core::panicking::panic_fmt` (every panic goes
// through it) and `alloc::alloc::handle_alloc_error` become a single `unreachable`.
//
// Why: on wasm32-unknown-unknown std's panic handler formats the message and the location for
// the panic hook and writes them to a stderr that does not exist, then aborts, which is the same
// `unreachable` trap. That formatting is what links `core::fmt` into the package (~5 KB of code
// and its vtables, ~2.3 KB gzipped), and a stable toolchain cannot leave it out (`-Z build-std`
// needs nightly). sockline sets no panic hook, so what a page sees is unchanged: a
// `WebAssembly.RuntimeError: unreachable`. wasm-opt then drops what only those bodies reached.
//
// It reads the symbol names from the `name` section cargo writes (the size profile does not
// strip them; wasm-opt does, afterwards) and fails when either function is missing, so a
// toolchain that renames them is noticed instead of silently growing the package.
//
// Usage: node scripts/wasm-trap-panics.mjs IN.wasm OUT.wasm
// binaryen's JS API is in tools/ (the npm package wasm-opt comes from).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { default: binaryen } = await import(pathToFileURL(resolve(here, '../tools/node_modules/binaryen/index.js')).href);

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: wasm-trap-panics.mjs IN.wasm OUT.wasm');
  process.exit(2);
}
// The v0-mangled names' tails (`_RNvNt…4core9panicking9panic_fmt`, `…5alloc5alloc18handle_alloc_error`).
const TARGETS = { panic_fmt: /4core9panicking9panic_fmt$/, handle_alloc_error: /5alloc5alloc18handle_alloc_error$/ };

const module = binaryen.readBinary(readFileSync(input));
// What rustc enables for wasm32, the same list wasm-opt is given (Makefile WASM_OPT_FLAGS).
const F = binaryen.Features;
module.setFeatures(F.MutableGlobals | F.NontrappingFPToInt | F.SignExt | F.BulkMemory | F.BulkMemoryOpt | F.ReferenceTypes | F.Multivalue | F.CallIndirectOverlong);
const found = {};
for (let i = 0; i < module.getNumFunctions(); i++) {
  const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
  for (const [what, name] of Object.entries(TARGETS)) {
    if (name.test(info.name) && info.body) found[what] = info;
  }
}
for (const what of Object.keys(TARGETS)) {
  if (!found[what]) {
    console.error(`wasm-trap-panics: no \`${what}\` in ${input} (no name section, or the toolchain renamed it)`);
    process.exit(1);
  }
}
for (const info of Object.values(found)) {
  module.removeFunction(info.name);
  module.addFunction(info.name, info.params, info.results, [], module.unreachable());
}
if (!module.validate()) {
  console.error('wasm-trap-panics: the module does not validate after the change');
  process.exit(1);
}
writeFileSync(output, module.emitBinary());
