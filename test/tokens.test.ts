// Issue 14's acceptance, against a chain of OpenZeppelin's own ERC20 and ERC721 presets on anvil: examples/tokens through the
// CLI (a wildcard ERC20 indexer with a selected transaction sender and block base fee, and a block handler every 7 blocks
// reading totalSupply through ctx.readContract) equals the chain's getters, across a reorg and a SIGKILL, on PGlite and
// Postgres; topic filters in-process index exactly what a filtered eth_getLogs answers.
import * as path from "node:path"
import { Effect, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Address, encodeFunctionData } from "viem"
import { Config, Entity, Indexer, RpcSource, Runtime, Storage } from "@chainstore/core"
import { erc20PresetMinterPauserAbi } from "../contracts/artifacts.js"
import { type Anvil, head, mine, reorg, startAnvil } from "./support/anvil.js"
import { cli, dropSchema, killAfterCommit, query, type Result, root, start, type Target, targetArgs, tempDir } from "./support/cli.js"
import { type TokenChain, type TransferLog, balancesOf, buildTokenChain, senderOf, totalSupplyAt, transferLogs } from "./support/openzeppelin.js"

type Kind = "pglite" | "postgres"

const example = path.join(root, "examples/tokens")
const cwd = tempDir("cs-tokens-")
const schemas: Array<string> = []
const newTarget = (kind: Kind): Target => {
  if (kind === "pglite") return { _tag: "pglite", dataDir: `${tempDir("cs-tokens-")}/.chainstore` }
  const schema = `cs_tokens_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return { _tag: "postgres", schema }
}

const INTERVAL = 7
const tail = (result: Result) => (result.stdout + result.stderr).slice(-3_000)
const envOf = (anvil: Anvil, chain: TokenChain): Record<string, string> => ({
  RPC_URL: anvil.url,
  CHAIN_ID: String(anvil.chainId),
  START_BLOCK: String(chain.fromBlock)
})

const runTo = async (anvil: Anvil, chain: TokenChain, target: Target, endBlock: number): Promise<void> => {
  const result = await cli(["run", example, "--metrics-port", "0", ...targetArgs(target), "--end-block", String(endBlock)], { cwd, env: envOf(anvil, chain), timeoutMs: 120_000 })
  expect(result.code, `chainstore run --end-block ${endBlock} failed:\n${tail(result)}`).toBe(0)
  expect(result.stdout + result.stderr).toContain(`Done: chain ${anvil.chainId} at block ${endBlock}`)
}

interface Tables {
  readonly balances: ReadonlyMap<string, bigint>
  readonly tokens: ReadonlyMap<string, { readonly firstBlock: number; readonly transfers: number; readonly supplyFromEvents: bigint }>
  readonly transfers: ReadonlyMap<string, {
    readonly token: string
    readonly from: string
    readonly to: string
    readonly value: bigint
    readonly sender: string
    readonly blockNumber: number
    readonly baseFeePerGas: bigint | null
  }>
  readonly snapshots: ReadonlyMap<string, { readonly totalSupply: bigint | null; readonly fromEvents: bigint }>
  /** Rows of the readContract effect's cache table. */
  readonly reads: number
}

const big = (s: string | null) => (s === null ? null : BigInt(s))

const indexedTables = (target: Target): Promise<Tables> =>
  query(target, (sql, schema) =>
    Effect.all({
      balances: sql.unsafe<{ id: string; balance: string }>(`select id, balance::text as balance from "${schema}".balance`),
      tokens: sql.unsafe<{ id: string; first_block: number; transfers: number; supply: string }>(
        `select id, first_block::int as first_block, transfers::int as transfers, supply_from_events::text as supply from "${schema}".token`
      ),
      transfers: sql.unsafe<{ id: string; token: string; from: string; to: string; value: string; sender: string; block_number: number; base_fee: string | null }>(
        `select id, token, "from", "to", value::text as value, sender, block_number::int as block_number, base_fee_per_gas::text as base_fee from "${schema}".transfer`
      ),
      snapshots: sql.unsafe<{ id: string; total_supply: string | null; from_events: string }>(
        `select id, total_supply::text as total_supply, from_events::text as from_events from "${schema}".supply_snapshot`
      ),
      reads: sql.unsafe<{ n: number }>(`select count(*)::int as n from "${schema}".chainstore_effect_read_contract`)
    })).then((t) => ({
      balances: new Map(t.balances.map((r) => [r.id, BigInt(r.balance)])),
      tokens: new Map(t.tokens.map((r) => [r.id, { firstBlock: r.first_block, transfers: r.transfers, supplyFromEvents: BigInt(r.supply) }])),
      transfers: new Map(t.transfers.map((r) => [r.id, {
        token: r.token,
        from: r.from,
        to: r.to,
        value: BigInt(r.value),
        sender: r.sender,
        blockNumber: r.block_number,
        baseFeePerGas: big(r.base_fee)
      }])),
      snapshots: new Map(t.snapshots.map((r) => [r.id, { totalSupply: big(r.total_supply), fromEvents: BigInt(r.from_events) }])),
      reads: t.reads[0]!.n
    }))

/**
 * What the chain itself says the example's tables hold from `chain.fromBlock` to `end`: balanceOf of every holder,
 * the ERC20 Transfer logs (eth_getLogs with no address) with each transaction's receipt sender and its block's base
 * fee, and totalSupply() by eth_call at every 7th block for the tokens whose first transfer came by then.
 */
const expectEqualsChain = async (anvil: Anvil, chain: TokenChain, tables: Tables, end: number) => {
  const logs = (await transferLogs(anvil, { fromBlock: chain.fromBlock, toBlock: end })).filter(
    (log): log is Extract<TransferLog, { standard: "ERC20" }> => log.standard === "ERC20"
  )
  expect(logs.length).toBeGreaterThan(50)

  // Every ERC20 transfer, and nothing of the ERC721 (same event signature, a fourth topic).
  expect(tables.transfers.size).toBe(logs.length)
  const senders = new Map<string, string>()
  const baseFees = new Map<number, bigint | null>()
  for (const log of logs) {
    if (!senders.has(log.transactionHash)) senders.set(log.transactionHash, await senderOf(anvil, log.transactionHash))
    if (!baseFees.has(log.blockNumber)) baseFees.set(log.blockNumber, (await anvil.publicClient.getBlock({ blockNumber: BigInt(log.blockNumber) })).baseFeePerGas)
    expect(tables.transfers.get(`${anvil.chainId}-${log.blockNumber}-${log.logIndex}`), `log ${log.blockNumber}:${log.logIndex}`).toEqual({
      token: log.address,
      from: log.from,
      to: log.to,
      value: log.value,
      sender: senders.get(log.transactionHash),
      blockNumber: log.blockNumber,
      baseFeePerGas: baseFees.get(log.blockNumber)
    })
  }
  // A spender's transferFrom: the transaction's sender is not the Transfer's from.
  expect([...tables.transfers.values()].some((t) => t.sender !== t.from)).toBe(true)

  const erc721 = chain.erc721.address
  expect([...tables.tokens.keys()].sort()).toEqual([...new Set(logs.map((l) => l.address))].sort())
  expect(tables.tokens.has(erc721)).toBe(false)
  for (const token of chain.erc20) {
    const own = logs.filter((l) => l.address === token.address)
    const onChain = await balancesOf(anvil, token.address, chain.holders, end)
    for (const [holder, balance] of onChain) expect(tables.balances.get(`${token.address}-${holder}`) ?? 0n, `${token.symbol} ${holder}`).toBe(balance)
    expect(tables.tokens.get(token.address)).toEqual({
      firstBlock: own[0]!.blockNumber,
      transfers: own.length,
      supplyFromEvents: await totalSupplyAt(anvil, token.address, end)
    })
  }

  let expected = 0
  for (let block = chain.fromBlock; block <= end; block += INTERVAL) {
    for (const token of chain.erc20) {
      const own = logs.filter((l) => l.address === token.address && l.blockNumber <= block)
      if (own.length === 0) continue
      expected++
      const minted = own.reduce((sum, l) => sum + (l.from === zero ? l.value : 0n) - (l.to === zero ? l.value : 0n), 0n)
      expect(tables.snapshots.get(`${token.address}-${block}`), `${token.symbol} at ${block}`).toEqual({
        totalSupply: await totalSupplyAt(anvil, token.address, block),
        fromEvents: minted
      })
    }
  }
  expect(expected).toBeGreaterThan(10)
  expect(tables.snapshots.size).toBe(expected)
  // Each read is cached once; reads of blocks a reorg replaced are gone with them.
  expect(tables.reads).toBe(expected)
}

const zero = "0x0000000000000000000000000000000000000000"

let anvil: Anvil
let chain: TokenChain
beforeAll(async () => {
  anvil = await startAnvil()
  chain = await buildTokenChain(anvil, { seed: 1414, blocks: 70 })
}, 120_000)
afterAll(async () => {
  await anvil?.stop()
  for (const schema of schemas) await dropSchema(schema)
})

describe.each(["pglite", "postgres"] as const)("examples/tokens through the CLI on %s", (kind) => {
  it("indexes to the head, then across a reorg that replaces a handled block's supply, equal to the chain's getters", async () => {
    // Its own chain: the reorg must not change what the other tests compare with.
    const own = await startAnvil()
    try {
      const built = await buildTokenChain(own, { seed: 1414, blocks: 70 })
      const target = newTarget(kind)
      await runTo(own, built, target, built.toBlock)
      await expectEqualsChain(own, built, await indexedTables(target), built.toBlock)

      // Seven blocks replaced (one of them is handled), a mint in the first: every later totalSupply differs.
      const token = built.erc20[0]!.address
      const before = await totalSupplyAt(own, token, built.toBlock)
      await reorg(own, INTERVAL, [[{
        from: own.account.address,
        to: token,
        data: encodeFunctionData({ abi: erc20PresetMinterPauserAbi, functionName: "mint", args: [built.holders[5]!, 777n * 10n ** 18n] }),
        gas: 500_000n
      }, 0]])
      await mine(own, 3)
      expect(await totalSupplyAt(own, token, built.toBlock)).not.toBe(before)
      const end = await head(own)
      await runTo(own, built, target, end)
      await expectEqualsChain(own, built, await indexedTables(target), end)
    } finally {
      await own.stop()
    }
  })

  it("indexing the chain live while it is built, SIGKILLed after a mid-chain commit, then run again: equal to the chain", async () => {
    const own = await startAnvil()
    try {
      const target = newTarget(kind)
      // A fresh anvil deploys Multicall3 in block 1: the run starts there and follows the head as blocks come.
      const env = { RPC_URL: own.url, CHAIN_ID: String(own.chainId), START_BLOCK: "1" }
      const running = start(["run", example, "--metrics-port", "0", ...targetArgs(target)], { cwd, env, timeoutMs: 180_000 })
      const [built] = await Promise.all([
        buildTokenChain(own, { seed: 1415, blocks: 70 }),
        killAfterCommit(running, target, own.chainId, 36, 150_000)
      ])
      expect(built.fromBlock).toBe(1)
      await runTo(own, built, target, built.toBlock)
      await expectEqualsChain(own, built, await indexedTables(target), built.toBlock)
    } finally {
      await own.stop()
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Topic filters, in-process

const Hit = Entity.make("Hit", { id: Schema.String, token: Schema.String, from: Schema.String, to: Schema.String })

describe("topic filters on the OpenZeppelin chain", () => {
  it("index exactly the logs a filtered eth_getLogs answers: OR of filters on a wildcard event, a list per topic, a fixed address taking its own logs first", async () => {
    const [h0, h1, h2] = chain.holders as [Address, Address, Address]
    const fixed = chain.erc20[1]!.address
    // A holder that received this token by a transfer (not only by mints).
    const h3 = (await transferLogs(anvil, { address: fixed, fromBlock: chain.fromBlock, toBlock: chain.toBlock })).find((l) => l.from !== zero)!.to
    const indexer = Indexer.make({
      entities: [Hit],
      chains: [{
        id: anvil.chainId,
        source: RpcSource.source({ url: anvil.url, initialRange: 20, retryBase: "20 millis" }),
        startBlock: chain.fromBlock,
        endBlock: chain.toBlock,
        contracts: [
          { name: "Any", abi: erc20PresetMinterPauserAbi, wildcard: true, events: { Transfer: { where: [{ from: h0 }, { to: [h1, h2] }] } } },
          { name: "One", abi: erc20PresetMinterPauserAbi, address: fixed, events: { Transfer: { where: { to: h3 } } } }
        ]
      }],
      handlers: {
        Any: { Transfer: (event, ctx) => ctx.Hit.set({ id: `any-${event.block.number}-${event.logIndex}`, token: event.srcAddress, from: event.params.from, to: event.params.to }) },
        One: { Transfer: (event, ctx) => ctx.Hit.set({ id: `one-${event.block.number}-${event.logIndex}`, token: event.srcAddress, from: event.params.from, to: event.params.to }) }
      }
    })
    const rows = await Effect.runPromise(Effect.gen(function*() {
      yield* Runtime.run(indexer)
      return yield* (yield* Storage.MemoryStorage).rows("Hit")
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 100 }))))

    const range = { fromBlock: chain.fromBlock, toBlock: chain.toBlock }
    const erc20 = (logs: ReadonlyArray<TransferLog>) => logs.filter((l) => l.standard === "ERC20")
    const keyOf = (prefix: string) => (l: TransferLog) => `${prefix}-${l.blockNumber}-${l.logIndex}`
    const any = new Set([
      ...erc20(await transferLogs(anvil, { ...range, args: { from: h0 } })),
      ...erc20(await transferLogs(anvil, { ...range, args: { to: [h1, h2] } }))
    ].map(keyOf("any")))
    const one = erc20(await transferLogs(anvil, { ...range, address: fixed, args: { to: h3 } })).map(keyOf("one"))
    // A log of an address a contract names is that contract's when it passes its filter: the wildcard does not get it too.
    for (const key of one) any.delete(key.replace("one-", "any-"))
    expect(any.size).toBeGreaterThan(5)
    expect(one.length).toBeGreaterThan(0)
    expect([...rows.keys()].sort()).toEqual([...any, ...one].sort())
    for (const [id, row] of rows) {
      const hit = row as { readonly token: string; readonly from: string; readonly to: string }
      if (id.startsWith("one-")) expect([hit.token, hit.to]).toEqual([fixed, h3])
      else expect(hit.from === h0 || hit.to === h1 || hit.to === h2, id).toBe(true)
    }
  })
})
