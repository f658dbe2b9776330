/**
 * The chain cache: `chainstore run bench/peers/indexer.ts` on one anvil chain (N Transfer events, 1000 per transaction
 * and block) with the cache off, with it on and cold (what a first run pays to store what it fetches), and on and warm
 * (the same run after `chainstore db reset`: what a re-run after a handler change costs), on Postgres and on PGlite.
 * Every run reaches the node through a counting proxy (test/support/rpcProvider.ts, no faults), so the table shows the
 * eth_getLogs and eth_call requests each made. Postgres runs are checked against the chain (balances = balanceOf,
 * sum(transferCount) = 2 N); PGlite runs by their holder and event counts.
 * Usage: npx tsx bench/chain-cache.ts [--events 1000000] [--no-docs]
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { balanceOf, deployToken, head, makeTransfers, mine, sprayAccounts, startAnvil } from "../test/support/anvil.js"
import { startProvider } from "../test/support/rpcProvider.js"
import { fmt, machine, measure, postgresUrl, psql, root, writeSection } from "./lib.js"

const { values } = parseArgs({ options: { events: { type: "string", default: "1000000" }, "no-docs": { type: "boolean", default: false } } })
const events = Number(values.events)
const perTx = 1000
const accounts = 1000

console.log(`generating ${fmt(events)} Transfer events on anvil ...`)
const generated = performance.now()
const anvil = await startAnvil()
const token = await deployToken(anvil, { name: "Bench", symbol: "BNCH", supply: 10n ** 27n })
for (let done = 0; done < events - 1; done += 100 * perTx) {
  await makeTransfers(anvil, token.address, { count: Math.min(100 * perTx, events - 1 - done), accounts, perTx, seed: done })
}
await mine(anvil, 64)
const endBlock = await head(anvil)
const balances = new Map<string, bigint>()
for (const holder of [anvil.account.address, ...sprayAccounts(accounts)]) balances.set(holder.toLowerCase(), await balanceOf(anvil, token.address, holder))
const holders = [...balances.values()].filter((b) => b !== 0n).length
const generateSeconds = (performance.now() - generated) / 1000
console.log(`chain: blocks ${token.block}..${endBlock}, generated in ${generateSeconds.toFixed(1)} s`)

const dbs = ["postgres", "pglite"] as const
const modes = ["off", "cold", "warm"] as const
type Db = (typeof dbs)[number]
type Mode = (typeof modes)[number]
interface Row {
  readonly db: Db
  readonly mode: Mode
  readonly seconds: number
  readonly logs: number
  readonly calls: number
  readonly headers: number
  readonly rss: number
  readonly check: string
}
const rows: Array<Row> = []
const env = { RPC_URL: anvil.url, TOKEN_ADDRESS: token.address, START_BLOCK: String(token.block), END_BLOCK: String(endBlock), CHAIN_ID: String(anvil.chainId) }
const cli = path.join(root, "packages/cli/bin/chainstore.mjs")

for (const db of dbs) {
  const schema = `bench_chain_cache_${process.pid}`
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "cs-chain-cache-"))
  const target = db === "postgres" ? ["--db", postgresUrl, "--schema", schema] : ["--data-dir", path.join(dataDir, ".chainstore")]
  const fresh = () => {
    if (db === "postgres") {
      psql(`drop schema if exists "${schema}" cascade`)
      psql("drop schema if exists chainstore_cache cascade")
    } else {
      fs.rmSync(path.join(dataDir, ".chainstore"), { recursive: true, force: true })
    }
  }
  const check = async (): Promise<string> => {
    if (db === "pglite") {
      const status = await measure(process.execPath, [cli, "db", "status", "bench/peers/indexer.ts", "--json", ...target], { cwd: root, env })
      const parsed = JSON.parse(status.output.slice(status.output.indexOf("{"))) as { chains: Array<{ eventsProcessed: number }>; entityCounts: Array<{ rows: number }> }
      if (parsed.chains[0]!.eventsProcessed !== events) throw new Error(`pglite: ${parsed.chains[0]!.eventsProcessed} events processed, want ${events}`)
      return `${parsed.entityCounts[0]!.rows} accounts, ${fmt(events)} events`
    }
    const got = new Map(psql(`select id, balance::text, transfer_count from "${schema}".account`).split("\n").filter((l) => l !== "").map((l) => {
      const [id, balance, count] = l.split("\t")
      return [id!, { balance: BigInt(balance!), count: Number(count) }]
    }))
    for (const [holder, balance] of balances) if (balance !== 0n && got.get(holder)?.balance !== balance) throw new Error(`${holder}: ${got.get(holder)?.balance}, balanceOf ${balance}`)
    const counted = [...got.values()].reduce((n, r) => n + r.count, 0)
    if (counted !== 2 * events) throw new Error(`sum(transferCount) ${counted}, want ${2 * events}`)
    return `${holders} balances = balanceOf, sum(transferCount) ${fmt(counted)}`
  }
  for (const mode of modes) {
    if (mode === "off" || mode === "cold") fresh()
    else {
      const reset = await measure(process.execPath, [cli, "db", "reset", "bench/peers/indexer.ts", "--yes", ...target], { cwd: root, env })
      if (reset.code !== 0) throw new Error(`db reset failed: ${reset.output}`)
    }
    const proxy = await startProvider(anvil.url)
    const run = await measure(process.execPath, [cli, "run", "bench/peers/indexer.ts", ...target, "--metrics-port", "0"], {
      cwd: root,
      env: { ...env, RPC_URL: proxy.url, ...(mode === "off" ? { CHAINSTORE_CACHE: "off" } : {}) }
    })
    await proxy.close()
    if (run.code !== 0) throw new Error(`${db} ${mode} failed: ${run.output.slice(-3000)}`)
    const calls = (m: string) => proxy.stats.calls.get(m) ?? 0
    const row: Row = {
      db,
      mode,
      seconds: run.seconds,
      logs: calls("eth_getLogs"),
      calls: calls("eth_call"),
      headers: calls("eth_getBlockByNumber") + calls("eth_getBlockByHash"),
      rss: run.peakRssMb,
      check: await check()
    }
    rows.push(row)
    console.log(`${db} ${mode}: ${run.seconds.toFixed(1)} s (${fmt(events / run.seconds)} events/s), eth_getLogs ${row.logs}, eth_call ${row.calls}, headers ${row.headers}, peak RSS ${row.rss} MB; ${row.check}`)
  }
  if (db === "postgres") {
    psql(`drop schema if exists "${schema}" cascade`)
    psql("drop schema if exists chainstore_cache cascade")
  }
  fs.rmSync(dataDir, { recursive: true, force: true })
}
await anvil.stop()

const label: Record<Mode, string> = { off: "cache off (`CHAINSTORE_CACHE=off`)", cold: "cache on, cold (first run)", warm: "cache on, warm (after `db reset`)" }
const table = rows.map((r) =>
  `| ${r.db === "postgres" ? "Postgres 15" : "PGlite"} | ${label[r.mode]} | ${r.seconds.toFixed(1)} | ${fmt(events / r.seconds)} | ${r.logs} | ${r.calls} | ${r.headers} | ${r.rss} | ${r.check} |`).join("\n")
if (!values["no-docs"]) {
  writeSection("Chain cache", `
What it measures: \`chainstore run bench/peers/indexer.ts\` (the minimal indexer) over one anvil chain of ${fmt(events)}
Transfer events (${perTx} per transaction and block, blocks ${token.block}..${endBlock}, generated in ${generateSeconds.toFixed(0)} s)
with the chain cache off, on and cold (the run also stores what it fetches), and on and warm (the same run again after
\`chainstore db reset --yes\`, as after a handler change). Seconds = wall time from spawning the process to its exit.
Requests = what reached the node through a counting proxy (every run goes through it; a batch's items each count);
headers = eth_getBlockByNumber/ByHash. One run each.

Command: \`npx tsx bench/chain-cache.ts --events ${events}\` — ${machine()}.

| database | run | seconds | events/s | eth_getLogs | eth_call | headers | peak RSS MB | checked |
|---|---|---:|---:|---:|---:|---:|---:|---|
${table}
`)
}
