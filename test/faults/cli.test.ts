// Faults seen from the command line: a handler that dies, malformed indexer modules, hostile schema names,
// and secrets that must never reach any output.
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { cli, dropSchema, freePort, query, root, start, tempDir, waitFor } from "../support/cli.js"
import * as Sim from "../support/sim.js"

const failing = path.join(root, "test/fixtures/failing/indexer.ts")
const cwd = tempDir("cs-faults-")
const schemas: Array<string> = []
afterAll(async () => {
  for (const schema of schemas) await dropSchema(schema)
})
const newSchema = () => {
  const schema = `cs_fault_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return schema
}
const pg = "postgres://postgres@127.0.0.1:5432/test"

describe("a handler that throws", () => {
  it("exits 1 naming chain, block, log index, tx hash and handler; what was committed stays, its batch is not written", async () => {
    const schema = newSchema()
    const args = ["run", failing, "--db", pg, "--schema", schema, "--metrics-port", "0"]
    // The fixture's chain: SimChain.source({ blocks: 40, eventsPerBlock: 10, accounts: 20 }).
    const transfers = Sim.transfers("blocks=40,eventsPerBlock=10,accounts=20")
    const balances = (upTo: number) =>
      Sim.byId([...Sim.balances(transfers.filter((t) => t.block <= upTo))].map(([id, balance]) => ({ id, balance: balance.toString() })))
    const state = () =>
      query({ _tag: "postgres", schema }, (sql, s) =>
        Effect.all({
          progress: Effect.map(sql.unsafe<{ progress_block: number }>(`select progress_block::int as progress_block from "${s}".chainstore_chains`), (rows) => rows.map((r) => r.progress_block)),
          accounts: Effect.map(sql.unsafe<{ id: string; balance: string }>(`select id, balance::text as balance from "${s}".account`), Sim.byId)
        }))
    const first = await cli([...args, "--end-block", "10"], { cwd })
    expect(first.code, first.stderr).toBe(0)
    const result = await cli(args, { cwd, env: { FAIL_AT: "17:4", CHAINSTORE_IN_MEMORY_OBJECTS_TARGET: "100000" } })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/HandlerError: Handler Token\.Transfer failed on chain 1337, block 17, log index 4, tx 0x[0-9a-f]{64}: balance feed is inconsistent/)
    // What is stored is exactly the chain up to the committed block, which is before block 17's batch.
    const stopped = await state()
    expect(stopped.progress[0]).toBeGreaterThanOrEqual(10)
    expect(stopped.progress[0]).toBeLessThan(17)
    expect(stopped.accounts).toEqual(balances(stopped.progress[0]!))
    // Restarting without the fault resumes and finishes.
    const again = await cli(args, { cwd })
    expect(again.code, again.stderr).toBe(0)
    expect(await state()).toEqual({ progress: [40], accounts: balances(40) })
  }, 120_000)
})

describe("indexer modules", () => {
  it("one split over several TypeScript files loads, and no compiled module is left beside it", async () => {
    const dir = fs.mkdtempSync(path.join(root, "test/.tmp-"))
    fs.writeFileSync(path.join(dir, "package.json"), `{ "type": "module" }`)
    fs.writeFileSync(path.join(dir, "entities.ts"), `import { Schema } from "effect"
import { Entity } from "@chainstore/core"
export const Account = Entity.make("Account", { id: Schema.String, transfers: Schema.Int })`)
    fs.writeFileSync(path.join(dir, "indexer.ts"), `import { Effect } from "effect"
import { Indexer, SimChain } from "@chainstore/core"
import { Account } from "./entities.js"
export default Indexer.make({
  entities: [Account],
  chains: [{ id: 1, source: SimChain.source({ blocks: 5, eventsPerBlock: 4, accounts: 3 }), startBlock: 1,
    contracts: [{ name: "Token", abi: SimChain.abi, address: "0x00000000000000000000000000000000000000cc" }] }],
  handlers: { Token: { Transfer: (event, ctx) => Effect.gen(function*() {
    const account = yield* ctx.Account.get(event.params.to)
    yield* ctx.Account.set({ id: event.params.to, transfers: (account?.transfers ?? 0) + 1 })
  }) } }
})`)
    const result = await cli(["run", dir, "--data-dir", path.join(dir, ".chainstore"), "--metrics-port", "0"], { cwd: root })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout + result.stderr).toMatch(/Done: chain 1 at block 5 \(20 events\)/)
    expect(fs.readdirSync(dir).sort()).toEqual([".chainstore", "entities.ts", "indexer.ts", "package.json"])
    fs.rmSync(dir, { recursive: true })
  })
})

describe("malformed indexer modules are refused before anything is written", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["wrong shape", `export default { entities: [] }`, /default export: must be `Indexer\.make/],
    ["an entity that is not one", `import { Indexer, SimChain } from "@chainstore/core"
export default Indexer.make({ entities: ["Account"] as never, chains: [{ id: 1, source: SimChain.source(), startBlock: 1, contracts: [] }], handlers: {} })`, /entities\[0\]: is not an Entity\.make/],
    ["a duplicate entity", `import { Schema } from "effect"
import { Entity, Indexer, SimChain } from "@chainstore/core"
const A = Entity.make("Account", { id: Schema.String })
export default Indexer.make({ entities: [A, A], chains: [{ id: 1, source: SimChain.source(), startBlock: 1, contracts: [] }], handlers: {} })`, /entities\[1\]\.name: duplicate entity name "Account"/],
    ["an invalid identifier", `import { Schema } from "effect"
import { Entity, Indexer, SimChain } from "@chainstore/core"
const A = Entity.make("Acc-ount", { id: Schema.String })
export default Indexer.make({ entities: [A], chains: [{ id: 1, source: SimChain.source(), startBlock: 1, contracts: [] }], handlers: {} })`, /entities\[0\]\.name: "Acc-ount" is not a valid identifier/],
    ["a syntax error", `import { Indexer } from "@chainstore/core"
export default Indexer.make({ entities: [] chains: [] })`, /cannot compile the module: \S*indexer\.ts:2:44: Expected "}" but found "chains"/]
  ]
  for (const [name, source, expected] of cases) {
    it(name, async () => {
      // Inside the repository, so the module resolves @chainstore/core like a user's project does.
      const dir = fs.mkdtempSync(path.join(root, "test/.tmp-"))
      fs.writeFileSync(path.join(dir, "package.json"), `{ "type": "module" }`)
      const file = path.join(dir, "indexer.ts")
      fs.writeFileSync(file, source)
      const dataDir = path.join(dir, ".chainstore")
      const result = await cli(["run", file, "--data-dir", dataDir, "--metrics-port", "0"], { cwd: root })
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(file)
      expect(result.stderr).toMatch(expected)
      expect(fs.existsSync(dataDir)).toBe(false)
      expect(fs.readdirSync(dir).sort()).toEqual(["indexer.ts", "package.json"])
      fs.rmSync(dir, { recursive: true })
    })
  }

  it("a schema name with quotes", async () => {
    const result = await cli(["run", path.join(root, "examples/erc20"), "--sim", "blocks=5", "--db", pg, "--schema", `evil"; drop table x; --`, "--metrics-port", "0"], { cwd })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/schema/i)
    expect(result.stderr).toMatch(/identifier/i)
    const exists = await query({ _tag: "postgres", schema: "public" }, (sql) =>
      sql.unsafe<{ n: string }>(`select count(*)::text as n from information_schema.schemata where schema_name like 'evil%'`))
    expect(exists[0]!.n).toBe("0")
  })
})

