/**
 * Where the time goes: a CPU profile (`node --cpu-prof`) of `chainstore run examples/erc20 --sim` on Postgres,
 * its self time grouped by what the code is (Effect's runtime, the in-memory tables, the effect cache, writes, GC…)
 * and the hottest functions.
 * Usage: npx tsx bench/profile.ts [--events 100000]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { dropSchema, eventsPerSecond, fmt, machine, measure, postgresUrl, root, writeSection } from "./lib.js"

const { values } = parseArgs({ options: { events: { type: "string", default: "100000" } } })
const events = Number(values.events)
const dir = fs.mkdtempSync("/tmp/cs-profile-")
const schema = `bench_profile_${process.pid}`
const run = await measure(process.execPath, [
  "--cpu-prof", "--cpu-prof-dir", dir, path.join(root, "packages/cli/bin/chainstore.mjs"),
  "run", "examples/erc20", "--sim", `blocks=${events / 100},eventsPerBlock=100`, "--db", postgresUrl, "--schema", schema, "--metrics-port", "0"
])
dropSchema(schema)
if (run.code !== 0) throw new Error(`run failed: ${run.output.slice(-2000)}`)

interface Node {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
const file = fs.readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))!
const profile = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as { nodes: Array<Node>; samples: Array<number>; timeDeltas: Array<number> }
fs.rmSync(dir, { recursive: true, force: true })

const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
const selfTime = new Map<number, number>()
profile.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) ?? 0) + profile.timeDeltas[i]!))

const categories: ReadonlyArray<readonly [string, (url: string, name: string) => boolean]> = [
  ["garbage collection", (_, name) => name === "(garbage collector)"],
  ["idle (waiting for I/O)", (_, name) => name === "(idle)"],
  ["simulated chain (generating events)", (url) => url.includes("/SimChain.")],
  ["in-memory tables and store", (url) => url.includes("/InMemoryTable.") || url.includes("/Store.") || url.includes("/StoreState.")],
  ["effect cache and input keys", (url) => url.includes("/EffectCache.") || url.includes("/ExternalEffect.")],
  ["processor, handler context, fetcher", (url) => /\/(Processor|HandlerContexts|Fetcher|Batch|CapacityGate)\./.test(url)],
  ["writes (persistence, row encoding, sql-pg)", (url) => url.includes("/persistence/") || url.includes("/PersistenceCycle.") || url.includes("@effect/sql-pg") || url.includes("effect/dist/sql")],
  ["the example's handlers", (url) => url.includes("/examples/")],
  ["Effect's runtime (fibers, generators, Schema)", (url) => url.includes("/effect/dist/")],
  ["Node internals (module loading, sockets)", (url) => url.startsWith("node:")]
]
const categoryOf = (node: Node) => categories.find(([, test]) => test(node.callFrame.url, node.callFrame.functionName))?.[0] ?? "other"
const total = [...selfTime.values()].reduce((a, b) => a + b, 0)
const byCategory = new Map<string, number>()
const byFunction = new Map<string, number>()
for (const [id, micros] of selfTime) {
  const node = nodes.get(id)!
  byCategory.set(categoryOf(node), (byCategory.get(categoryOf(node)) ?? 0) + micros)
  const where = node.callFrame.url.replace(/.*node_modules\//, "").replace(/.*\/work\/[^/]+\//, "").replace(/^file:\/\//, "")
  const key = `\`${node.callFrame.functionName || "(anonymous)"}\` ${where}${where ? `:${node.callFrame.lineNumber + 1}` : ""}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros)
}
const share = (micros: number) => `${((100 * micros) / total).toFixed(1)}%`
const table = (entries: Map<string, number>, count: number) =>
  [...entries].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, micros]) => `| ${name} | ${share(micros)} | ${fmt(micros / 1000)} |`).join("\n")

writeSection("Where the time goes", `
What it measures: one CPU profile (\`node --cpu-prof\`, sampling; it slows the run itself) of \`chainstore run
examples/erc20 --sim blocks=${events / 100},eventsPerBlock=100\` on Postgres 15 from start to exit (${fmt(events)} events,
${fmt(eventsPerSecond(run.output))} events/s under the profiler), self time grouped by what the code is.

Command: \`npx tsx bench/profile.ts --events ${events}\` — ${machine()}.

| where | share of samples | ms |
|---|---|---|
${table(byCategory, categories.length + 1)}

Hottest functions (self time):

| function | share | ms |
|---|---|---|
${table(byFunction, 12)}
`)
console.log([...byCategory].sort((a, b) => b[1] - a[1]).map(([name, micros]) => `${share(micros).padStart(6)} ${name}`).join("\n"))
