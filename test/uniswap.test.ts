// Issue 13's acceptance test: Uniswap V2 core from npm (@uniswap/v2-core 1.0.1), deployed unmodified on anvil and
// indexed by examples/uniswap-v2 through the real `chainstore` command, on PGlite and on Postgres. Pairs are
// registered from PairCreated by ctx.addContract, some with their own logs in their creation block. The tables are
// held to the chain's own getters after one run, after runs split at those creation blocks, and after SIGKILLs
// right after such a block's commit.
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Address } from "viem"
import { type Anvil, startAnvil } from "./support/anvil.js"
import { cli, dropSchema, killAfterCommit, query, type Result, root, start, type Target, targetArgs, tempDir } from "./support/cli.js"
import {
  buildUniswapChain,
  byId,
  checkAbi,
  diffTables,
  factoryAbi,
  type LpBalanceRow,
  pairAbi,
  type PairRow,
  readChain,
  type Tables,
  tokenAbi,
  type UniswapChain
} from "./support/uniswap.js"

type Kind = "pglite" | "postgres"

const indexer = path.join(root, "examples/uniswap-v2")
const cwd = tempDir("cs-uniswap-")
const schemas: Array<string> = []
const newTarget = (kind: Kind): Target => {
  if (kind === "pglite") return { _tag: "pglite", dataDir: `${tempDir("cs-uniswap-")}/.chainstore` }
  const schema = `cs_uniswap_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return { _tag: "postgres", schema }
}

/** A factory on a chain: what the indexer's environment names. */
interface Deployment {
  readonly anvil: Anvil
  readonly factory: Address
  readonly factoryBlock: number
}

const envOf = (d: Deployment): Record<string, string> => ({
  RPC_URL: d.anvil.url,
  CHAIN_ID: String(d.anvil.chainId),
  UNISWAP_FACTORY: d.factory,
  START_BLOCK: String(d.factoryBlock)
})

const runArgs = (target: Target, endBlock?: number) => [
  "run",
  indexer,
  "--metrics-port",
  "0",
  ...targetArgs(target),
  ...(endBlock === undefined ? [] : ["--end-block", String(endBlock)])
]

const tail = (result: Result) => (result.stdout + result.stderr).slice(-3_000)

/** What a run's "Done: chain … at block … (… events)" line reports. */
interface Done {
  readonly block: number
  readonly events: number
}

/** Runs the indexer to `endBlock`; it must exit 0 and say where it stopped. */
const runTo = async (d: Deployment, target: Target, endBlock: number): Promise<Done> => {
  const result = await cli(runArgs(target, endBlock), { cwd, env: envOf(d), timeoutMs: 100_000 })
  expect(result.code, `chainstore run --end-block ${endBlock} failed:\n${tail(result)}`).toBe(0)
  const done = /Done: chain (\d+) at block (\d+) \((\d+) events\)/.exec(result.stdout + result.stderr)
  expect(done, `no "Done:" line in:\n${tail(result)}`).not.toBeNull()
  expect(Number(done![1])).toBe(d.anvil.chainId)
  return { block: Number(done![2]), events: Number(done![3]) }
}

/** The chain's entry in `chainstore db status --json`. */
const statusOf = async (d: Deployment, target: Target): Promise<{ readonly progressBlock: number; readonly eventsProcessed: number }> => {
  const result = await cli(["db", "status", indexer, "--json", ...targetArgs(target)], { cwd, env: envOf(d) })
  expect(result.code, tail(result)).toBe(0)
  const status = JSON.parse(result.stdout) as { readonly chains: ReadonlyArray<{ readonly chainId: number; readonly progressBlock: number; readonly eventsProcessed: number }> }
  const chain = status.chains.find((c) => c.chainId === d.anvil.chainId)
  expect(chain, result.stdout).toBeDefined()
  return { progressBlock: chain!.progressBlock, eventsProcessed: chain!.eventsProcessed }
}

/** The indexer's tables, after its run exited. */
const indexedTables = (target: Target): Promise<Tables> =>
  query(target, (sql, schema) =>
    Effect.all({
      pairs: sql.unsafe<PairRow>(
        `select id, token0, token1, "index"::int as "index", reserve0::text as reserve0, reserve1::text as reserve1,
          total_supply::text as total_supply, created_at_block::int as created_at_block from "${schema}".pair`
      ),
      balances: sql.unsafe<LpBalanceRow>(`select id, pair, holder, balance::text as balance from "${schema}".lp_balance`)
    })).then(({ balances, pairs }) => ({ pairs: byId(pairs), balances: byId(balances) }))

/** Blocks that create pairs and hold those pairs' own logs, in chain order. */
const creationBlocksWithEvents = (chain: UniswapChain): Array<number> => [...new Set(chain.pairs.filter((p) => p.eventsInCreationBlock).map((p) => p.block))]

let anvil: Anvil
let chain: UniswapChain
let shared: Deployment
beforeAll(async () => {
  anvil = await startAnvil()
  chain = await buildUniswapChain(anvil)
  shared = { anvil, factory: chain.factory, factoryBlock: chain.factoryBlock }
}, 120_000)
afterAll(async () => {
  await anvil?.stop()
  for (const schema of schemas) await dropSchema(schema)
})

describe("Uniswap V2 on anvil", () => {
  it("is @uniswap/v2-core as shipped, and the chain's own numbers agree with each other", async () => {
    expect([...checkAbi("UniswapV2Factory", factoryAbi), ...checkAbi("UniswapV2Pair", pairAbi), ...checkAbi("ERC20", tokenAbi)]).toEqual([])
    const view = await readChain(anvil, chain, chain.endBlock)
    expect(view.problems).toEqual([])
    expect(view.pairs.map((p) => p.index).sort((a, b) => a - b)).toEqual(chain.pairs.map((_, i) => i))
    expect(view.pairs.filter((p) => p.total_supply === "0")).toEqual([])
    expect(view.events).toBeGreaterThan(150)
    for (const [i, pair] of chain.pairs.entries()) {
      const row = view.pairs.find((p) => p.id === pair.address.toLowerCase())
      expect(row, `pair #${i} ${pair.address}`).toMatchObject({ index: i, created_at_block: pair.block })
      // In a creation block "with events" the pair's own logs follow PairCreated; otherwise it has none there.
      const [created] = await anvil.publicClient.getContractEvents({ address: chain.factory, abi: factoryAbi, eventName: "PairCreated", fromBlock: BigInt(pair.block), toBlock: BigInt(pair.block) })
      const own = await anvil.publicClient.getLogs({ address: pair.address, fromBlock: BigInt(pair.block), toBlock: BigInt(pair.block) })
      expect(created, `pair #${i}: PairCreated in block ${pair.block}`).toBeDefined()
      if (pair.eventsInCreationBlock) {
        expect(own.length, `pair #${i}: logs in its creation block`).toBeGreaterThanOrEqual(5)
        expect(own.filter((l) => l.logIndex! < created!.logIndex!), `pair #${i}: logs before its PairCreated`).toEqual([])
      } else expect(own).toEqual([])
    }
    expect(creationBlocksWithEvents(chain)).toHaveLength(3)
  })
})

