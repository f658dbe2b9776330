/**
 * Throughput: `chainstore run examples/erc20 --sim` end to end on embedded PGlite and on Postgres, at several
 * sizes; cost per event should stay flat. Usage: npx tsx bench/throughput.ts [--sizes 100000,1000000] [--repeat 3]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { barChart, chainstoreBin, dropSchema, eventsPerSecond, fmt, machine, measure, median, postgresUrl, root, spread, writeSection } from "./lib.js"

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : process.argv[i + 1]!
}
const sizes = arg("sizes", "100000,1000000").split(",").map(Number)
const repeat = Number(arg("repeat", "3"))

const rows: Array<string> = []
const bars: Array<{ label: string; value: number }> = []
for (const backend of ["pglite", "postgres"] as const) {
  for (const events of sizes) {
    const rates: Array<number> = []
    const rss: Array<number> = []
    for (let r = 0; r < repeat; r++) {
      const dataDir = fs.mkdtempSync("/tmp/cs-bench-")
      const schema = `bench_tp_${process.pid}_${r}`
      const target = backend === "pglite" ? ["--data-dir", path.join(dataDir, ".chainstore")] : ["--db", postgresUrl, "--schema", schema]
      const run = await measure(chainstoreBin, ["run", "examples/erc20", "--sim", `blocks=${events / 100},eventsPerBlock=100`, "--metrics-port", "0", ...target], { cwd: root })
      if (backend === "postgres") dropSchema(schema)
      fs.rmSync(dataDir, { recursive: true, force: true })
      if (run.code !== 0) throw new Error(`run failed: ${run.output.slice(-2000)}`)
      rates.push(eventsPerSecond(run.output))
      rss.push(run.peakRssMb)
      console.log(`${backend} ${events}: ${fmt(rates.at(-1)!)} events/s, ${run.seconds.toFixed(1)} s, peak RSS ${run.peakRssMb} MB`)
    }
    rows.push(`| ${backend === "pglite" ? "embedded PGlite" : "Postgres 15"} | ${fmt(events)} | ${spread(rates)} | ${(1e6 / median(rates)).toFixed(1)} | ${spread(rss)} |`)
    bars.push({ label: `${backend} ${fmt(events)} events`, value: median(rates) })
  }
}

fs.writeFileSync(path.join(root, "docs/throughput.svg"), barChart("chainstore run --sim, examples/erc20: events/s (median)", "ev/s", bars))
writeSection("Throughput", `
What it measures: \`chainstore run examples/erc20 --sim blocks=N/100,eventsPerBlock=100\` end to end (process start to
exit: load, initialize, process, write, flush) on embedded PGlite and on Postgres 15. The example does more than
balance bookkeeping: per event it updates two accounts and the token and inserts one \`Transfer\` row (so N rows
in all), calls one memory-only effect, and keeps history for the last 200 blocks. Median [min–max] of ${repeat} runs.

Command: \`npx tsx bench/throughput.ts --sizes ${sizes.join(",")} --repeat ${repeat}\` — ${machine()}.

| database | events | events/s | µs per event | peak RSS MB |
|---|---|---|---|---|
${rows.join("\n")}

![throughput](throughput.svg)
`)
