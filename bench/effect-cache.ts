/**
 * Effect cache: a run whose handler calls a slow (20 ms) effect over 10,000 Zipf-distributed inputs — calls made vs
 * distinct inputs, hit rate, events/s with the persisted cache, memory-only (`cache: false`), and after a restart
 * half way through with the database cache warm. Usage: npx tsx bench/effect-cache.ts [--events 200000]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { chainstoreBin, dropSchema, eventsPerSecond, fmt, machine, measure, postgresUrl, root, writeSection } from "./lib.js"

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : process.argv[i + 1]!
}
const events = Number(arg("events", "200000"))
const indexer = path.join(root, "bench/effect-cache/indexer.ts")
const sim = `blocks=${events / 100},eventsPerBlock=100`
const rows: Array<string> = []

const run = async (label: string, schema: string, env: Record<string, string>, extra: ReadonlyArray<string> = []) => {
  const log = path.join(fs.mkdtempSync("/tmp/cs-bench-"), "calls.log")
  const result = await measure(chainstoreBin, ["run", indexer, "--sim", sim, "--metrics-port", "0", "--db", postgresUrl, "--schema", schema, ...extra], {
    env: { ...env, EFFECT_CALL_LOG: log }
  })
  if (result.code !== 0) throw new Error(`run failed: ${result.output.slice(-2000)}`)
  const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : []
  const processed = Number(/\((\d+) events\)/.exec(result.output)?.[1] ?? events)
  return { calls, processed, rate: eventsPerSecond(result.output), label }
}
const row = (r: Awaited<ReturnType<typeof run>>, note = "") => {
  rows.push(`| ${r.label} | ${fmt(r.processed)} | ${fmt(r.calls.length)} | ${fmt(new Set(r.calls).size)} | ${((1 - r.calls.length / r.processed) * 100).toFixed(2)}% | ${fmt(r.rate)} | ${note} |`)
  console.log(rows.at(-1))
}

const persisted = `bench_ec_${process.pid}`
const memory = `bench_ec_mem_${process.pid}`
const restart = `bench_ec_rs_${process.pid}`
row(await run("persisted (`cache: true`)", persisted, {}))
dropSchema(persisted)
row(await run("memory only (`cache: false`)", memory, { EFFECT_CACHE: "memory" }))
dropSchema(memory)
// A restart half way: the second life must not call any input whose output the first life committed.
const first = await run("restart: first half", restart, {}, ["--end-block", String(events / 200)])
row(first)
const second = await run("restart: second half, database cache warm", restart, {})
const again = second.calls.filter((c) => new Set(first.calls).has(c)).length
row(second, `${fmt(again)} calls for inputs the first half committed`)
dropSchema(restart)

writeSection("Effect cache", `
What it measures: \`bench/effect-cache/indexer.ts\` — every Transfer of a ${fmt(events)}-event \`--sim\` run calls an
effect that sleeps 20 ms (a stand-in for an RPC) with one of 10,000 inputs drawn Zipf-like (P(k) ∝ 1/k) from the
event; calls are counted by the effect itself. On Postgres. Hit rate = 1 − calls / events.

Command: \`npx tsx bench/effect-cache.ts --events ${events}\` — ${machine()}.

| mode | events | calls made | distinct inputs called | hit rate | events/s | note |
|---|---|---|---|---|---|---|
${rows.join("\n")}
`)