describe.each(["pglite", "postgres"] as const)("examples/uniswap-v2 through the CLI on %s", (kind) => {
  // One run to the end: what the other runs must end with. Shared by the tests of this database, made once.
  let reference: Promise<{ readonly tables: Tables; readonly done: Done; readonly status: { readonly progressBlock: number; readonly eventsProcessed: number } }> | undefined
  const oneRun = () =>
    (reference ??= (async () => {
      const target = newTarget(kind)
      const done = await runTo(shared, target, chain.endBlock)
      return { tables: await indexedTables(target), done, status: await statusOf(shared, target) }
    })())

  /** Runs on `target` to `endBlock`, the chain's end: its tables must be the chain's there, and one run's, with one run's event count. */
  const expectEndsAsOneRun = async (d: Deployment, target: Target, endBlock: number) => {
    const done = await runTo(d, target, endBlock)
    const tables = await indexedTables(target)
    expect(diffTables(tables, await readChain(d.anvil, d, endBlock)), "indexed tables vs the chain after the last run").toEqual([])
    const one = await oneRun()
    expect(tables).toEqual(one.tables)
    expect(done).toEqual(one.done)
    expect(await statusOf(d, target)).toEqual(one.status)
  }

  it("(a) one run to the end equals the chain: reserves, total supplies, LP balances, allPairs order, event count", async () => {
    const expected = await readChain(anvil, chain, chain.endBlock)
    const { done, status, tables } = await oneRun()
    expect(diffTables(tables, expected), "indexed tables vs the chain").toEqual([])
    expect(done).toEqual({ block: chain.endBlock, events: expected.events })
    expect(status).toEqual({ progressBlock: chain.endBlock, eventsProcessed: expected.events })
  }, 120_000)

  it("(b) runs split at each creation block holding the new pairs' logs (--end-block) end equal to one run and to the chain", async () => {
    const target = newTarget(kind)
    for (const block of creationBlocksWithEvents(chain)) {
      const done = await runTo(shared, target, block)
      const expected = await readChain(anvil, chain, block)
      expect(diffTables(await indexedTables(target), expected), `indexed tables vs the chain after a run to creation block ${block}`).toEqual([])
      expect(done, `the run to creation block ${block}`).toEqual({ block, events: expected.events })
    }
    await expectEndsAsOneRun(shared, target, chain.endBlock)
  }, 120_000)

  it("(c) SIGKILLed right after each such creation block's commit, then rerun to the end, it ends equal to one run and to the chain", async () => {
    // The same chain built again on its own anvil, so that the run can be killed while that block is the head.
    const own = await startAnvil()
    try {
      const target = newTarget(kind)
      const killedAt: Array<number> = []
      const rebuilt = await buildUniswapChain(own, {
        afterCreationBlock: async ({ block, factory, factoryBlock }) => {
          // No end block: the run follows the head, which is this block. `start` spawns node itself, so the SIGKILL hits the run.
          const running = start(runArgs(target), { cwd, env: envOf({ anvil: own, factory, factoryBlock }), timeoutMs: 100_000 })
          await killAfterCommit(running, target, own.chainId, block)
          killedAt.push(block)
        }
      })
      expect(rebuilt.pairs, "the chain built again is the same chain").toEqual(chain.pairs)
      expect(killedAt).toEqual(creationBlocksWithEvents(rebuilt))
      await expectEndsAsOneRun({ anvil: own, factory: rebuilt.factory, factoryBlock: rebuilt.factoryBlock }, target, rebuilt.endBlock)
    } finally {
      await own.stop()
    }
  }, 180_000)
})
