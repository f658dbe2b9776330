/**
 * chainstore against Ponder 0.16.10 and Envio HyperIndex 2.32.12 on a real local chain (anvil on 127.0.0.1):
 * one Token with N real ERC20 transfers (Token.spray, 1000 per transaction and block, to 1000 accounts) plus its mint,
 * then 64 empty blocks (Ponder only backfills blocks outside its 30-block finality window on an unknown chain id).
 * The same chain is read, one run at a time, by:
 *  - chainstore-example: examples/erc20 (also writes a Transfer row per event, a Token row, runs effects),
 *  - chainstore-minimal: bench/peers/indexer.ts (exactly the peers' bookkeeping),
 *  - ponder: bench/ponder, - envio: bench/envio (HyperIndex, Postgres only),
 * each on PGlite (chainstore's embedded, Ponder's default) and on Postgres. Measured per run: wall time from spawning
 * the process to done (chainstore and HyperIndex exit at the end block; Ponder answers GET /ready 200), events/s =
 * Transfer events / seconds, and peak RSS of the process tree (VmRSS of the process and its descendants every 100 ms;
 * the Postgres server is not in the tree). Every run is verified against the chain: every account's balance equals
 * balanceOf, no other rows but the zero address (-supply, for the indexers that book the mint's sender).
 *
 * Usage: npx tsx bench/peers.ts [--events 100000,1000000] [--repeat N] [--indexers a,b] [--dbs pglite,postgres] [--no-docs]
 * One-time setup (see docs/benchmarks.md): `npm install` in bench/ponder, `pnpm install` in bench/envio.
 * Results accumulate in bench/peers/results.json (a run replaces the entries of the events sizes, indexers and
 * databases it ran); docs/benchmarks.md ("Against Ponder and HyperIndex", between its markers) and docs/peers.svg
 * are rewritten from it.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import type { Address } from "viem"
import { tokenAbi } from "../contracts/artifacts.js"
import { type Anvil, balanceOf, deployToken, head, makeTransfers, mine, sprayAccounts, startAnvil } from "../test/support/anvil.js"
import { freePort } from "../test/support/cli.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const benchDir = path.join(root, "bench")
const ponderDir = path.join(benchDir, "ponder")
const envioDir = path.join(benchDir, "envio")
const workDir = path.join(benchDir, "peers", "work")
const logDir = path.join(benchDir, "peers", "logs")
const resultsFile = path.join(benchDir, "peers", "results.json")
const docsFile = path.join(root, "docs", "benchmarks.md")
const svgFile = path.join(root, "docs", "peers.svg")

const indexerNames = ["chainstore-example", "chainstore-minimal", "chainstore-example-r10", "chainstore-minimal-r10", "ponder", "envio"] as const
/** Run unless --indexers names them: the chainstore variants with RpcSource's initialRange set to 10 blocks. */
const defaultIndexers: ReadonlyArray<IndexerName> = ["chainstore-example", "chainstore-minimal", "ponder", "envio"]
/** The "-r10" variants: blocks per eth_getLogs chainstore starts with (RpcSource default: 1000). */
const tunedRange = 10
type IndexerName = (typeof indexerNames)[number]
const dbNames = ["pglite", "postgres"] as const
type DbName = (typeof dbNames)[number]

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "100000" },
    repeat: { type: "string" },
    indexers: { type: "string", default: defaultIndexers.join(",") },
    dbs: { type: "string", default: dbNames.join(",") },
    accounts: { type: "string", default: "1000" },
    "per-tx": { type: "string", default: "1000" },
    port: { type: "string", default: "8545" },
    "pg-url": { type: "string", default: process.env.CHAINSTORE_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test" },
    "no-docs": { type: "boolean", default: false },
    /** Diagnostic: chainstore runs write a V8 CPU profile into bench/peers/logs/prof; nothing is saved to results or docs. */
    "cpu-prof": { type: "boolean", default: false }
  }
})

const positive = (name: string, text: string): number => {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${text}`)
  return n
}
const listOf = <T extends string>(name: string, text: string, allowed: ReadonlyArray<T>): Array<T> =>
  text.split(",").map((s) => {
    if (!(allowed as ReadonlyArray<string>).includes(s)) throw new Error(`--${name}: ${s} is not one of ${allowed.join(", ")}`)
    return s as T
  })

const sizes = values.events.split(",").map((s) => positive("events", s))
const chosenIndexers = listOf("indexers", values.indexers, indexerNames)
const chosenDbs = listOf("dbs", values.dbs, dbNames)
const accounts = positive("accounts", values.accounts)
const perTx = positive("per-tx", values["per-tx"])
const anvilPort = positive("port", values.port)
const pgUrl = values["pg-url"]
const repeatFor = (events: number): number => (values.repeat === undefined ? (events <= 200_000 ? 3 : 1) : positive("repeat", values.repeat))

// ---------------------------------------------------------------------------------------------------------------
// Processes

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Parent pid of every process, from /proc/<pid>/stat. */
const parents = (): Map<number, number> => {
  const map = new Map<number, number>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      map.set(Number(entry), ppid)
    } catch {
      // gone meanwhile
    }
  }
  return map
}

/** The process and its descendants. */
const tree = (pid: number): Array<number> => {
  const children = new Map<number, Array<number>>()
  for (const [child, parent] of parents()) {
    const list = children.get(parent)
    if (list === undefined) children.set(parent, [child])
    else list.push(child)
  }
  const out: Array<number> = []
  const queue = [pid]
  while (queue.length > 0) {
    const p = queue.pop()!
    out.push(p)
    queue.push(...(children.get(p) ?? []))
  }
  return out
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const ticks = 100

/** Sum of VmRSS (bytes) over the process tree; records each member's CPU ticks (utime + stime) so far in `cpu`. */
const sampleTree = (pid: number, cpu: Map<number, number>): number => {
  let kb = 0
  for (const p of tree(pid)) {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p}/status`, "utf8"))
      if (match !== null) kb += Number(match[1])
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      cpu.set(p, Math.max(cpu.get(p) ?? 0, Number(fields[11]) + Number(fields[12])))
    } catch {
      // gone meanwhile
    }
  }
  return kb * 1024
}

