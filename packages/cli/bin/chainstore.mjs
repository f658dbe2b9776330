#!/usr/bin/env node
// Starts from the transpiled CLI (scripts/build.mjs, run by `npm install`); indexers are compiled by esbuild on load.
import * as fs from "node:fs"

const main = new URL("../dist/main.js", import.meta.url)
if (!fs.existsSync(main)) {
  process.stderr.write("chainstore: packages are not built; run `npm install` (or `npm run build`) in the chainstore checkout\n")
  process.exit(1)
}
await import(main.href)
