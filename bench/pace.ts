/**
 * Processing at the database's pace: events/s of `chainstore run --sim` on Postgres (examples/erc20, and
 * bench/startup's minimal indexer) next to the rate at which the same Postgres inserts the rows the example ends
 * with, server-side (`INSERT … SELECT … FROM generate_series`, no client at all) into copies of the run's own
 * tables (`LIKE … INCLUDING ALL`: same types, keys and indexes). The ratio is the share of the database's own pace
 * the runtime reaches. Runs alternate; each indexer's tables are checked against the simulated chain's totals.
 * Usage: npx tsx bench/pace.ts [--blocks 4000] [--repeat 3] [--no-docs]
 */
import { parseArgs } from "node:util"
import { fmt, machine, measure, median, postgresUrl, psql, root, spread, writeSection } from "./lib.js"

const { values } = parseArgs({
  options: { blocks: { type: "string", default: "4000" }, repeat: { type: "string", default: "3" }, "no-docs": { type: "boolean", default: false } }
})
const blocks = Number(values.blocks)
const repeat = Number(values.repeat)
const accounts = 20_000
const events = blocks * 100
const sim = `seed=12,blocks=${blocks},eventsPerBlock=100,accounts=${accounts}`

const indexers = { example: "examples/erc20", minimal: "bench/startup/indexer.ts" } as const
type Name = keyof typeof indexers
const rates: Record<Name, { wall: Array<number>; own: Array<number> }> = { example: { wall: [], own: [] }, minimal: { wall: [], own: [] } }
const ceilings: Array<number> = []

/** The rows the example ends with, inserted server-side into empty copies of its tables: rows per second. */
const ceiling = (schema: string): number => {
  const copy = `${schema}_ceiling`
  psql(`drop schema if exists "${copy}" cascade; create schema "${copy}";
    create table "${copy}".transfer (like "${schema}".transfer including all);
    create table "${copy}".account (like "${schema}".account including all)`)
  const started = performance.now()
  psql(`insert into "${copy}".transfer select '1337-' || (g / 100) || '-' || (g % 100), '0x' || lpad(to_hex(g % ${accounts}), 40, '0'),
      '0x' || lpad(to_hex((g * 7) % ${accounts}), 40, '0'), (g::numeric * 1000000007) % 1000000000000000000000, g / 100
    from generate_series(1, ${events}) g;
    insert into "${copy}".account select '0x' || lpad(to_hex(g), 40, '0'), g::numeric * 1000000000000 from generate_series(1, ${accounts}) g`)
  const seconds = (performance.now() - started) / 1000
  psql(`drop schema "${copy}" cascade`)
  return (events + accounts) / seconds
}

for (let r = 0; r < repeat; r++) {
  for (const name of Object.keys(indexers) as Array<Name>) {
    const schema = `bench_pace_${name}_${process.pid}_${r}`
    psql(`drop schema if exists "${schema}" cascade`)
    const run = await measure(process.execPath, [`${root}/packages/cli/bin/chainstore.mjs`, "run", indexers[name], "--sim", sim, "--db", postgresUrl, "--schema", schema, "--metrics-port", "0"])
    if (run.code !== 0) throw new Error(`${name} failed: ${run.output.slice(-3000)}`)
    if (!run.output.includes(`(${events} events)`)) throw new Error(`${name}: no "(${events} events)" in ${run.output.slice(-2000)}`)
    // Every simulated transfer moves value between accounts: the balances sum to what was minted to the accounts.
    const sum = psql(`select sum(balance)::text from "${schema}".account where id <> '0x0000000000000000000000000000000000000000'`)
    if (BigInt(sum) !== BigInt(accounts) * 10n ** 24n) throw new Error(`${name}: balances sum to ${sum}, want ${accounts} × 10^24`)
    if (name === "example") {
      const transfers = Number(psql(`select count(*) from "${schema}".transfer`))
      if (transfers !== events) throw new Error(`example: ${transfers} transfer rows, want ${events}`)
      ceilings.push(ceiling(schema))
    }
    psql(`drop schema "${schema}" cascade`)
    rates[name].wall.push(events / run.seconds)
    rates[name].own.push(Number(/(\d+) events\/s overall/.exec(run.output)?.[1]))
    console.log(`${name}: ${fmt(events / run.seconds)} events/s (wall ${run.seconds.toFixed(1)} s; the CLI's own ${fmt(rates[name].own.at(-1)!)})${
      name === "example" ? `; server-side insert ${fmt(ceilings.at(-1)!)} rows/s` : ""}`)
  }
}

const db = median(ceilings)
const line = (name: Name, label: string) =>
  `| ${label} | ${spread(rates[name].wall)} | ${spread(rates[name].own)} | ${(median(rates[name].own) / db).toFixed(2)} |`
console.log(`example ${(median(rates.example.own) / db).toFixed(2)}, minimal ${(median(rates.minimal.own) / db).toFixed(2)} of the server-side insert rate`)
if (!values["no-docs"]) {
  writeSection("Pace", `
What it measures: how close processing comes to the database's own pace. \`chainstore run --sim ${sim}\`
(${fmt(events)} events) on Postgres 15 with examples/erc20 (two account updates, the token, a Transfer row and two
effect calls per event) and with bench/startup's minimal indexer (the two account updates only), next to the rate
at which the same Postgres inserts the rows the example ends with — ${fmt(events)} transfers and ${fmt(accounts)}
accounts — server-side (\`INSERT … SELECT … FROM generate_series\` into \`LIKE … INCLUDING ALL\` copies of the run's
own tables: same types, primary keys and indexes; no client, no wire), measured right after each example run.
events/s: wall (spawn to exit) and the CLI's own ("events/s overall", from opening the database to the end);
ratio = the CLI's own events/s ÷ the server-side rows/s. Median [min–max] of ${repeat}, runs alternating.

Command: \`npx tsx bench/pace.ts --blocks ${blocks} --repeat ${repeat}\` — ${machine()}.

Server-side insert of the same rows: **${fmt(db)} rows/s** (${spread(ceilings)}).

| indexer | events/s, wall | events/s, the CLI's own | ÷ server-side rows/s |
|---|---|---|---|
${line("example", "examples/erc20")}
${line("minimal", "minimal (bench/startup/indexer.ts)")}
`)
}
