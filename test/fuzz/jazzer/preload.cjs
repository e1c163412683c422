// node -r test/fuzz/jazzer/preload.cjs: when @jazzer.js/fuzzer requires its shipped prebuilt addon, load the
// one named by PETREL_JAZZER_ADDON instead (the patched copy test/fuzz/jazzer/setup.mjs makes; see there why).
'use strict';
const Module = require('node:module');
const path = require('node:path');

const replacement = process.env.PETREL_JAZZER_ADDON;
if (replacement) {
  const original = Module._extensions['.node'];
  Module._extensions['.node'] = function (module, filename) {
    const shipped = filename.split(path.sep).join('/').endsWith(`/@jazzer.js/fuzzer/prebuilds/fuzzer-${process.platform}-${process.arch}.node`);
    return original.call(this, module, shipped ? replacement : filename);
  };
}