/** Busy and total ticks of the whole machine (/proc/stat; iowait counts as idle). */
const machineTicks = (): { busy: number; total: number } => {
  const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const total = v.reduce((a, b) => a + b, 0)
  return { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total }
}

interface Launch {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  readonly env: Record<string, string>
  /** Ponder keeps running after its backfill: done when this answers 200. */
  readonly readyUrl?: string
}

interface Measured {
  readonly seconds: number
  readonly peakRss: number
  /** CPU seconds of the process tree (sampled every 100 ms: a process living less than that is missed). */
  readonly cpuSeconds: number
  /** Average busy cores of the whole machine during the run (the indexer, anvil, Postgres and anything else). */
  readonly machineBusyCores: number
  readonly exitCode: number | null
  readonly ready: boolean
  readonly timedOut: boolean
}

/** Signals the process group of a child we spawned detached (its own group, id = its pid). */
const signalGroup = (child: ChildProcess, signal: NodeJS.Signals) => {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal)
  } catch {
    // already gone
  }
}

const measure = async (launch: Launch, logFile: string, timeoutMs: number): Promise<Measured> => {
  const out = fs.openSync(logFile, "w")
  const started = performance.now()
  const child = spawn(launch.command, [...launch.args], {
    cwd: launch.cwd,
    env: { ...process.env, ...launch.env },
    stdio: ["ignore", out, out],
    detached: true
  })
  fs.closeSync(out)
  let exitCode: number | null | undefined
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exitCode = code ?? (signal === null ? null : -1)
      resolve()
    })
  )
  let peakRss = 0
  const cpu = new Map<number, number>()
  const machineBefore = machineTicks()
  const cores = os.availableParallelism()
  let ready = false
  let timedOut = false
  let finished = 0
  const pid = child.pid!
  while (exitCode === undefined) {
    peakRss = Math.max(peakRss, sampleTree(pid, cpu))
    if (launch.readyUrl !== undefined) {
      try {
        const response = await fetch(launch.readyUrl, { signal: AbortSignal.timeout(1_000) })
        await response.arrayBuffer()
        if (response.status === 200) {
          ready = true
          finished = performance.now()
          break
        }
      } catch {
        // not listening yet
      }
    }
    if (performance.now() - started > timeoutMs) {
      timedOut = true
      break
    }
    await Promise.race([sleep(100), exited])
  }
  if (finished === 0) finished = performance.now()
  const machineAfter = machineTicks()
  if (exitCode === undefined) {
    // Ponder after /ready, or a run over time: SIGINT, then SIGKILL after 30 s.
    signalGroup(child, "SIGINT")
    const timer = setTimeout(() => signalGroup(child, "SIGKILL"), 30_000)
    await exited
    clearTimeout(timer)
  }
  // Whatever the group left behind (a child that outlived its parent) goes too.
  signalGroup(child, "SIGKILL")
  const cpuSeconds = [...cpu.values()].reduce((a, b) => a + b, 0) / ticks
  const machineBusyCores = (cores * (machineAfter.busy - machineBefore.busy)) / Math.max(1, machineAfter.total - machineBefore.total)
  return { seconds: (finished - started) / 1000, peakRss, cpuSeconds, machineBusyCores, exitCode: exitCode ?? null, ready, timedOut }
}

// ---------------------------------------------------------------------------------------------------------------
// Databases

