/**
 * Startup: wall time and peak RSS of `chainstore --help`, and for 10-event --sim runs of bench/startup/indexer.ts
 * the time until the first event reached a handler and until the process exited (load, open the database, create
 * the tables, index, flush, exit): on embedded PGlite with a fresh data dir made by initdb (the template moved
 * away), with a fresh data dir copied from the template, with that data dir reopened for the next 10 events, and
 * on Postgres. What a new user, a test or a restart pays before any event.
 * Usage: npx tsx bench/startup.ts [--repeat 5]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { chainstoreBin, dropSchema, machine, measure, postgresUrl, root, spread, writeSection } from "./lib.js"

const { values } = parseArgs({ options: { repeat: { type: "string", default: "5" } } })
const repeat = Number(values.repeat)

const cases = ["--help", "PGlite initdb", "PGlite", "PGlite reopened", "Postgres"] as const
type Case = (typeof cases)[number]
const labels: Record<Case, string> = {
  "--help": "`chainstore --help`",
  "PGlite initdb": "10 events, PGlite, a fresh data dir made by initdb (the template moved away)",
  "PGlite": "10 events, PGlite, a fresh data dir (a copy of the template)",
  "PGlite reopened": "the next 10 events, PGlite, that data dir reopened",
  "Postgres": "10 events, Postgres, a fresh schema"
}
const results = new Map<Case, { first: Array<number>; exit: Array<number>; rss: Array<number> }>(cases.map((c) => [c, { first: [], exit: [], rss: [] }]))
const template = path.join(root, "packages/persistence/template")

for (let i = 0; i < repeat; i++) {
  // The reopened case runs on the data dir the fresh one made, one block further.
  const dir = fs.mkdtempSync("/tmp/cs-startup-")
  for (const name of cases) {
    const schema = `bench_startup_${process.pid}_${i}`
    const firstEventFile = path.join(dir, `first-${name.replace(/\W/g, "")}`)
    const sim = (blocks: number) => ["run", "bench/startup/indexer.ts", "--sim", `blocks=${blocks},eventsPerBlock=10`, "--metrics-port", "0"]
    const args = name === "--help" ? ["--help"]
      : name === "PGlite initdb" ? [...sim(1), "--data-dir", path.join(dir, "initdb")]
      : name === "PGlite" ? [...sim(1), "--data-dir", path.join(dir, "copied")]
      : name === "PGlite reopened" ? [...sim(2), "--data-dir", path.join(dir, "copied")]
      : [...sim(1), "--db", postgresUrl, "--schema", schema]
    // Without the template the worker runs initdb, as every fresh data dir did before the template existed.
    if (name === "PGlite initdb") fs.renameSync(template, `${template}.away`)
    const spawned = Date.now()
    const run = await measure(chainstoreBin, args, { env: { FIRST_EVENT_FILE: firstEventFile } }).finally(() => {
      if (name === "PGlite initdb") fs.renameSync(`${template}.away`, template)
    })
    if (name === "Postgres") dropSchema(schema)
    if (run.code !== 0) throw new Error(`${name} failed: ${run.output.slice(-2000)}`)
    const r = results.get(name)!
    if (name !== "--help") {
      // "Done: … (N events)" counts the data dir's events: 20 once reopened.
      const events = name === "PGlite reopened" ? 20 : 10
      if (!run.output.includes(`(${events} events)`)) throw new Error(`${name}: no "(${events} events)" in ${run.output.slice(-2000)}`)
      r.first.push((Number(fs.readFileSync(firstEventFile, "utf8")) - spawned) / 1000)
    }
    r.exit.push(run.seconds)
    r.rss.push(run.peakRssMb)
    console.log(`${name}: ${name === "--help" ? "" : `first event ${r.first.at(-1)!.toFixed(2)} s, `}exit ${run.seconds.toFixed(2)} s, ${run.peakRssMb} MB`)
  }
  fs.rmSync(dir, { recursive: true, force: true })
}

const rows = cases.map((name) => {
  const r = results.get(name)!
  return `| ${labels[name]} | ${name === "--help" ? "–" : spread(r.first, 2)} | ${spread(r.exit, 2)} | ${spread(r.rss)} |`
})

writeSection("Startup", `
What it measures: for \`chainstore --help\` and for 10-event \`--sim\` runs of \`bench/startup/indexer.ts\` (bench/peers's
bookkeeping; it writes the wall clock of its first event to a file), the seconds from spawning \`chainstore\` until
the first event reached a handler (load the CLI and the indexer, open the database, create the tables) and until it
exited (index, flush, close), and the peak RSS of its process tree. Embedded PGlite with a fresh data dir made by
PGlite's initdb (what every fresh data dir did before the template), with a fresh data dir copied from the
template data dir made once at \`npm install\` (\`packages/persistence/template/\`, by \`scripts/build.mjs\`), the same
data dir reopened for the next 10 events; and Postgres 15 with a fresh schema. Median [min–max] of ${repeat}.

Command: \`npx tsx bench/startup.ts --repeat ${repeat}\` — ${machine()}.

| command | first event s | exit s | peak RSS MB |
|---|---|---|---|
${rows.join("\n")}
`)
