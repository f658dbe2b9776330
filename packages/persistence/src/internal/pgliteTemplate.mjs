// A PGlite data dir initialised once, at build time, and copied for each new embedded database: PGlite's initdb takes
// seconds and ~600 MB on every fresh data dir, a copy of its result ~0.1 s. Plain JavaScript: the worker and the
// build script load it as it is.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { PGlite } from "@electric-sql/pglite"

// The installed PGlite's version names the template, so a PGlite upgrade never copies another version's files.
const pglitePackage = new URL("../package.json", import.meta.resolve("@electric-sql/pglite"))
const version = JSON.parse(fs.readFileSync(pglitePackage, "utf8")).version

/** packages/persistence/template/pgdata-<PGlite version>, next to both src/ and dist/. */
export const templateDir = fileURLToPath(new URL(`../../template/pgdata-${version}`, import.meta.url))

/** Makes the template unless it is there; returns the seconds it took (0 when it was there). */
export const make = async () => {
  if (fs.existsSync(path.join(templateDir, "PG_VERSION"))) return 0
  const started = performance.now()
  const building = `${templateDir}.tmp-${process.pid}`
  fs.rmSync(building, { recursive: true, force: true })
  fs.mkdirSync(path.dirname(building), { recursive: true })
  const db = await PGlite.create({ dataDir: building })
  await db.close()
  // Renamed whole once closed, so a template that exists is a complete one.
  fs.renameSync(building, templateDir)
  return (performance.now() - started) / 1000
}

/**
 * Gives `pgdata`, when it does not exist yet, a copy of the template (copied beside it, then renamed into place, so
 * a crash never leaves half a data dir). Returns whether it did: without a template PGlite runs initdb itself.
 */
export const copyTo = (pgdata) => {
  if (fs.existsSync(pgdata) || !fs.existsSync(path.join(templateDir, "PG_VERSION"))) return false
  const copying = `${pgdata}.tmp-${process.pid}`
  fs.rmSync(copying, { recursive: true, force: true })
  fs.cpSync(templateDir, copying, { recursive: true })
  fs.renameSync(copying, pgdata)
  return true
}
