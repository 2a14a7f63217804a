// Loads the bundle (dist/bundle/ctsyncd.cjs) the way require() would, but
// compiled with V8's code cache of it (dist/bundle/ctsyncd.cjs.cache, which
// scripts/bundle.mjs writes with bin/ctsyncd's V8 flags): V8 then
// deserializes the compiled top level instead of parsing the whole
// 800 KB, ~30 ms of CPU of every start, most of what a client command
// (a notify step, `commit`) costs beyond Node's own start. A cache of
// another Node, other flags or another bundle is rejected by V8 itself
// (cachedDataRejected), and the bundle is then compiled as usual.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import vm from 'node:vm';

/** CommonJS's own wrapper (Module.wrap): the bundle sees exports, require, module, __filename, __dirname. */
function wrap(source) {
  return `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
}

function script(file, cachedData) {
  return new vm.Script(wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
}

/** The bundle's exports; `cacheFile` is used when it can be read and V8 accepts it. */
export function loadBundle(file, cacheFile) {
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // no cache: compiled as usual
  }
  const s = script(file, cachedData);
  const module = { exports: {} };
  s.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  return module.exports;
}

/** The code cache of the bundle's top level, for loadBundle(). */
export function codeCache(file) {
  return script(file, undefined).createCachedData();
}

/** Whether V8, under this process's flags, takes `cacheFile` for `file` (the build's check, and a test's). */
export function cacheAccepted(file, cacheFile) {
  return !script(file, readFileSync(cacheFile)).cachedDataRejected;
}