describe("secrets", () => {
  it("no database password or RPC key appears in logs, errors or metrics; the metrics server binds 127.0.0.1", async () => {
    const schema = newSchema()
    const port = await freePort()
    const outputs: Array<string> = []
    // Trust auth accepts any password, so this run succeeds while carrying one.
    const running = start(["run", path.join(root, "examples/erc20"), "--sim", "blocks=60,eventsPerBlock=20,blockTimeMs=30", "--db", `postgres://postgres:pa55-word-XYZ@127.0.0.1:5432/test`, "--schema", schema, "--metrics-port", String(port)], { cwd })
    const metrics = await waitFor(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()), (t) => t.includes("chainstore_events_processed"))
    outputs.push(metrics)
    const listening = fs.readFileSync("/proc/net/tcp", "utf8").split("\n").filter((l) => l.includes(`:${port.toString(16).toUpperCase().padStart(4, "0")} `) && l.includes(" 0A "))
    expect(listening.length).toBeGreaterThan(0)
    for (const line of listening) expect(line.trim().split(/\s+/)[1]!.startsWith("0100007F")).toBe(true)
    const done = await running.done
    expect(done.code, done.stderr).toBe(0)
    outputs.push(done.stdout, done.stderr)

    // An RPC endpoint that keeps failing, with a key in its path and query.
    const rpcPort = await freePort()
    const failingRpc = http.createServer((_, res) => res.writeHead(500).end("upstream down")).listen(rpcPort, "127.0.0.1")
    try {
      const rpc = await cli(["run", path.join(root, "examples/erc20"), "--data-dir", path.join(tempDir("cs-sec-"), ".chainstore"), "--metrics-port", "0"], {
        cwd,
        env: { RPC_URL: `http://127.0.0.1:${rpcPort}/v3/KEY-abcdef123456?apikey=KEY-abcdef123456`, TOKEN_ADDRESS: "0x00000000000000000000000000000000000000aa", CHAIN_ID: "31337" },
        timeoutMs: 120_000
      })
      expect(rpc.code).toBe(1)
      expect(rpc.stderr).toMatch(/RPC http:\/\/127\.0\.0\.1:\d+: eth_blockNumber failed after \d+ attempts: HTTP 500/)
      outputs.push(rpc.stdout, rpc.stderr)
    } finally {
      failingRpc.close()
    }
    for (const output of outputs) {
      expect(output).not.toContain("pa55-word-XYZ")
      expect(output).not.toContain("KEY-abcdef123456")
    }
  }, 180_000)
})
