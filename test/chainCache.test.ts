// The chain cache (issue #17): a run over blocks an earlier run fetched asks the node for no logs and no calls, however
// it splits its ranges, and ends with the same tables; a reorg inside the window makes it fetch the changed range
// again and end equal to the chain. Real anvil chains of OpenZeppelin tokens, reached through a proxy that counts the
// JSON-RPC calls per method (a batch's items each); in process over ChainCache.layerMemory, and through the CLI
// (examples/tokens) on PGlite and Postgres with PgChainCache.
import * as path from "node:path"
import { Context, Effect, Layer, Schema } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { afterAll, describe, expect, it } from "vitest"
import { type Address, encodeFunctionData } from "viem"
import { ChainCache, Config, Entity, Indexer, RpcSource, Runtime, Storage } from "@chainstore/core"
import { erc20PresetMinterPauserAbi } from "../contracts/artifacts.js"
import { type Anvil, head, mine, reorg, startAnvil } from "./support/anvil.js"
import { cli, dropSchema, query, type Result, root, type Target, targetArgs, tempDir } from "./support/cli.js"
import { balancesOf, buildTokenChain, type TokenChain, totalSupplyAt, transferLogs } from "./support/openzeppelin.js"
import { type Provider, startProvider } from "./support/rpcProvider.js"

const INTERVAL = 7
/** Blocks of the tokens' activity, then empty ones: the run takes several ranges, the last ones inside the reorg window. */
const ACTIVE_BLOCKS = 140
const EMPTY_BLOCKS = 250

interface Chain {
  readonly anvil: Anvil
  readonly tokens: TokenChain
  /** Counts what the runs ask. */
  readonly provider: Provider
}

const started: Array<Chain> = []
const schemas: Array<string> = []
afterAll(async () => {
  for (const c of started) {
    await c.provider.close()
    await c.anvil.stop()
  }
  for (const schema of schemas) await dropSchema(schema)
  // The server's cache is shared: what these chains left there goes too.
  const ids = started.map((c) => c.anvil.chainId).join(", ")
  await query({ _tag: "postgres", schema: "public" }, (sql) =>
    Effect.ignore(sql.unsafe(`delete from chainstore_cache.ranges where chain_id in (${ids})`)))
})

/** Its own chain id: on Postgres the cache is shared by every indexer (and test) of the database. */
const newChain = async (): Promise<Chain> => {
  const anvil = await startAnvil({ chainId: 40_000 + Math.floor(Math.random() * 20_000) })
  const tokens = await buildTokenChain(anvil, { seed: 1717, blocks: ACTIVE_BLOCKS })
  await mine(anvil, EMPTY_BLOCKS)
  const chain = { anvil, tokens, provider: await startProvider(anvil.url) }
  started.push(chain)
  return chain
}

/** The JSON-RPC calls per method `run` made through `provider`. */
const callsOf = async (provider: Provider, run: () => Promise<void>): Promise<Record<string, number>> => {
  const before = new Map(provider.stats.calls)
  await run()
  const out: Record<string, number> = {}
  for (const [method, n] of provider.stats.calls) if (n > (before.get(method) ?? 0)) out[method] = n - (before.get(method) ?? 0)
  return out
}

/** Seven blocks replaced below the head, the first with a mint, then three more: every later totalSupply differs. */
const reorgWithMint = async (c: Chain): Promise<number> => {
  const token = c.tokens.erc20[0]!.address
  await reorg(c.anvil, INTERVAL, [[{
    from: c.anvil.account.address,
    to: token,
    data: encodeFunctionData({ abi: erc20PresetMinterPauserAbi, functionName: "mint", args: [c.tokens.holders[5]!, 777n * 10n ** 18n] }),
    gas: 500_000n
  }, 0]])
  await mine(c.anvil, 3)
  return head(c.anvil)
}

// ---------------------------------------------------------------------------------------------------------------
// In process

const transferAbi = [{
  type: "event",
  name: "Transfer",
  anonymous: false,
  inputs: [
    { indexed: true, name: "from", type: "address" },
    { indexed: true, name: "to", type: "address" },
    { indexed: false, name: "value", type: "uint256" }
  ]
}] as const
const totalSupplyAbi = [{ type: "function", name: "totalSupply", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "uint256" }] }] as const

const Transfer = Entity.make("Transfer", {
  id: Schema.String,
  token: Schema.String,
  from: Schema.String,
  to: Schema.String,
  value: Schema.BigInt,
  sender: Schema.String,
  baseFee: Schema.NullOr(Schema.BigInt)
})
/** totalSupply of a token at a handled block (by its hash) and at the block before (by number). */
const Supply = Entity.make("Supply", { id: Schema.String, atBlock: Schema.NullOr(Schema.BigInt), before: Schema.NullOr(Schema.BigInt) })

