/** A small ERC20 indexer the core tests run: balances, supply, and an effect per token. */
import { Effect, Schema } from "effect"
import { Entity, ExternalEffect, Indexer, SimChain, Source } from "@chainstore/core"

export const erc20Abi = SimChain.abi

export const Account = Entity.make("Account", { id: Schema.String, balance: Schema.BigInt })
export const Token = Entity.make("Token", { id: Schema.String, supply: Schema.BigInt, transfers: Schema.Number })

export const TOKEN = "0x00000000000000000000000000000000000000aa"
export const ZERO = "0x0000000000000000000000000000000000000000"

/** Counts how often the user's effect function really ran, per input. */
export const makeCounter = () => {
  const runs = new Map<string, number>()
  return {
    runs,
    total: () => [...runs.values()].reduce((a, b) => a + b, 0),
    hit: (key: string) => runs.set(key, (runs.get(key) ?? 0) + 1)
  }
}

export const makeIndexer = (options: {
  readonly source: Source.Source
  readonly endBlock?: number
  readonly reorgWindow?: number
  readonly effectCalls?: ReturnType<typeof makeCounter>
  readonly cache?: boolean
}) => {
  const calls = options.effectCalls ?? makeCounter()
  const tokenInfo = ExternalEffect.make({
    name: "tokenInfo",
    input: Schema.Struct({ address: Schema.String }),
    output: Schema.Struct({ symbol: Schema.String, decimals: Schema.Number }),
    cache: options.cache ?? true,
    run: ({ address }) => Effect.sync(() => {
      calls.hit(address)
      return { symbol: `T${address.slice(-2)}`, decimals: 18 }
    })
  })
  return Indexer.make({
    entities: [Account, Token],
    effects: [tokenInfo],
    chains: [
      {
        id: 1,
        source: options.source,
        startBlock: 1,
        ...(options.endBlock === undefined ? {} : { endBlock: options.endBlock }),
        reorgWindow: options.reorgWindow ?? 0,
        contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }]
      }
    ],
    handlers: {
      ERC20: {
        Transfer: (event, ctx) =>
          Effect.gen(function*() {
            const { from, to, value } = event.params
            yield* ctx.effect(tokenInfo, { address: event.srcAddress })
            if (from !== ZERO) {
              const sender = yield* ctx.Account.get(from)
              yield* ctx.Account.set({ id: from, balance: (sender?.balance ?? 0n) - value })
            }
            const receiver = yield* ctx.Account.get(to)
            yield* ctx.Account.set({ id: to, balance: (receiver?.balance ?? 0n) + value })
            const token = yield* ctx.Token.get(event.srcAddress)
            yield* ctx.Token.set({
              id: event.srcAddress,
              supply: (token?.supply ?? 0n) + (from === ZERO ? value : 0n),
              transfers: (token?.transfers ?? 0) + 1
            })
          })
      }
    }
  })
}

/** `n` accounts' addresses. */
export const account = (i: number): string => `0x${(i + 1).toString(16).padStart(40, "0")}`

/** Blocks 1..blocks, each with `perBlock` transfers: first a mint to every account, then transfers among them. */
export const transferBlocks = (blocks: number, perBlock: number, accounts: number): Array<Source.MemoryBlock> => {
  const out: Array<Source.MemoryBlock> = []
  let k = 0
  for (let b = 1; b <= blocks; b++) {
    const events: Array<Source.MemoryEvent> = []
    for (let i = 0; i < perBlock; i++, k++) {
      const params = k < accounts
        ? { from: ZERO, to: account(k), value: 1_000_000n }
        : { from: account(k % accounts), to: account((k * 7 + 3) % accounts), value: BigInt(k % 13) }
      events.push({ contractName: "ERC20", eventName: "Transfer", params })
    }
    out.push({ number: b, events })
  }
  return out
}

/**
 * The tables `makeIndexer` writes for the canonical simulated chain `params` (chain 1, token TOKEN), computed from
 * its events alone: the oracle reorg tests compare with, never a second run of the same code.
 */
export const simTables = (params: Partial<SimChain.Params>) => {
  const p: SimChain.Params = { ...SimChain.defaults, ...params }
  const chain = SimChain.chain(p, 1, TOKEN)
  const balances = new Map<string, bigint>()
  let supply = 0n
  let transfers = 0
  for (let n = 1; n <= p.blocks; n++) {
    for (const e of chain.events(n, 0)) {
      const { from, to, value } = e.params as { from: string; to: string; value: bigint }
      if (from === ZERO) supply += value
      else balances.set(from, (balances.get(from) ?? 0n) - value)
      balances.set(to, (balances.get(to) ?? 0n) + value)
      transfers++
    }
  }
  const accounts: Array<[string, unknown]> = [...balances].map(([id, balance]) => [id, { id, balance }])
  const tokens: Array<[string, unknown]> = [[TOKEN, { id: TOKEN, supply, transfers }]]
  return { accounts: accounts.sort(), tokens }
}

/** Balances computed directly from the blocks, to compare against what the indexer wrote. */
export const expectedBalances = (blocks: ReadonlyArray<Source.MemoryBlock>): Map<string, bigint> => {
  const balances = new Map<string, bigint>()
  for (const block of blocks) {
    for (const e of block.events) {
      const { from, to, value } = e.params as { from: string; to: string; value: bigint }
      if (from !== ZERO) balances.set(from, (balances.get(from) ?? 0n) - value)
      balances.set(to, (balances.get(to) ?? 0n) + value)
    }
  }
  return balances
}

import { Batch, Config, Event, Runtime, Storage } from "@chainstore/core"
import { Layer } from "effect"

/** Every run service over the in-memory storage, for tests that drive the services directly. */
export const services = (indexer: Indexer.Indexer, config: Partial<Config.Options> = {}) =>
  Runtime.layer(indexer).pipe(Layer.provideMerge(Storage.layerMemory), Layer.provide(Config.layer(config)))

const fakeEvent = (blockNumber: number, logIndex: number): Event.Event => ({
  chainId: 1,
  contractName: "ERC20",
  eventName: "Transfer",
  srcAddress: TOKEN,
  blockNumber,
  blockHash: `0x${blockNumber.toString(16)}`,
  blockTimestamp: blockNumber,
  logIndex,
  transactionHash: "0x01",
  params: {},
  block: { number: blockNumber, hash: `0x${blockNumber.toString(16)}`, timestamp: blockNumber },
  transaction: { hash: "0x01" },
  log: {}
})

/** A batch of one checkpoint per id (at block = id), each with `itemsPer` items. */
export const batchOf = (ids: ReadonlyArray<bigint>, options: { readonly inThreshold?: boolean; readonly itemsPer?: number } = {}): Batch.Batch => {
  const itemsPer = options.itemsPer ?? 1
  const items: Array<Event.Event> = []
  for (const id of ids) for (let i = 0; i < itemsPer; i++) items.push(fakeEvent(Number(id), i))
  const last = ids[ids.length - 1]
  return {
    ...Batch.empty,
    items,
    checkpointIds: ids,
    checkpointChainIds: ids.map(() => 1),
    checkpointBlockNumbers: ids.map(Number),
    checkpointBlockHashes: ids.map((id) => `0x${id.toString(16)}`),
    checkpointEventsProcessed: ids.map(() => itemsPer),
    isInReorgThreshold: options.inThreshold ?? false,
    progress: last === undefined ? [] : [{ chainId: 1, progressBlock: Number(last), sourceBlock: 1000, eventsProcessed: 0, firstEventBlock: 1 }]
  }
}
