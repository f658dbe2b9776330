/**
 * The event model's cost: `chainstore run bench/event-model/indexer.ts` on one anvil chain (N Transfer events, `perTx`
 * per transaction, one transaction per block) with no field selected, with the transaction's sender selected, with
 * the sender and the receipt's status and gasUsed, and with a block handler on every block. Runs alternate; each
 * run's table is checked against the chain (every holder's balance = balanceOf, sum(transferCount) = 2 N, the
 * selected sender, one block row per block with the block's gasUsed).
 * Usage: npx tsx bench/event-model.ts [--events 100000] [--per-tx 10] [--repeat 3] [--no-docs]
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { parseArgs } from "node:util"
import { balanceOf, deployToken, head, makeTransfers, mine, sprayAccounts, startAnvil } from "../test/support/anvil.js"
import { fmt, machine, measure, median, postgresUrl, psql, root, spread, writeSection } from "./lib.js"

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "100000" },
    "per-tx": { type: "string", default: "10" },
    repeat: { type: "string", default: "3" },
    "no-docs": { type: "boolean", default: false }
  }
})
const events = Number(values.events)
const perTx = Number(values["per-tx"])
const repeat = Number(values.repeat)
const accounts = 1000
const modes = ["none", "transaction", "receipt", "block"] as const
type Mode = (typeof modes)[number]

const dirty = execFileSync("git", ["status", "--porcelain", "packages"], { cwd: root, encoding: "utf8" }).trim() !== ""

console.log(`generating ${fmt(events)} Transfer events, ${perTx} per transaction, on anvil ...`)
const generated = performance.now()
const anvil = await startAnvil()
const supply = 10n ** 27n
const token = await deployToken(anvil, { name: "Bench", symbol: "BNCH", supply })
// A thousand transactions at a time: anvil slows to a crawl with tens of thousands pending.
for (let done = 0; done < events - 1; done += 1000 * perTx) {
  await makeTransfers(anvil, token.address, { count: Math.min(1000 * perTx, events - 1 - done), accounts, perTx, seed: done })
}
await mine(anvil, 4)
const endBlock = await head(anvil)
const blocks = endBlock - token.block + 1
const holders = [anvil.account.address, ...sprayAccounts(accounts)]
const balances = new Map<string, bigint>()
for (const holder of holders) balances.set(holder.toLowerCase(), await balanceOf(anvil, token.address, holder))
// The gas of a few blocks, to check the block handler's rows against.
const sampled = await Promise.all([token.block, token.block + 1, Math.floor((token.block + endBlock) / 2), endBlock].map(async (n) =>
  [n, (await anvil.publicClient.getBlock({ blockNumber: BigInt(n) })).gasUsed] as const
))
const generateSeconds = (performance.now() - generated) / 1000
const anvilPid = Number(execFileSync("pgrep", ["-f", `anvil .*--port ${new URL(anvil.url).port}`], { encoding: "utf8" }).trim().split("\n")[0])
/** CPU seconds anvil has used (user + system), from /proc: what serving the run's RPC calls costs the shared cores. */
const anvilCpu = (): number => {
  const fields = fs.readFileSync(`/proc/${anvilPid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}
console.log(`chain: blocks ${token.block}..${endBlock} (${fmt(blocks)}), generated in ${generateSeconds.toFixed(1)} s`)

const verify = (schema: string, mode: Mode): string => {
  const rows = new Map(psql(`select id, balance::text, transfer_count, last_sender from "${schema}".account`).split("\n").filter((l) => l !== "").map((l) => {
    const [id, balance, count, sender] = l.split("\t")
    return [id!, { balance: BigInt(balance!), count: Number(count), sender: sender! }]
  }))
  for (const [holder, balance] of balances) {
    if (balance !== 0n && rows.get(holder)?.balance !== balance) throw new Error(`${schema}: ${holder} holds ${rows.get(holder)?.balance}, balanceOf says ${balance}`)
  }
  const counted = [...rows.values()].reduce((n, r) => n + r.count, 0)
  if (counted !== 2 * events) throw new Error(`${schema}: ${counted} transfers counted, want ${2 * events}`)
  // Every transaction is the anvil account's (the deployment's mint and the spray transactions).
  const sender = mode === "transaction" || mode === "receipt" ? anvil.account.address.toLowerCase() : ""
  const senders = new Set([...rows.values()].map((r) => r.sender))
  if (senders.size !== 1 || !senders.has(sender)) throw new Error(`${schema}: senders ${[...senders].join(", ")}, want ${sender}`)
  let check = `balances = balanceOf, sum(transferCount) ${counted}`
  if (mode === "block") {
    const gas = new Map(psql(`select id, gas_used::text from "${schema}".block_gas`).split("\n").filter((l) => l !== "").map((l) => l.split("\t") as [string, string]))
    if (gas.size !== blocks) throw new Error(`${schema}: ${gas.size} block rows, want ${blocks}`)
    for (const [n, used] of sampled) if (gas.get(String(n)) !== String(used)) throw new Error(`${schema}: block ${n} gasUsed ${gas.get(String(n))}, the chain says ${used}`)
    check += `, ${gas.size} block rows`
  } else if (sender !== "") check += `, every lastSender ${sender.slice(0, 8)}…`
  return check
}

interface Result {
  readonly rate: Array<number>
  readonly rss: Array<number>
  readonly anvilCpu: Array<number>
  check: string
}
const results = Object.fromEntries(modes.map((m) => [m, { rate: [], rss: [], anvilCpu: [], check: "" }])) as unknown as Record<Mode, Result>
for (let r = 0; r < repeat; r++) {
  for (const mode of modes) {
    const schema = `bench_event_model_${mode}_${process.pid}_${r}`
    psql(`drop schema if exists "${schema}" cascade`)
    const cpuBefore = anvilCpu()
    const run = await measure(process.execPath, [`${root}/packages/cli/bin/chainstore.mjs`, "run", "bench/event-model/indexer.ts", "--db", postgresUrl, "--schema", schema, "--metrics-port", "0"], {
      env: { RPC_URL: anvil.url, TOKEN_ADDRESS: token.address, START_BLOCK: String(token.block), END_BLOCK: String(endBlock), CHAIN_ID: String(anvil.chainId), EVENT_MODEL: mode, CHAINSTORE_CACHE: "off" }
    })
    if (run.code !== 0) throw new Error(`${mode} run failed: ${run.output.slice(-3000)}`)
    results[mode].check = verify(schema, mode)
    psql(`drop schema "${schema}" cascade`)
    results[mode].rate.push(events / run.seconds)
    results[mode].rss.push(run.peakRssMb)
    results[mode].anvilCpu.push(anvilCpu() - cpuBefore)
    console.log(`${mode}: ${fmt(events / run.seconds)} events/s (wall ${run.seconds.toFixed(1)} s, peak RSS ${run.peakRssMb} MB, anvil ${results[mode].anvilCpu.at(-1)!.toFixed(1)} CPU s); ${results[mode].check}`)
  }
}
await anvil.stop()

const base = median(results.none.rate)
const label: Record<Mode, string> = {
  none: "no selection (the same run without them)",
  transaction: "`fields: { transaction: [\"from\"] }`",
  receipt: "`transaction: [\"from\", \"status\", \"gasUsed\"]` (receipts)",
  block: "`onBlock: [{ interval: 1, fields: { block: [\"gasUsed\"] } }]`, one row per block"
}
const table = modes.map((m) => `| ${label[m]} | ${spread(results[m].rate)} | ${(median(results[m].rate) / base).toFixed(2)} | ${spread(results[m].rss)} | ${spread(results[m].anvilCpu, 1)} | ${results[m].check} |`).join("\n")
for (const m of modes) console.log(`${m}: ${(median(results[m].rate) / base).toFixed(2)} of no selection`)
if (!values["no-docs"]) {
  writeSection("Event model", `
What it measures: what selecting transaction fields and a block handler on every block cost, in events/s of
\`chainstore run bench/event-model/indexer.ts\` (bench/peers's minimal indexer, one variant per run, differing only by
the selection) on one anvil chain: ${fmt(events)} Transfer events, ${perTx} per transaction and one transaction per
block (blocks ${token.block}..${endBlock}, ${fmt(blocks)} blocks), RpcSource at its defaults, the chain cache off (each run fetches everything), Postgres 15. events/s =
Transfer events / wall seconds from spawning the process to its exit; the variants alternate within each round.
Every run's table is checked against the chain (balances = balanceOf, sum(transferCount) = 2 × events, the selected
sender, one block row per block with the block's own gasUsed).

Command: \`npx tsx bench/event-model.ts --events ${events} --per-tx ${perTx} --repeat ${repeat}\` — ${machine()}${dirty ? " (plus the uncommitted working tree)" : ""}. Chain generated in ${generateSeconds.toFixed(0)} s.

| selection | events/s, median [min–max] | ÷ no selection | peak RSS MB | anvil CPU s | check |
|---|---|---|---|---|---|
${table}

Reading it: a transaction field costs one \`eth_getTransactionByHash\` per transaction here (a block with one
transaction is not worth its whole body), batched; receipt fields add one receipt per transaction
(\`eth_getBlockReceipts\` for blocks of two or more); a block handler on every block adds a header per block and one
handler run and one row per block (${fmt(blocks)} here, ${(blocks / events * 100).toFixed(0)}% more items than events). The calls are
made while earlier ranges are processed, so the indexer does not wait on their round trips; what it pays is CPU: the
node's answers (anvil's CPU column: serving ${fmt(blocks)} transactions and receipts) and their JSON in the indexer, on the
same 2 cores. A node on another machine would take its share off these cores; each transaction's own fields cost
the same whatever the number of events in it, so chains with fewer events per transaction pay more per event.
`)
}
