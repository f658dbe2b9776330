/**
 * Memory bound: peak RSS of a long --sim run at several objects targets; it should follow the target, not the
 * event count. Also the gate's peak objects, evictions per tier and waits for a commit.
 * Usage: npx tsx bench/memory.ts [--sizes 1000000,5000000] [--targets 10000,100000,1000000] [--db postgres|pglite]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { chainstoreBin, dropSchema, eventsPerSecond, fmt, machine, measure, postgresUrl, root, writeSection } from "./lib.js"

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : process.argv[i + 1]!
}
const sizes = arg("sizes", "1000000,5000000").split(",").map(Number)
const targets = arg("targets", "10000,100000,1000000").split(",").map(Number)
const backend = arg("db", "postgres")

const rows: Array<string> = []
for (const events of sizes) {
  for (const target of targets) {
    const dataDir = fs.mkdtempSync("/tmp/cs-bench-")
    const schema = `bench_mem_${process.pid}_${target}_${events}`
    const db = backend === "pglite" ? ["--data-dir", path.join(dataDir, ".chainstore")] : ["--db", postgresUrl, "--schema", schema]
    // 100k accounts: the working set is larger than the smaller targets, so they must evict.
    const run = await measure(chainstoreBin, [
      "run", "examples/erc20", "--sim", `blocks=${events / 100},eventsPerBlock=100,accounts=100000`, "--metrics-port", "0", "--objects-target", String(target), ...db
    ])
    if (backend === "postgres") dropSchema(schema)
    fs.rmSync(dataDir, { recursive: true, force: true })
    if (run.code !== 0) throw new Error(`run failed: ${run.output.slice(-2000)}`)
    const gate = /Memory: peak (\d+) objects \(target \d+\); evicted (\d+) committed, (\d+) db-loaded; (\d+) waits/.exec(run.output)
    rows.push(`| ${fmt(events)} | ${fmt(target)} | ${run.peakRssMb} | ${fmt(Number(gate?.[1]))} | ${fmt(Number(gate?.[2]))} | ${fmt(Number(gate?.[3]))} | ${fmt(Number(gate?.[4]))} | ${fmt(eventsPerSecond(run.output))} |`)
    console.log(rows.at(-1))
  }
}

writeSection("Memory bound", `
What it measures: peak RSS of the whole \`chainstore run\` process (sampled every 100 ms from /proc) over
\`--sim\` runs of examples/erc20 with 100,000 accounts, at several \`--objects-target\`s, on ${backend}; and what the
capacity gate did (its peak objects held, entries evicted per tier, waits for a commit). RSS should follow the
target, not the number of events.

Command: \`npx tsx bench/memory.ts --sizes ${sizes.join(",")} --targets ${targets.join(",")} --db ${backend}\` — ${machine()}.

| events | objects target | peak RSS MB | peak objects | evicted committed | evicted db-loaded | commit waits | events/s |
|---|---|---|---|---|---|---|---|
${rows.join("\n")}
`)