const indexerOf = (c: Chain, endBlock: number, initialRange: number) =>
  Indexer.make({
    entities: [Transfer, Supply],
    chains: [{
      id: c.anvil.chainId,
      source: RpcSource.source({ url: c.provider.url, initialRange, retryBase: "20 millis" }),
      startBlock: c.tokens.fromBlock,
      endBlock,
      contracts: [{
        name: "ERC20",
        abi: transferAbi,
        wildcard: true,
        fields: { transaction: ["from"] },
        events: { Transfer: { fields: { block: ["baseFeePerGas"] } } }
      }],
      onBlock: [{ name: "supply", interval: INTERVAL }]
    }],
    handlers: {
      ERC20: {
        Transfer: (event, ctx) =>
          ctx.Transfer.set({
            id: `${event.block.number}-${event.logIndex}`,
            token: event.srcAddress,
            from: event.params.from,
            to: event.params.to,
            value: event.params.value,
            sender: event.transaction.from,
            baseFee: event.block.baseFeePerGas
          })
      }
    },
    blockHandlers: {
      supply: (block, ctx) =>
        Effect.gen(function*() {
          const number = block.block.number
          for (const token of c.tokens.erc20) {
            const read = (at?: number) =>
              ctx.readContract({ address: token.address, abi: totalSupplyAbi, functionName: "totalSupply", ...(at === undefined ? {} : { blockNumber: at }) }).pipe(
                Effect.catchTag("ContractReadError", () => Effect.succeed(null))
              )
            yield* ctx.Supply.set({ id: `${token.address}-${number}`, atBlock: yield* read(), before: yield* read(number - 1) })
          }
        })
    }
  })

interface Rows {
  readonly transfers: ReadonlyMap<string, unknown>
  readonly supplies: ReadonlyMap<string, unknown>
}

/** One run into fresh memory storage, over `cache` when given. */
const runInProcess = (c: Chain, endBlock: number, options: { readonly initialRange: number; readonly batchSize: number; readonly cache?: ChainCache.ChainCache["Service"] }) =>
  Effect.runPromise(Effect.gen(function*() {
    yield* Runtime.run(indexerOf(c, endBlock, options.initialRange))
    const storage = yield* Storage.MemoryStorage
    return { transfers: yield* storage.rows("Transfer"), supplies: yield* storage.rows("Supply") } satisfies Rows
  }).pipe(
    Effect.provide(Layer.fresh(Storage.layerMemory)),
    Effect.provide(Config.layer({ batchSize: options.batchSize })),
    options.cache === undefined ? (e) => e : Effect.provideService(ChainCache.ChainCache, options.cache)
  ))

const memoryCache = (): Promise<ChainCache.ChainCache["Service"]> =>
  Effect.runPromise(Effect.scoped(Effect.map(Layer.build(ChainCache.layerMemory), (context) => Context.get(context, ChainCache.ChainCache))))

/** A counter's value in the Prometheus text for `chain` and `kind`. */
const cacheMetric = (text: string, name: string, chainId: number, kind: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`chain="${chainId}"`) && l.includes(`kind="${kind}"`))
  return line === undefined ? 0 : Number(line.split(" ").at(-1))
}

