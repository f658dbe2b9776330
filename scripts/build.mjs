// Transpiles each package's src/ to dist/ (one file per module, no bundling), so `chainstore` starts from plain
// JavaScript: loading every module through a TypeScript loader hook costs seconds per start on Node 20.
// Types are checked separately by `tsc -b`; isolatedModules makes per-file transpiling exact.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

for (const name of ["core", "persistence", "api", "cli"]) {
  const src = path.join(root, "packages", name, "src")
  const dist = path.join(root, "packages", name, "dist")
  fs.rmSync(dist, { recursive: true, force: true })
  const files = fs.readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => /\.m?[jt]s$/.test(f) && !f.endsWith(".d.ts"))
  const typescript = files.filter((f) => f.endsWith(".ts"))
  await build({
    entryPoints: typescript.map((f) => path.join(src, f)),
    outbase: src,
    outdir: dist,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning"
  })
  // Plain JavaScript modules (the PGlite worker) are copied as they are.
  for (const f of files.filter((f) => !f.endsWith(".ts"))) {
    fs.mkdirSync(path.dirname(path.join(dist, f)), { recursive: true })
    fs.copyFileSync(path.join(src, f), path.join(dist, f))
  }
}

// The embedded database's template data dir, made once per PGlite version (packages/persistence/src/internal/pgliteTemplate.mjs).
// Without it a new data dir runs PGlite's initdb itself (seconds slower), so a failure here warns, not fails.
const Template = await import("../packages/persistence/src/internal/pgliteTemplate.mjs")
try {
  const seconds = await Template.make()
  if (seconds > 0) console.log(`made the embedded database's template data dir in ${seconds.toFixed(1)} s: ${path.relative(root, Template.templateDir)}`)
} catch (error) {
  console.warn(`warning: could not make the embedded database's template data dir (${error instanceof Error ? error.message : String(error)}); new embedded data dirs will run initdb`)
}
