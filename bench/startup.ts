/**
 * Startup: wall time and peak RSS of `chainstore --help` and of a 10-event --sim run (load, connect, create the
 * tables, index, flush, exit), on embedded PGlite and on Postgres. What a short run or a CLI call costs before any
 * event. `--checkout <dir>` adds the same commands from another checkout (e.g. an earlier commit), interleaved.
 * Usage: npx tsx bench/startup.ts [--repeat 5] [--checkout /path/to/other/checkout]
 */
import { execSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { dropSchema, machine, measure, median, postgresUrl, root, spread, writeSection } from "./lib.js"

const { values } = parseArgs({ options: { repeat: { type: "string", default: "5" }, checkout: { type: "string", multiple: true, default: [] } } })
const repeat = Number(values.repeat)
const checkouts = [root, ...values.checkout.map((c) => path.resolve(c))]
const commitOf = (dir: string) => execSync("git rev-parse --short HEAD", { cwd: dir }).toString().trim()

const cases = ["--help", "run, PGlite", "run, Postgres"] as const
const labels: Record<(typeof cases)[number], string> = {
  "--help": "`chainstore --help`",
  "run, PGlite": "10-event `chainstore run --sim`, PGlite",
  "run, Postgres": "10-event `chainstore run --sim`, Postgres"
}
const results = new Map<string, { seconds: Array<number>; rss: Array<number> }>()

for (let i = 0; i < repeat; i++) {
  for (const checkout of checkouts) {
    const bin = path.join(checkout, "node_modules/.bin/chainstore")
    for (const name of cases) {
      const dataDir = fs.mkdtempSync("/tmp/cs-startup-")
      const schema = `bench_startup_${process.pid}_${i}`
      const sim = ["run", path.join(checkout, "examples/erc20"), "--sim", "blocks=1,eventsPerBlock=10", "--metrics-port", "0"]
      const args = name === "--help" ? ["--help"] : name === "run, PGlite" ? [...sim, "--data-dir", path.join(dataDir, ".chainstore")] : [...sim, "--db", postgresUrl, "--schema", schema]
      const run = await measure(bin, args, { cwd: dataDir })
      if (name === "run, Postgres") dropSchema(schema)
      fs.rmSync(dataDir, { recursive: true, force: true })
      if (run.code !== 0) throw new Error(`${name} failed in ${checkout}: ${run.output.slice(-2000)}`)
      const key = `${commitOf(checkout)}\u0000${name}`
      const r = results.get(key) ?? { seconds: [], rss: [] }
      r.seconds.push(run.seconds)
      r.rss.push(run.peakRssMb)
      results.set(key, r)
      console.log(`${commitOf(checkout)} ${name}: ${run.seconds.toFixed(2)} s, ${run.peakRssMb} MB`)
    }
  }
}

const rows = [...results].map(([key, r]) => {
  const [commit, name] = key.split("\u0000")
  return `| ${commit} | ${labels[name as (typeof cases)[number]]} | ${spread(r.seconds, 2)} | ${Math.round(median(r.rss))} |`
})

writeSection("Startup", `
What it measures: wall seconds from spawning \`chainstore\` to its exit, and peak RSS of its process tree, for
\`--help\` and for a 10-event \`--sim\` run of examples/erc20 (load the CLI and the indexer, open the database, create
the tables, index, flush, exit) on embedded PGlite (fresh data dir) and Postgres 15 (fresh schema). Median [min–max]
of ${repeat}, commits interleaved.

Command: \`npx tsx bench/startup.ts --repeat ${repeat}${values.checkout.map((c) => ` --checkout ${c}`).join("")}\` — ${machine()}.

| commit | command | seconds | peak RSS MB |
|---|---|---|---|
${rows.join("\n")}
`)