describe("in process, over ChainCache.layerMemory", () => {
  it("a second run with other ranges asks for no logs and no calls and ends equal; after a reorg only the last range is fetched again", async () => {
    const c = await newChain()
    const end = c.tokens.toBlock + EMPTY_BLOCKS
    const cache = await memoryCache()
    let first: Rows | undefined
    const cold = await callsOf(c.provider, async () => {
      first = await runInProcess(c, end, { initialRange: 100, batchSize: 5_000, cache })
    })
    expect(first!.transfers.size).toBeGreaterThan(200)
    expect(cold.eth_getLogs).toBeGreaterThan(1)
    expect(cold.eth_call).toBeGreaterThan(0)

    // Smaller batches and eth_getLogs ranges: other requests, the same blocks.
    let second: Rows | undefined
    const warm = await callsOf(c.provider, async () => {
      second = await runInProcess(c, end, { initialRange: 7, batchSize: 40, cache })
    })
    expect(warm.eth_getLogs ?? 0).toBe(0)
    expect(warm.eth_call ?? 0).toBe(0)
    expect(warm.eth_getTransactionByHash ?? 0).toBe(0)
    expect(second).toEqual(first)
    const metrics = await Effect.runPromise(PrometheusMetrics.format())
    expect(cacheMetric(metrics, "chainstore_chain_cache_hits", c.anvil.chainId, "logs")).toBeGreaterThan(0)
    expect(cacheMetric(metrics, "chainstore_chain_cache_hits", c.anvil.chainId, "calls")).toBeGreaterThan(0)
    expect(cacheMetric(metrics, "chainstore_chain_cache_misses", c.anvil.chainId, "logs")).toBeGreaterThan(0)

    const after = await reorgWithMint(c)
    let third: Rows | undefined
    const reorged = await callsOf(c.provider, async () => {
      third = await runInProcess(c, after, { initialRange: 100, batchSize: 5_000, cache })
    })
    expect(reorged.eth_getLogs).toBeGreaterThan(0)
    expect(reorged.eth_getLogs).toBeLessThan(cold.eth_getLogs!)
    // The reference: the same run without a cache.
    expect(third).toEqual(await runInProcess(c, after, { initialRange: 100, batchSize: 5_000 }))
    const token = c.tokens.erc20[0]!.address
    const last = Math.floor((after - c.tokens.fromBlock) / INTERVAL) * INTERVAL + c.tokens.fromBlock
    expect(third!.supplies.get(`${token}-${last}`)).toMatchObject({ atBlock: await totalSupplyAt(c.anvil, token, last) })
  }, 180_000)
})

// ---------------------------------------------------------------------------------------------------------------
// Through the CLI

const example = path.join(root, "examples/tokens")
const cwd = tempDir("cs-cache-")
const tail = (result: Result) => (result.stdout + result.stderr).slice(-3_000)