const psql = (sql: string): string =>
  execFileSync("psql", [pgUrl, "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

const dropSchema = (schema: string) => psql(`drop schema if exists "${schema}" cascade`)

interface PGliteLike {
  query<T>(sql: string): Promise<{ rows: Array<T> }>
  close(): Promise<void>
}
type PGliteModule = { PGlite: new(dataDir: string) => PGliteLike }

/** PGlite as the package in `fromDir` resolves it (chainstore's 0.5.14 and Ponder's 0.2.13 keep incompatible data dirs). */
const openPglite = async (fromDir: string, dataDir: string): Promise<PGliteLike> => {
  const entry = execFileSync(process.execPath, ["-e", "process.stdout.write(require.resolve('@electric-sql/pglite'))"], { cwd: fromDir, encoding: "utf8" })
  const module = (await import(pathToFileURL(entry.replace(/index\.cjs$/, "index.js")).href)) as PGliteModule
  return new module.PGlite(dataDir)
}

interface Row {
  readonly balance: bigint
  readonly transferCount: number | undefined
}

type RawRow = { id: string; balance: string; transfer_count: string | number | null }

const toRows = (raw: ReadonlyArray<RawRow>): Map<string, Row> =>
  new Map(raw.map((r) => [r.id.toLowerCase(), { balance: BigInt(r.balance), transferCount: r.transfer_count === null ? undefined : Number(r.transfer_count) }]))

// ---------------------------------------------------------------------------------------------------------------
// The chain

interface Chain {
  readonly anvil: Anvil
  readonly token: Address
  readonly startBlock: number
  readonly endBlock: number
  /** Transfer events in startBlock..endBlock: the transfers and the mint. */
  readonly events: number
  readonly supply: bigint
  readonly deployer: string
  /** balanceOf of every account that holds tokens, lowercase. */
  readonly balances: Map<string, bigint>
  readonly generateSeconds: number
}

const ZERO = "0x0000000000000000000000000000000000000000"

const makeChain = async (transfers: number): Promise<Chain> => {
  const anvil = await startAnvil({ port: anvilPort })
  const started = performance.now()
  const supply = 10n ** 27n
  const deployed = await deployToken(anvil, { name: "Bench", symbol: "BNCH", supply })
  const made = await makeTransfers(anvil, deployed.address, { count: transfers, accounts, perTx })
  if (made.logs !== transfers) throw new Error(`made ${made.logs} transfers, wanted ${transfers}`)
  await mine(anvil, 64)
  const endBlock = await head(anvil)
  const generateSeconds = (performance.now() - started) / 1000
  const balances = new Map<string, bigint>()
  const holders = [anvil.account.address, ...sprayAccounts(accounts)]
  for (let i = 0; i < holders.length; i += 50) {
    const chunk = holders.slice(i, i + 50)
    const got = await Promise.all(chunk.map((a) => balanceOf(anvil, deployed.address, a)))
    chunk.forEach((a, j) => {
      if (got[j]! > 0n) balances.set(a.toLowerCase(), got[j]!)
    })
  }
  const total = [...balances.values()].reduce((a, b) => a + b, 0n)
  const onChainSupply = await anvil.publicClient.readContract({ address: deployed.address, abi: tokenAbi, functionName: "totalSupply" })
  if (total !== supply || onChainSupply !== supply) throw new Error(`balances add up to ${total}, totalSupply ${onChainSupply}, minted ${supply}`)
  return {
    anvil,
    token: deployed.address,
    startBlock: deployed.block,
    endBlock,
    events: transfers + 1,
    supply,
    deployer: anvil.account.address.toLowerCase(),
    balances,
    generateSeconds
  }
}

/** What a run's table must hold: every holder with its balanceOf; the zero address at -supply where the mint's sender is booked. */
const verify = (chain: Chain, rows: Map<string, Row>, booksZero: boolean, countsTransfers: boolean): string => {
  const problems: Array<string> = []
  for (const [account, balance] of chain.balances) {
    const row = rows.get(account)
    if (row === undefined) problems.push(`${account} missing`)
    else if (row.balance !== balance) problems.push(`${account}: ${row.balance} != balanceOf ${balance}`)
  }
  for (const [account, row] of rows) {
    if (chain.balances.has(account)) continue
    if (account === ZERO && booksZero) {
      if (row.balance !== -chain.supply) problems.push(`zero address: ${row.balance} != -supply`)
    } else if (row.balance !== 0n) problems.push(`unexpected ${account} = ${row.balance}`)
  }
  if (booksZero && !rows.has(ZERO)) problems.push("zero address missing")
  const holders = [...rows].filter(([a]) => a !== ZERO)
  const sum = holders.reduce((s, [, r]) => s + r.balance, 0n)
  if (sum !== chain.supply) problems.push(`sum ${sum} != totalSupply ${chain.supply}`)
  let transfersText = ""
  if (countsTransfers) {
    const counted = [...rows.values()].reduce((s, r) => s + (r.transferCount ?? 0), 0)
    if (counted !== 2 * chain.events) problems.push(`sum(transferCount) ${counted} != 2 × ${chain.events}`)
    transfersText = `, sum(transferCount) ${counted}`
  }
  if (problems.length > 0) throw new Error(`verification failed: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ""}`)
  return `${rows.size} rows (${holders.length} holders = balanceOf, sum = totalSupply${booksZero ? ", zero address = -supply" : ""}${transfersText})`
}

// ---------------------------------------------------------------------------------------------------------------
// The indexers

interface Run {
  readonly launch: Launch
  /** Reads the accounts table after the process is gone. */
  readonly rows: () => Promise<Map<string, Row>>
  readonly cleanup: () => void
  readonly booksZero: boolean
  readonly countsTransfers: boolean
}

const chainEnv = (chain: Chain): Record<string, string> => ({
  RPC_URL: chain.anvil.url,
  TOKEN_ADDRESS: chain.token,
  START_BLOCK: String(chain.startBlock),
  END_BLOCK: String(chain.endBlock),
  CHAIN_ID: String(chain.anvil.chainId)
})

const chainstore = (which: "example" | "minimal", db: DbName, chain: Chain, tag: string, initialRange?: number): Run => {
  const indexer = which === "example" ? (initialRange === undefined ? "examples/erc20" : "bench/peers/example.ts") : "bench/peers/indexer.ts"
  const variant = `${which}${initialRange === undefined ? "" : `_r${initialRange}`}`
  const schema = `bench_peers_cs_${variant}_${tag}`
  const dataDir = path.join(workDir, `cs-${variant}-${tag}`)
  const dbArgs = db === "pglite" ? ["--data-dir", dataDir] : ["--db", pgUrl, "--schema", schema]
  const cleanup = () => {
    if (db === "pglite") fs.rmSync(dataDir, { recursive: true, force: true })
    else dropSchema(schema)
  }
  cleanup()
  // Every run starts cold, with the chain cache at its default (on): it fetches everything and stores it.
  if (db === "postgres") dropSchema("chainstore_cache")
  const columns = which === "example" ? "id, balance::text as balance, null as transfer_count" : "id, balance::text as balance, transfer_count"
  return {
    launch: {
      command: process.execPath,
      args: [
        ...(values["cpu-prof"] ? ["--cpu-prof", "--cpu-prof-dir", path.join(logDir, "prof", `${variant}-${tag}`)] : []),
        path.join(root, "packages/cli/bin/chainstore.mjs"),
        "run",
        indexer,
        ...dbArgs,
        "--metrics-port",
        "0"
      ],
      cwd: root,
      env: { ...chainEnv(chain), ...(initialRange === undefined ? {} : { RPC_INITIAL_RANGE: String(initialRange) }) }
    },
    rows: async () => {
      if (db === "postgres") return toRows(pgRows(`select ${columns} from "${schema}".account`))
      const pg = await openPglite(root, path.join(dataDir, "pgdata"))
      try {
        return toRows((await pg.query<RawRow>(`select ${columns} from public.account`)).rows)
      } finally {
        await pg.close()
      }
    },
    cleanup,
    booksZero: which === "minimal",
    countsTransfers: which === "minimal"
  }
}

const pgRows = (sql: string): Array<RawRow> =>
  psql(sql).split("\n").filter((l) => l.length > 0).map((l) => {
    const [id, balance, transferCount] = l.split("\t")
    return { id: id!, balance: balance!, transfer_count: transferCount === undefined || transferCount === "" ? null : transferCount }
  })

const ponder = async (db: DbName, chain: Chain, tag: string): Promise<Run> => {
  const schema = `bench_peers_ponder_${tag}`
  const port = await freePort()
  const pgliteDir = path.join(ponderDir, ".ponder")
  // Ponder keeps fetched RPC data in ponder_sync (Postgres) or .ponder (PGlite): every run starts without it.
  const cleanup = () => {
    if (db === "pglite") fs.rmSync(pgliteDir, { recursive: true, force: true })
    else {
      dropSchema(schema)
      dropSchema("ponder_sync")
    }
  }
  cleanup()
  const columns = "address as id, balance::text as balance, transfer_count"
  return {
    launch: {
      command: process.execPath,
      args: [path.join(ponderDir, "node_modules/ponder/dist/esm/bin/ponder.js"), "start", "--port", String(port), "--schema", schema],
      cwd: ponderDir,
      env: { ...chainEnv(chain), PONDER_TELEMETRY_DISABLED: "true", ...(db === "postgres" ? { DATABASE_URL: pgUrl } : {}) },
      readyUrl: `http://127.0.0.1:${port}/ready`
    },
    rows: async () => {
      if (db === "postgres") return toRows(pgRows(`select ${columns} from "${schema}".account`))
      const pg = await openPglite(ponderDir, path.join(pgliteDir, "pglite"))
      try {
        return toRows((await pg.query<RawRow>(`select ${columns} from "${schema}".account`)).rows)
      } finally {
        await pg.close()
      }
    },
    cleanup,
    booksZero: true,
    countsTransfers: true
  }
}

/** config.yaml from the template; `envio codegen` (not timed: HyperIndex's compile step) only when it changed. */
const envioCodegen = (chain: Chain) => {
  const env = chainEnv(chain)
  const config = fs.readFileSync(path.join(envioDir, "config.template.yaml"), "utf8").replace(/\$\{(\w+)\}/g, (_, name: string) => {
    const value = env[name]
    if (value === undefined) throw new Error(`config.template.yaml: no value for ${name}`)
    return value
  })
  const target = path.join(envioDir, "config.yaml")
  const generated = path.join(envioDir, "generated")
  const stamp = path.join(generated, ".bench-config.yaml")
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === config) return
  fs.writeFileSync(target, config)
  console.log(`envio codegen for ${target} ...`)
  const started = performance.now()
  const log = fs.openSync(path.join(logDir, "envio-codegen.log"), "w")
  try {
    execFileSync(path.join(envioDir, "node_modules/.bin/envio"), ["codegen"], { cwd: envioDir, stdio: ["ignore", log, log], env: { ...process.env, TUI_OFF: "true" } })
  } finally {
    fs.closeSync(log)
  }
  // pnpm 12 skips rescript's build script in generated/ unless allowed there too.
  fs.copyFileSync(path.join(envioDir, "pnpm-workspace.yaml"), path.join(generated, "pnpm-workspace.yaml"))
  fs.writeFileSync(stamp, config)
  console.log(`envio codegen done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

const envio = (chain: Chain, tag: string): Run => {
  const schema = `bench_peers_envio_${tag}`
  const url = new URL(pgUrl)
  const cleanup = () => dropSchema(schema)
  cleanup()
  return {
    launch: {
      command: path.join(envioDir, "node_modules/.bin/envio"),
      args: ["start", "-r"],
      cwd: envioDir,
      env: {
        TUI_OFF: "true",
        ENVIO_HASURA: "false",
        ENVIO_PG_HOST: url.hostname,
        ENVIO_PG_PORT: url.port || "5432",
        ENVIO_PG_USER: decodeURIComponent(url.username) || "postgres",
        ENVIO_PG_PASSWORD: decodeURIComponent(url.password) || "postgres",
        ENVIO_PG_DATABASE: url.pathname.slice(1) || "postgres",
        ENVIO_PG_PUBLIC_SCHEMA: schema
      }
    },
    rows: async () => toRows(pgRows(`select id, balance::text, "transferCount" from "${schema}"."Account"`)),
    cleanup,
    booksZero: true,
    countsTransfers: true
  }
}

const makeRun = async (indexer: IndexerName, db: DbName, chain: Chain, tag: string): Promise<Run> => {
  switch (indexer) {
    case "chainstore-example":
      return chainstore("example", db, chain, tag)
    case "chainstore-minimal":
      return chainstore("minimal", db, chain, tag)
    case "chainstore-example-r10":
      return chainstore("example", db, chain, tag, tunedRange)
    case "chainstore-minimal-r10":
      return chainstore("minimal", db, chain, tag, tunedRange)
    case "ponder":
      return ponder(db, chain, tag)
    case "envio":
      return envio(chain, tag)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Results

interface Result {
  readonly events: number
  readonly indexer: IndexerName
  readonly db: DbName
  readonly repeat: number
  readonly ok: boolean
  readonly seconds: number
  readonly eventsPerSecond: number
  readonly peakRssMb: number
  readonly cpuSeconds?: number
  readonly machineBusyCores?: number
  readonly detail: string
  readonly log: string
  readonly commit: string
  readonly workTreeChanges?: ReadonlyArray<string>
  readonly date: string
}

interface Results {
  machine: { nproc: number; memoryGiB: number; cpu: string; node: string; postgres: string; anvil: string }
  chains: Record<string, { blocks: string; generateSeconds: number; accounts: number; perTx: number }>
  runs: Array<Result>
}

const loadResults = (): Results => {
  const empty: Results = { machine: machine(), chains: {}, runs: [] }
  if (!fs.existsSync(resultsFile)) return empty
  const loaded = JSON.parse(fs.readFileSync(resultsFile, "utf8")) as Results
  return { ...loaded, machine: machine() }
}

const sh = (command: string, args: ReadonlyArray<string>, cwd = root): string => {
  try {
    return execFileSync(command, [...args], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return "?"
  }
}

const machine = (): Results["machine"] => ({
  nproc: os.availableParallelism(),
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  cpu: os.cpus()[0]?.model ?? "?",
  node: process.version,
  postgres: sh("psql", [pgUrl, "-At", "-c", "show server_version"]),
  anvil: sh(path.join(root, "node_modules/.bin/anvil"), ["--version"]).split("\n")[0] ?? "?"
})

const commit = sh("git", ["rev-parse", "--short", "HEAD"])
/** Uncommitted changes under packages/ and examples/ when the script started (the runs use the work tree). */
const workTreeChanges = sh("git", ["status", "--porcelain", "--", "packages", "examples"]).split("\n").filter((l) => l.trim().length > 0).map((l) => l.trim())
const dirty = workTreeChanges.length === 0 ? "" : "+dirty"

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const labels: Record<IndexerName, string> = {
  "chainstore-example": "chainstore (examples/erc20)",
  "chainstore-minimal": "chainstore (minimal, bench/peers/indexer.ts)",
  "chainstore-example-r10": `chainstore (examples/erc20, initialRange ${tunedRange})`,
  "chainstore-minimal-r10": `chainstore (minimal, initialRange ${tunedRange})`,
  ponder: "Ponder 0.16.10",
  envio: "Envio HyperIndex 2.32.12"
}
const shortLabels: Record<IndexerName, string> = {
  "chainstore-example": "chainstore example",
  "chainstore-minimal": "chainstore minimal",
  "chainstore-example-r10": `chainstore example r${tunedRange}`,
  "chainstore-minimal-r10": `chainstore minimal r${tunedRange}`,
  ponder: "Ponder",
  envio: "HyperIndex"
}
const dbLabels: Record<DbName, string> = { pglite: "PGlite", postgres: "Postgres 15" }
const colors: Record<IndexerName, string> = {
  "chainstore-example": "#7aa6d8",
  "chainstore-minimal": "#1f5fa8",
  "chainstore-example-r10": "#9fc3e6",
  "chainstore-minimal-r10": "#3d7fc4",
  ponder: "#e07b39",
  envio: "#5aa05a"
}

interface Cell {
  readonly events: number
  readonly indexer: IndexerName
  readonly db: DbName
  readonly ok: Array<Result>
  readonly failed: Array<Result>
}

const cells = (results: Results): Array<Cell> => {
  const out: Array<Cell> = []
  const eventsSizes = [...new Set(results.runs.map((r) => r.events))].sort((a, b) => a - b)
  for (const events of eventsSizes) {
    for (const db of dbNames) {
      for (const indexer of indexerNames) {
        const runs = results.runs.filter((r) => r.events === events && r.db === db && r.indexer === indexer)
        if (runs.length === 0) continue
        out.push({ events, indexer, db, ok: runs.filter((r) => r.ok), failed: runs.filter((r) => !r.ok) })
      }
    }
  }
  return out
}

const chainstoreNames = ["chainstore-minimal", "chainstore-example", "chainstore-minimal-r10", "chainstore-example-r10"] as const

const fmtInt = (n: number) => Math.round(n).toLocaleString("en-US")
const fmtK = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n))

const render = (results: Results): string => {
  const lines: Array<string> = []
  const m = results.machine
  const commits = [...new Set(results.runs.map((r) => r.commit))].join(", ")
  const dates = results.runs.map((r) => r.date).sort()
  lines.push(
    `Generated by \`bench/peers.ts\` from \`bench/peers/results.json\` (runs ${dates[0]?.slice(0, 16)} – ${dates.at(-1)?.slice(0, 16)} UTC), chainstore commit ${commits}.`,
    `Machine: ${m.nproc} cores (${m.cpu}), ${m.memoryGiB} GiB, Node ${m.node}, PostgreSQL ${m.postgres} on 127.0.0.1, ${m.anvil}; anvil, the indexer and Postgres share the 2 cores.`,
    ""
  )
  for (const [events, c] of Object.entries(results.chains)) {
    lines.push(`- ${fmtK(Number(events))} chain: ${fmtInt(Number(events))} Transfer events (the mint + ${fmtInt(Number(events) - 1)} real transfers, ${c.perTx} per transaction and block, to ${c.accounts} accounts) in blocks ${c.blocks}, generated in ${c.generateSeconds.toFixed(1)} s.`)
  }
  lines.push(
    "",
    "events/s = events / wall seconds from spawning the process to done (exit at the end block; Ponder: first `GET /ready` 200), median [min–max] over the runs. " +
      "Indexer CPU s = user + system CPU seconds of the indexer's process tree (not anvil's, not the Postgres server's). Machine busy cores = average busy cores of the whole 2-core machine during the run (indexer, anvil, Postgres and whatever else ran). " +
      "Peak RSS = the most the process tree held (max over runs; the Postgres server is not counted).",
    "",
    "| indexer | database | events | runs | events/s median [min–max] | wall s median | indexer CPU s median | machine busy cores | peak RSS | chainstore commit |",
    "|---|---|---:|---:|---|---:|---:|---:|---:|---|"
  )
  const all = cells(results)
  for (const c of all) {
    if (c.ok.length === 0) {
      lines.push(`| ${labels[c.indexer]} | ${dbLabels[c.db]} | ${fmtInt(c.events)} | 0/${c.failed.length} | failed: ${c.failed[0]?.detail.replace(/\|/g, "\\|").slice(0, 200)} | – | – | – | – | – |`)
      continue
    }
    const eps = c.ok.map((r) => r.eventsPerSecond)
    const spread = c.ok.length > 1 ? ` [${fmtInt(Math.min(...eps))}–${fmtInt(Math.max(...eps))}]` : ""
    const failedNote = c.failed.length > 0 ? ` (+${c.failed.length} failed)` : ""
    const cpu = c.ok.flatMap((r) => (r.cpuSeconds === undefined ? [] : [r.cpuSeconds]))
    const busy = c.ok.flatMap((r) => (r.machineBusyCores === undefined ? [] : [r.machineBusyCores]))
    lines.push(
      `| ${labels[c.indexer]} | ${dbLabels[c.db]} | ${fmtInt(c.events)} | ${c.ok.length}${failedNote} | **${fmtInt(median(eps))}**${spread} | ${median(c.ok.map((r) => r.seconds)).toFixed(1)} | ${
        cpu.length === 0 ? "–" : median(cpu).toFixed(1)
      } | ${busy.length === 0 ? "–" : median(busy).toFixed(2)} | ${fmtInt(Math.max(...c.ok.map((r) => r.peakRssMb)))} MB | ${
        c.indexer.startsWith("chainstore") ? [...new Set(c.ok.map((r) => r.commit))].join(", ") : "–"
      } |`
    )
  }
  lines.push("", "Ratios (median events/s of chainstore ÷ the best peer's on the same database and chain; > 1 = chainstore faster):", "")
  const eventsSizes = [...new Set(all.map((c) => c.events))]
  for (const events of eventsSizes) {
    const med = (indexer: IndexerName, db: DbName) => {
      const c = all.find((x) => x.events === events && x.indexer === indexer && x.db === db)
      return c === undefined || c.ok.length === 0 ? undefined : median(c.ok.map((r) => r.eventsPerSecond))
    }
    for (const db of dbNames) {
      let best: { name: IndexerName; eps: number } | undefined
      for (const name of ["ponder", "envio"] as const) {
        const eps = med(name, db)
        if (eps !== undefined && (best === undefined || eps > best.eps)) best = { name, eps }
      }
      if (best === undefined) continue
      const parts: Array<string> = []
      for (const cs of chainstoreNames) {
        const eps = med(cs, db)
        if (eps !== undefined) parts.push(`${shortLabels[cs]} ${(eps / best.eps).toFixed(2)}×`)
      }
      if (parts.length > 0) lines.push(`- ${fmtK(events)}, ${dbLabels[db]}: best peer ${shortLabels[best.name]} (${fmtInt(best.eps)} ev/s); ${parts.join(", ")}`)
    }
    const bestOf = (names: ReadonlyArray<IndexerName>) => {
      let best: { name: IndexerName; db: DbName; eps: number } | undefined
      for (const name of names) {
        for (const db of dbNames) {
          const eps = med(name, db)
          if (eps !== undefined && (best === undefined || eps > best.eps)) best = { name, db, eps }
        }
      }
      return best
    }
    const bestCs = bestOf(chainstoreNames)
    const bestPeer = bestOf(["ponder", "envio"])
    if (bestCs !== undefined && bestPeer !== undefined) {
      lines.push(`- ${fmtK(events)}, any database: fastest chainstore (${shortLabels[bestCs.name]}, ${dbLabels[bestCs.db]}, ${fmtInt(bestCs.eps)} ev/s) ÷ fastest peer (${shortLabels[bestPeer.name]}, ${dbLabels[bestPeer.db]}, ${fmtInt(bestPeer.eps)} ev/s) = ${(bestCs.eps / bestPeer.eps).toFixed(2)}×`)
    }
  }
  lines.push("", "![events/s by indexer and database](peers.svg)", "", "Every run verified (rows read from the indexer's table after it stopped):", "")
  for (const c of all) {
    const r = c.ok[0] ?? c.failed[0]
    if (r !== undefined) lines.push(`- ${fmtK(c.events)} ${shortLabels[c.indexer]} / ${dbLabels[c.db]}: ${r.ok ? r.detail : `FAILED: ${r.detail}`}`)
  }
  return lines.join("\n")
}

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** A horizontal bar chart: one group per chain size and database, one bar per indexer (median events/s, min–max whisker). */
const svg = (results: Results): string => {
  const all = cells(results).filter((c) => c.ok.length > 0)
  const groups = [...new Set(all.map((c) => `${c.events}|${c.db}`))]
  const max = Math.max(1, ...all.flatMap((c) => c.ok.map((r) => r.eventsPerSecond)))
  const left = 170, barH = 18, gap = 4, groupGap = 26, width = 820, plotW = width - left - 90
  const rows: Array<string> = []
  let y = 40
  for (const g of groups) {
    const [events, db] = g.split("|") as [string, DbName]
    rows.push(`<text x="10" y="${y}" font-weight="bold">${fmtK(Number(events))} events, ${dbLabels[db]}</text>`)
    y += 8
    for (const c of all.filter((x) => `${x.events}|${x.db}` === g)) {
      const eps = c.ok.map((r) => r.eventsPerSecond)
      const med = median(eps)
      const w = (med / max) * plotW
      rows.push(`<text x="${left - 6}" y="${y + barH - 5}" text-anchor="end">${escapeXml(shortLabels[c.indexer])}</text>`)
      rows.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colors[c.indexer]}"/>`)
      if (eps.length > 1) {
        const x1 = left + (Math.min(...eps) / max) * plotW, x2 = left + (Math.max(...eps) / max) * plotW, ym = y + barH / 2
        rows.push(`<line x1="${x1.toFixed(1)}" y1="${ym}" x2="${x2.toFixed(1)}" y2="${ym}" stroke="#222"/><line x1="${x1.toFixed(1)}" y1="${ym - 4}" x2="${x1.toFixed(1)}" y2="${ym + 4}" stroke="#222"/><line x1="${x2.toFixed(1)}" y1="${ym - 4}" x2="${x2.toFixed(1)}" y2="${ym + 4}" stroke="#222"/>`)
      }
      const labelX = left + Math.max(w, (Math.max(...eps) / max) * plotW) + 6
      rows.push(`<text x="${labelX.toFixed(1)}" y="${y + barH - 5}">${fmtInt(med)}</text>`)
      y += barH + gap
    }
    y += groupGap - gap
  }
  const height = y + 10
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">ERC20 Transfer indexing from a local anvil: events/s (median, whisker = min–max; higher is better)</text>`,
    ...rows,
    "</svg>",
    ""
  ].join("\n")
}

