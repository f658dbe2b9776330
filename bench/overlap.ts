/**
 * Overlap: the same run with the background persistence cycle and with every write awaited before the next
 * batch (`--inline-writes`); the ratio is what the background writer buys.
 * Usage: npx tsx bench/overlap.ts [--events 1000000] [--repeat 3]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { chainstoreBin, dropSchema, eventsPerSecond, fmt, machine, measure, median, postgresUrl, root, spread, writeSection } from "./lib.js"

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : process.argv[i + 1]!
}
const events = Number(arg("events", "1000000"))
const repeat = Number(arg("repeat", "3"))

const rows: Array<string> = []
for (const backend of ["pglite", "postgres"] as const) {
  const rates = { background: [] as Array<number>, inline: [] as Array<number> }
  for (let r = 0; r < repeat; r++) {
    for (const mode of ["background", "inline"] as const) {
      const dataDir = fs.mkdtempSync("/tmp/cs-bench-")
      const schema = `bench_ov_${process.pid}_${r}_${mode}`
      const target = backend === "pglite" ? ["--data-dir", path.join(dataDir, ".chainstore")] : ["--db", postgresUrl, "--schema", schema]
      const run = await measure(chainstoreBin, [
        "run", "examples/erc20", "--sim", `blocks=${events / 100},eventsPerBlock=100`, "--metrics-port", "0", ...target,
        ...(mode === "inline" ? ["--inline-writes"] : [])
      ])
      if (backend === "postgres") dropSchema(schema)
      fs.rmSync(dataDir, { recursive: true, force: true })
      if (run.code !== 0) throw new Error(`run failed: ${run.output.slice(-2000)}`)
      rates[mode].push(eventsPerSecond(run.output))
      console.log(`${backend} ${mode}: ${fmt(rates[mode].at(-1)!)} events/s`)
    }
  }
  const ratios = rates.background.map((b, i) => b / rates.inline[i]!)
  rows.push(`| ${backend === "pglite" ? "embedded PGlite" : "Postgres 15"} | ${spread(rates.background)} | ${spread(rates.inline)} | ${spread(ratios, 2)} |`)
  console.log(`${backend}: ratio ${median(ratios).toFixed(2)}`)
}

writeSection("Overlap", `
What it measures: the same \`--sim\` run of examples/erc20 (${fmt(events)} events) with the background persistence
cycle (processing overlaps the write of the previous batches) and with \`--inline-writes\` (a hidden flag: each
batch's write is awaited before the next batch is processed). Runs alternate between the modes; ratios are paired
per repetition. Median [min–max] of ${repeat}.

Command: \`npx tsx bench/overlap.ts --events ${events} --repeat ${repeat}\` — ${machine()}.

| database | background events/s | inline events/s | ratio |
|---|---|---|---|
${rows.join("\n")}
`)