const newTarget = (kind: "pglite" | "postgres"): Target => {
  if (kind === "pglite") return { _tag: "pglite", dataDir: `${tempDir("cs-cache-")}/.chainstore` }
  const schema = `cs_cache_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return { _tag: "postgres", schema }
}

/** The target's database without a schema: the cache commands take only --db or --data-dir. */
const databaseArgs = (target: Target): Array<string> => targetArgs(target).filter((_, i, all) => all[i] !== "--schema" && all[i - 1] !== "--schema")

const runCli = async (c: Chain, target: Target, endBlock: number, extraEnv: Record<string, string> = {}): Promise<Record<string, number>> =>
  callsOf(c.provider, async () => {
    const env = { RPC_URL: c.provider.url, CHAIN_ID: String(c.anvil.chainId), START_BLOCK: String(c.tokens.fromBlock), ...extraEnv }
    const result = await cli(["run", example, "--metrics-port", "0", ...targetArgs(target), "--end-block", String(endBlock)], { cwd, env, timeoutMs: 120_000 })
    expect(result.code, `chainstore run --end-block ${endBlock} failed:\n${tail(result)}`).toBe(0)
    expect(result.stdout + result.stderr).toContain(`Done: chain ${c.anvil.chainId} at block ${endBlock}`)
  })

const resetDb = async (target: Target) => {
  const result = await cli(["db", "reset", example, "--yes", ...targetArgs(target)], { cwd, env: { RPC_URL: "http://127.0.0.1:1" } })
  expect(result.code, tail(result)).toBe(0)
}

interface CacheStatus {
  readonly chainId: number
  readonly ranges: number
  readonly covered: ReadonlyArray<{ readonly fromBlock: number; readonly toBlock: number }>
  readonly logs: number
  readonly calls: number
}

const cacheStatus = async (target: Target, chainId: number): Promise<CacheStatus | undefined> => {
  const result = await cli(["cache", "status", "--json", ...databaseArgs(target)], { cwd })
  expect(result.code, tail(result)).toBe(0)
  return (JSON.parse(result.stdout) as ReadonlyArray<CacheStatus>).find((s) => s.chainId === chainId)
}

const byId = <A extends { readonly id: string }>(rows: ReadonlyArray<A>): Array<A> => [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

/** The example's tables, each sorted by id. */
const tablesOf = (target: Target) =>
  query(target, (sql, schema) =>
    Effect.all({
      balances: Effect.map(sql.unsafe<{ id: string; balance: string }>(`select id, balance::text as balance from "${schema}".balance`), byId),
      tokens: Effect.map(sql.unsafe<{ id: string; first_block: number; transfers: number }>(`select id, first_block::int as first_block, transfers::int as transfers from "${schema}".token`), byId),
      transfers: Effect.map(
        sql.unsafe<{ id: string; sender: string; base_fee: string | null; value: string }>(`select id, sender, base_fee_per_gas::text as base_fee, value::text as value from "${schema}".transfer`),
        byId
      ),
      snapshots: Effect.map(sql.unsafe<{ id: string; total_supply: string | null }>(`select id, total_supply::text as total_supply from "${schema}".supply_snapshot`), byId)
    }))

type Tables = Awaited<ReturnType<typeof tablesOf>>

/** The tables against the chain's own getters at `end`: balanceOf, totalSupply at each snapshot's block, the ERC20 Transfer logs. */
const expectEqualsChain = async (c: Chain, tables: Tables, end: number) => {
  const logs = (await transferLogs(c.anvil, { fromBlock: c.tokens.fromBlock, toBlock: end })).filter((l) => l.standard === "ERC20")
  expect(tables.transfers.map((t) => t.id)).toEqual(byId(logs.map((l) => ({ id: `${c.anvil.chainId}-${l.blockNumber}-${l.logIndex}` }))).map((t) => t.id))
  for (const token of c.tokens.erc20) {
    for (const [holder, balance] of await balancesOf(c.anvil, token.address, c.tokens.holders, end)) {
      expect(BigInt(tables.balances.find((b) => b.id === `${token.address}-${holder}`)?.balance ?? "0"), `${token.symbol} ${holder}`).toBe(balance)
    }
  }
  expect(tables.snapshots.length).toBeGreaterThan(50)
  for (const snapshot of tables.snapshots) {
    const [token, block] = snapshot.id.split("-") as [Address, string]
    expect(snapshot.total_supply, snapshot.id).toBe(String(await totalSupplyAt(c.anvil, token, Number(block))))
  }
}

describe.each(["pglite", "postgres"] as const)("chainstore run with the chain cache on %s", (kind) => {
  it("after db reset a run asks for no logs and no calls and ends equal; a reorg, cache clear or CHAINSTORE_CACHE=off make it fetch again", async () => {
    const c = await newChain()
    const target = newTarget(kind)
    const end = c.tokens.toBlock + EMPTY_BLOCKS

    const cold = await runCli(c, target, end)
    expect(cold.eth_getLogs).toBeGreaterThan(1)
    expect(cold.eth_call).toBeGreaterThan(0)
    const first = await tablesOf(target)
    expect(first.transfers.length).toBeGreaterThan(200)
    await expectEqualsChain(c, first, end)
    const status = await cacheStatus(target, c.anvil.chainId)
    expect(status).toMatchObject({ covered: [{ fromBlock: c.tokens.fromBlock, toBlock: end }] })
    expect(status!.ranges).toBeGreaterThan(1)
    expect(status!.logs).toBeGreaterThan(200)
    expect(status!.calls).toBeGreaterThan(0)
    const shown = await cli(["cache", "status", ...databaseArgs(target)], { cwd })
    expect(shown.stdout).toContain(`Chain ${c.anvil.chainId}: blocks ${c.tokens.fromBlock}-${end} in ${status!.ranges} ranges`)

    await resetDb(target)
    const warm = await runCli(c, target, end)
    expect(warm.eth_getLogs ?? 0).toBe(0)
    expect(warm.eth_call ?? 0).toBe(0)
    expect(await tablesOf(target)).toEqual(first)

    // A reorg inside the window: only the range holding it is fetched again.
    const after = await reorgWithMint(c)
    await resetDb(target)
    const reorged = await runCli(c, target, after)
    expect(reorged.eth_getLogs).toBeGreaterThan(0)
    expect(reorged.eth_getLogs).toBeLessThan(cold.eth_getLogs!)
    const third = await tablesOf(target)
    expect(third.snapshots).not.toEqual(first.snapshots)
    await expectEqualsChain(c, third, after)

    const cleared = await cli(["cache", "clear", "--chain", String(c.anvil.chainId), ...databaseArgs(target)], { cwd })
    expect(cleared.code, tail(cleared)).toBe(0)
    expect(await cacheStatus(target, c.anvil.chainId)).toBeUndefined()
    await resetDb(target)
    const again = await runCli(c, target, after)
    expect(again.eth_getLogs).toBeGreaterThan(reorged.eth_getLogs!)
    expect(again.eth_call).toBeGreaterThan(0)
    expect(await tablesOf(target)).toEqual(third)

    // Turned off, a run fetches everything though the cache holds it all.
    await resetDb(target)
    const off = await runCli(c, target, after, { CHAINSTORE_CACHE: "off" })
    expect(off.eth_getLogs).toBeGreaterThan(1)
    expect(off.eth_call).toBeGreaterThan(0)
    expect(await tablesOf(target)).toEqual(third)
  }, 300_000)
})