const sectionTitle = "## Against Ponder and HyperIndex"
const begin = "<!-- peers.ts results: begin (generated, do not edit by hand) -->"
const end = "<!-- peers.ts results: end -->"

/** Rewrites only the generated part of this section (re-reading the file first: other sections belong to others). */
const writeDocs = (results: Results) => {
  fs.mkdirSync(path.dirname(docsFile), { recursive: true })
  fs.writeFileSync(svgFile, svg(results))
  const generated = `${begin}\n${render(results)}\n${end}`
  const text = fs.existsSync(docsFile) ? fs.readFileSync(docsFile, "utf8") : "# Benchmarks\n"
  const start = text.indexOf(sectionTitle)
  if (start === -1) {
    fs.writeFileSync(docsFile, `${text.replace(/\n*$/, "\n\n")}${sectionTitle}\n\n${generated}\n`)
    return
  }
  const a = text.indexOf(begin, start), b = text.indexOf(end, start)
  const next = text.slice(start + sectionTitle.length).search(/\n## /)
  const sectionEnd = next === -1 ? text.length : start + sectionTitle.length + next
  if (a === -1 || b === -1 || b > sectionEnd) {
    fs.writeFileSync(docsFile, `${text.slice(0, sectionEnd).replace(/\n*$/, "\n\n")}${generated}\n${text.slice(sectionEnd)}`)
    return
  }
  fs.writeFileSync(docsFile, `${text.slice(0, a)}${generated}${text.slice(b + end.length)}`)
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const main = async () => {
  // Only the peers this run includes need installing.
  const installs = [["ponder", path.join(ponderDir, "node_modules/ponder"), "cd bench/ponder && npm install"], ["envio", path.join(envioDir, "node_modules/envio"), "cd bench/envio && pnpm install"]] as const
  for (const [name, dir, what] of installs) {
    if (chosenIndexers.includes(name) && !fs.existsSync(dir)) throw new Error(`${dir} is missing: run \`${what}\` once first (docs/benchmarks.md)`)
  }
  fs.mkdirSync(workDir, { recursive: true })
  fs.mkdirSync(logDir, { recursive: true })
  const results = loadResults()
  for (const transfersPlusMint of sizes) {
    const transfers = transfersPlusMint - 1 // --events counts Transfer events; the mint is one
    console.log(`\n=== ${fmtInt(transfersPlusMint)} events: generating the chain on 127.0.0.1:${anvilPort} ...`)
    const chain = await makeChain(transfers)
    try {
      console.log(`token ${chain.token}, blocks ${chain.startBlock}..${chain.endBlock}, ${chain.balances.size} holders, generated in ${chain.generateSeconds.toFixed(1)} s`)
      results.chains[String(chain.events)] = { blocks: `${chain.startBlock}..${chain.endBlock}`, generateSeconds: chain.generateSeconds, accounts, perTx }
      results.runs = results.runs.filter((r) => !(r.events === chain.events && chosenIndexers.includes(r.indexer) && chosenDbs.includes(r.db)))
      const specs = chosenIndexers.flatMap((indexer) => chosenDbs.filter((db) => indexer !== "envio" || db === "postgres").map((db) => ({ indexer, db })))
      let codegenError: string | undefined
      if (chosenIndexers.includes("envio")) {
        try {
          envioCodegen(chain)
        } catch (error) {
          codegenError = `envio codegen failed: ${error instanceof Error ? error.message : String(error)}`
        }
      }
      const repeats = repeatFor(chain.events)
      const timeoutMs = Math.max(600_000, chain.events * 3)
      for (let repeat = 1; repeat <= repeats; repeat++) {
        for (const { indexer, db } of specs) {
          const tag = `${db}_${chain.events}_${repeat}`
          const name = `${chain.events}-${indexer}-${db}-${repeat}`
          const logFile = path.join(logDir, `${name}.log`)
          process.stdout.write(`${name}: `)
          let result: Result
          const base = { events: chain.events, indexer, db, repeat, log: path.relative(root, logFile), commit: commit + dirty, workTreeChanges, date: new Date().toISOString() }
          if (indexer === "envio" && codegenError !== undefined) {
            result = { ...base, seconds: 0, eventsPerSecond: 0, peakRssMb: 0, ok: false, detail: codegenError }
            console.log(`FAILED — ${codegenError}`)
            results.runs.push(result)
            continue
          }
          const run = await makeRun(indexer, db, chain, tag)
          try {
            const m = await measure(run.launch, logFile, timeoutMs)
            const failure = m.timedOut
              ? `timed out after ${(timeoutMs / 1000).toFixed(0)} s`
              : run.launch.readyUrl !== undefined && !m.ready
              ? `exited with ${m.exitCode} before /ready`
              : run.launch.readyUrl === undefined && m.exitCode !== 0
              ? `exited with ${m.exitCode}`
              : undefined
            const stats = {
              seconds: m.seconds,
              eventsPerSecond: chain.events / m.seconds,
              peakRssMb: m.peakRss / 2 ** 20,
              cpuSeconds: m.cpuSeconds,
              machineBusyCores: m.machineBusyCores
            }
            if (failure !== undefined) {
              // The last line naming an error, else the last line.
              const logLines = fs.readFileSync(logFile, "utf8").trim().split("\n")
              const tail = ([...logLines].reverse().find((l) => /error|fail/i.test(l)) ?? logLines.at(-1) ?? "").trim().slice(0, 400)
              result = { ...base, ...stats, ok: false, detail: `${failure}: ${tail}` }
            } else {
              try {
                result = { ...base, ...stats, ok: true, detail: verify(chain, await run.rows(), run.booksZero, run.countsTransfers) }
              } catch (error) {
                result = { ...base, ...stats, ok: false, detail: error instanceof Error ? error.message : String(error) }
              }
            }
          } finally {
            try {
              run.cleanup()
            } catch (error) {
              console.error(`cleanup: ${String(error)}`)
            }
          }
          console.log(
            `${result.ok ? "ok" : "FAILED"} ${result.seconds.toFixed(1)} s, ${fmtInt(result.eventsPerSecond)} ev/s, peak RSS ${fmtInt(result.peakRssMb)} MB, ` +
              `CPU ${result.cpuSeconds?.toFixed(1)} s, machine ${result.machineBusyCores?.toFixed(2)} cores busy — ${result.detail}`
          )
          results.runs.push(result)
          if (!values["cpu-prof"]) fs.writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`)
        }
      }
    } finally {
      await chain.anvil.stop()
    }
  }
  fs.rmSync(workDir, { recursive: true, force: true })
  if (!values["no-docs"] && !values["cpu-prof"]) {
    writeDocs(results)
    console.log(`\nwrote ${path.relative(root, docsFile)} (section "${sectionTitle.slice(3)}") and ${path.relative(root, svgFile)}`)
  }
  console.log(`\n${render(results)}`)
}

await main()
