// The event model on the in-memory layers: selected fields (typed and given exactly), block handlers (interval,
// order after the block's events, reorgs on the simulated chain), topic filters and wildcard contracts, definition
// errors before anything runs, and one batched run of an effect's inputs by the preload pass.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Result, Schema } from "effect"
import { Config, Entity, Errors, type Event, ExternalEffect, Indexer, Runtime, SimChain, Source, Storage } from "@chainstore/core"
import * as Testing from "@chainstore/core/testing"
import { erc20Abi, makeCounter, TOKEN, ZERO } from "./fixtures.js"

const alice = "0x00000000000000000000000000000000000a11ce"
const bob = "0x0000000000000000000000000000000000000b0b"
const carol = "0x00000000000000000000000000000000000ca201"
const OTHER = "0x00000000000000000000000000000000000000bb"

const Seen = Entity.make("Seen", {
  id: Schema.String,
  token: Schema.String,
  from: Schema.String,
  sender: Schema.String,
  baseFee: Schema.NullOr(Schema.BigInt),
  topics: Schema.Number,
  data: Schema.String
})
const Tick = Entity.make("Tick", { id: Schema.String, block: Schema.Int, hash: Schema.String, gasUsed: Schema.BigInt, transfersBefore: Schema.Int })
const Count = Entity.make("Count", { id: Schema.String, transfers: Schema.Int })

const countTransfer = (ctx: { readonly Count: { readonly get: (id: string) => Effect.Effect<{ readonly transfers: number } | undefined, unknown>; readonly set: (c: { readonly id: string; readonly transfers: number }) => Effect.Effect<void, unknown> } }) =>
  Effect.gen(function*() {
    const count = yield* ctx.Count.get("all")
    yield* ctx.Count.set({ id: "all", transfers: (count?.transfers ?? 0) + 1 })
  })

describe("Field selection", () => {
  const selecting = Indexer.make({
    entities: [Seen, Count],
    chains: [{
      id: 1,
      source: Source.memory([]).source,
      startBlock: 1,
      contracts: [{
        name: "ERC20",
        abi: erc20Abi,
        address: TOKEN,
        fields: { transaction: ["from"] },
        events: { Transfer: { fields: { block: ["baseFeePerGas"], log: ["topics", "data"] } } }
      }]
    }],
    handlers: {
      ERC20: {
        Transfer: (event, ctx) =>
          Effect.gen(function*() {
            // @ts-expect-error: `value` of the transaction is not selected, so it is not there
            const unselected: unknown = event.transaction.value
            if (unselected !== undefined || "gasUsed" in event.block) return yield* Effect.die("an unselected field is there")
            yield* ctx.Seen.set({
              id: `${event.blockNumber}-${event.logIndex}`,
              token: event.srcAddress,
              from: event.params.from,
              sender: event.transaction.from,
              baseFee: event.block.baseFeePerGas,
              topics: event.log.topics.length,
              data: event.log.data
            })
          })
      }
    }
  })

  it.effect("a handler gets the selected block, transaction and log fields, typed, and nothing else", () =>
    Effect.gen(function*() {
      const db = yield* Testing.run(selecting, [
        Testing.event("ERC20", "Transfer", { from: ZERO, to: alice, value: 100n }, { blockNumber: 3, transaction: { from: bob }, block: { baseFeePerGas: 7n } }),
        Testing.event("ERC20", "Transfer", { from: alice, to: bob, value: 1n }, { blockNumber: 4, transaction: { from: alice }, block: { baseFeePerGas: null } })
      ])
      assert.deepStrictEqual(yield* db.get(Seen, "3-0"), {
        id: "3-0",
        token: TOKEN,
        from: ZERO,
        sender: bob,
        baseFee: 7n,
        topics: 3,
        data: `0x${(100n).toString(16).padStart(64, "0")}`
      })
      assert.strictEqual((yield* db.get(Seen, "4-0"))?.baseFee, null)
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("a selected field the chain does not give fails the run naming block, event and field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Testing.run(selecting, [
        Testing.event("ERC20", "Transfer", { from: ZERO, to: alice, value: 1n }, { blockNumber: 3, block: { baseFeePerGas: 7n } })
      ]))
      assert.strictEqual(error._tag, "SourceError")
      assert.include(error.message, "block 3, log 0 (ERC20.Transfer): the event's transaction has no from (selected)")
    }).pipe(Effect.provide(Testing.layer)))
})

describe("Block handlers", () => {
  const ticking = (source: Source.Source, options: { readonly endBlock?: number; readonly reorgWindow?: number } = {}) =>
    Indexer.make({
      entities: [Tick, Count],
      chains: [{
        id: 1,
        source,
        startBlock: 1,
        ...options,
        contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }],
        onBlock: [{ name: "tick", startBlock: 2, endBlock: 40, interval: 3, fields: { block: ["gasUsed"] } }]
      }],
      handlers: { ERC20: { Transfer: (_event, ctx) => countTransfer(ctx) } },
      blockHandlers: {
        tick: (block, ctx) =>
          Effect.gen(function*() {
            const count = yield* ctx.Count.get("all")
            yield* ctx.Tick.set({
              id: String(block.block.number),
              block: block.block.number,
              hash: block.block.hash,
              gasUsed: block.block.gasUsed,
              transfersBefore: count?.transfers ?? 0
            })
          })
      }
    })

  it.effect("run every interval blocks from startBlock to endBlock, after the events of their block", () =>
    Effect.gen(function*() {
      const transfer = (blockNumber: number) => Testing.event("ERC20", "Transfer", { from: ZERO, to: alice, value: 1n }, { blockNumber })
      const blocks = Array.from({ length: 45 }, (_, i) => Testing.block(i + 1, { fields: { gasUsed: BigInt(1000 + i + 1) } }))
      const db = yield* Testing.run(ticking(Source.memory([]).source), [transfer(2), transfer(5), transfer(5), transfer(6), ...blocks])
      const ticks = [...(yield* db.all(Tick))].sort((a, b) => a.block - b.block)
      assert.deepStrictEqual(ticks.map((t) => t.block), [2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38])
      // Block 5's two transfers are counted before its block handler runs.
      assert.deepStrictEqual(ticks.slice(0, 3).map((t) => [t.block, t.transfersBefore, t.gasUsed]), [[2, 1, 1002n], [5, 3, 1005n], [8, 4, 1008n]])
      assert.strictEqual(db.result.chains[0]!.processedBlock, 45)
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("on the simulated chain with reorgs, the ticks are those of the canonical chain", () =>
    Effect.gen(function*() {
      const params = { seed: 4, blocks: 60, eventsPerBlock: 5, accounts: 10, reorgEvery: 10, reorgDepth: 3 }
      const indexer = Indexer.make({
        entities: [Tick, Count],
        chains: [{
          id: 1,
          source: SimChain.source(params),
          startBlock: 1,
          reorgWindow: 20,
          contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }],
          onBlock: [{ name: "tick", interval: 7 }]
        }],
        handlers: { ERC20: { Transfer: (_event, ctx) => countTransfer(ctx) } },
        blockHandlers: {
          tick: (block, ctx) =>
            Effect.gen(function*() {
              const count = yield* ctx.Count.get("all")
              yield* ctx.Tick.set({ id: String(block.block.number), block: block.block.number, hash: block.block.hash, gasUsed: 0n, transfersBefore: count?.transfers ?? 0 })
            })
        }
      })
      const result = yield* Runtime.run(indexer)
      const memory = yield* Storage.MemoryStorage
      const ticks = [...(yield* memory.rows("Tick")).values()] as Array<Entity.Type<typeof Tick>>
      const canonical = SimChain.chain({ ...SimChain.defaults, ...params }, 1, TOKEN)
      const expected = [1, 8, 15, 22, 29, 36, 43, 50, 57].map((n) => ({ id: String(n), block: n, hash: canonical.blockHash(n, 0), gasUsed: 0n, transfersBefore: n * 5 }))
      assert.deepStrictEqual(ticks.sort((a, b) => a.block - b.block), expected)
      // Items processed: 300 events and 9 block handler runs.
      assert.strictEqual(result.chains[0]!.eventsProcessed, 309)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 20 }))))

  it.effect("the simulated chain refuses fields it does not have, naming the block handler", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Runtime.run(ticking(SimChain.source({ blocks: 10 }))))
      assert.strictEqual(error._tag, "SourceError")
      assert.include(error.message, `block handler "tick" selects some`)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({}))))
})

describe("Topic filters and wildcard contracts", () => {
  const Hit = Entity.make("Hit", { id: Schema.String, token: Schema.String })
  const hits = (contract: Indexer.Contract<"ERC20", typeof erc20Abi>) =>
    Indexer.make({
      entities: [Hit],
      chains: [{ id: 1, source: Source.memory([]).source, startBlock: 1, contracts: [contract] }],
      handlers: {
        ERC20: { Transfer: (event: Event.Event, ctx) => ctx.Hit.set({ id: `${event.blockNumber}-${event.logIndex}`, token: event.srcAddress }) }
      }
    })
  const transfers = [
    Testing.event("ERC20", "Transfer", { from: alice, to: bob, value: 1n }, { blockNumber: 1, srcAddress: TOKEN }),
    Testing.event("ERC20", "Transfer", { from: bob, to: carol, value: 2n }, { blockNumber: 1, srcAddress: TOKEN }),
    Testing.event("ERC20", "Transfer", { from: carol, to: alice, value: 3n }, { blockNumber: 2, srcAddress: TOKEN }),
    Testing.event("ERC20", "Transfer", { from: alice, to: carol, value: 4n }, { blockNumber: 2, srcAddress: OTHER }),
    Testing.event("ERC20", "Transfer", { from: bob, to: bob, value: 5n }, { blockNumber: 3, srcAddress: OTHER })
  ]
  const ids = (db: Testing.TestDb) => Effect.map(db.all(Hit), (rows) => rows.map((r) => `${r.id}@${r.token.slice(-2)}`).sort())

  it.effect("a filter on indexed arguments passes exactly the matching logs: values OR'd, objects OR'd", () =>
    Effect.gen(function*() {
      const fromAlice = yield* Testing.run(hits({ name: "ERC20", abi: erc20Abi, address: TOKEN, events: { Transfer: { where: { from: alice } } } }), transfers)
      assert.deepStrictEqual(yield* ids(fromAlice), ["1-0@aa"])
    }).pipe(Effect.provide(Layer.fresh(Testing.layer))))

  it.effect("lists of values and of objects match any of them", () =>
    Effect.gen(function*() {
      const where = [{ from: [alice.toUpperCase().replace("0X", "0x"), carol] }, { to: bob, from: bob }]
      const db = yield* Testing.run(hits({ name: "ERC20", abi: erc20Abi, wildcard: true, events: { Transfer: { where } } }), transfers)
      assert.deepStrictEqual(yield* ids(db), ["1-0@aa", "2-0@aa", "2-1@bb", "3-0@bb"])
    }).pipe(Effect.provide(Layer.fresh(Testing.layer))))

  it.effect("a wildcard contract gets the event from every address", () =>
    Effect.gen(function*() {
      const db = yield* Testing.run(hits({ name: "ERC20", abi: erc20Abi, wildcard: true }), transfers)
      assert.deepStrictEqual(yield* ids(db), ["1-0@aa", "1-1@aa", "2-0@aa", "2-1@bb", "3-0@bb"])
      const bound = yield* Testing.run(hits({ name: "ERC20", abi: erc20Abi, address: OTHER }), transfers).pipe(Effect.provide(Layer.fresh(Testing.layer)))
      assert.deepStrictEqual(yield* ids(bound), ["2-1@bb", "3-0@bb"])
    }).pipe(Effect.provide(Layer.fresh(Testing.layer))))
})

describe("Definition errors, before anything runs", () => {
  const base = { id: 1, source: Source.memory([]).source, startBlock: 5 }
  const check = (chain: Indexer.Chain, blockHandlers: Record<string, Indexer.BlockHandler<ReadonlyArray<Entity.Any>>> = {}) =>
    Effect.flip(Indexer.validate(Indexer.make({
      entities: [],
      chains: [chain],
      handlers: { ERC20: { Transfer: () => Effect.void } },
      blockHandlers
    } as never), "indexer.ts"))
  const erc20 = { name: "ERC20", abi: erc20Abi }

  it.effect("each names the file and field", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Indexer.Chain, string, Record<string, Indexer.BlockHandler<ReadonlyArray<Entity.Any>>>?]> = [
        [{ ...base, contracts: [{ ...erc20, wildcard: true, address: TOKEN }] }, `indexer.ts: chains[0].contracts[0].address: "ERC20" is a wildcard contract: it indexes every address and takes none`],
        [{ ...base, contracts: [{ ...erc20, fields: { block: ["gasUsed", "baseFee" as "gasUsed"] } }] }, `indexer.ts: chains[0].contracts[0].fields: .block: "baseFee" is not a block field (one of: parentHash, nonce, sha3Uncles, logsBloom, transactionsRoot, stateRoot, receiptsRoot, miner, difficulty, extraData, size, gasLimit, gasUsed, baseFeePerGas, mixHash)`],
        [{ ...base, contracts: [{ ...erc20, fields: { transaction: ["hash" as "from"] } }] }, `indexer.ts: chains[0].contracts[0].fields: .transaction: "hash" is always there, do not select it`],
        [{ ...base, contracts: [{ ...erc20, events: { Transfer: { where: { value: 1n } } } }] }, `indexer.ts: chains[0].contracts[0].events.Transfer.where.value: "value" is not indexed: only indexed arguments can be filtered on`],
        [{ ...base, contracts: [{ ...erc20, events: { Transfer: { where: [{ from: alice }, { to: 42 }] } } }] }, `indexer.ts: chains[0].contracts[0].events.Transfer.where[1].to: 42 is not a 0x address of 20 bytes`],
        [{ ...base, contracts: [{ ...erc20, events: { Transfer: { where: { spender: alice } } } }] }, `indexer.ts: chains[0].contracts[0].events.Transfer.where.spender: "spender" is not an argument of Transfer`],
        [{ ...base, contracts: [{ ...erc20, events: { Approval: {} } }] }, `indexer.ts: chains[0].contracts[0].events.Approval: the ABI of "ERC20" has no event "Approval"`],
        [{ ...base, contracts: [erc20], onBlock: [{ name: "tick", interval: 0 }] }, `indexer.ts: chains[0].onBlock[0].interval: must be an integer of at least 1 (got 0)`, { tick: () => Effect.void }],
        [{ ...base, contracts: [erc20], onBlock: [{ name: "tick", startBlock: 2 }] }, `indexer.ts: chains[0].onBlock[0].startBlock: must be an integer not below the chain's startBlock 5`, { tick: () => Effect.void }],
        [{ ...base, contracts: [erc20], onBlock: [{ name: "tick", fields: { transaction: ["from"] } as never }] }, `indexer.ts: chains[0].onBlock[0].fields.transaction: a block handler selects block fields only`, { tick: () => Effect.void }],
        [{ ...base, contracts: [erc20], onBlock: [{ name: "tick" }] }, `indexer.ts: blockHandlers.tick: is missing: chain 1 runs block handler "tick"`],
        [{ ...base, contracts: [erc20] }, `indexer.ts: blockHandlers.tock: no chain's onBlock names a block handler "tock"`, { tock: () => Effect.void }]
      ]
      for (const [chain, message, blockHandlers] of cases) {
        const error = yield* check(chain, blockHandlers)
        assert.strictEqual(`${error.path}: ${error.message}`, message)
      }
    }))

  it.effect("the test kit validates too", () =>
    Effect.gen(function*() {
      const indexer = Indexer.make({
        entities: [],
        chains: [{ ...base, contracts: [{ ...erc20, wildcard: true, address: TOKEN }] }],
        handlers: { ERC20: { Transfer: () => Effect.void } }
      })
      const error = yield* Effect.flip(Testing.run(indexer, []))
      assert.strictEqual(error._tag, "IndexerDefinitionError")
    }).pipe(Effect.provide(Testing.layer)))
})

describe("Batched effect runs", () => {
  it.effect("the preload pass resolves a batch's inputs of an effect with runMany in one call", () =>
    Effect.gen(function*() {
      const batches: Array<number> = []
      const single = makeCounter()
      const square = ExternalEffect.make({
        name: "square",
        input: Schema.Struct({ n: Schema.BigInt }),
        output: Schema.BigInt,
        run: ({ n }) => Effect.sync(() => {
          single.hit(String(n))
          return n * n
        }),
        runMany: (inputs) => Effect.sync(() => {
          batches.push(inputs.length)
          return inputs.map(({ n }) => Result.succeed(n * n))
        })
      })
      const Square = Entity.make("Square", { id: Schema.String, value: Schema.BigInt })
      const indexer = Indexer.make({
        entities: [Square],
        effects: [square],
        chains: [{ id: 1, source: Source.memory([]).source, startBlock: 1, contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }] }],
        handlers: {
          ERC20: {
            Transfer: (event, ctx) =>
              Effect.gen(function*() {
                const value = yield* ctx.effect(square, { n: event.params.value })
                yield* ctx.Square.set({ id: String(event.params.value), value })
              })
          }
        }
      })
      const events = Array.from({ length: 12 }, (_, i) => Testing.event("ERC20", "Transfer", { from: ZERO, to: alice, value: BigInt(i) }, { blockNumber: 1 + (i % 3) }))
      const db = yield* Testing.run(indexer, events, { config: { batchSize: 100 } })
      assert.deepStrictEqual(batches, [12])
      assert.strictEqual(single.total(), 0)
      assert.strictEqual((yield* db.get(Square, "11"))?.value, 121n)
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("ctx.readContract on a source that cannot call contracts fails the handler with a ContractReadError", () =>
    Effect.gen(function*() {
      const indexer = Indexer.make({
        entities: [],
        chains: [{ id: 1, source: Source.memory([]).source, startBlock: 1, contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }] }],
        handlers: {
          ERC20: {
            Transfer: (_event, ctx) =>
              Effect.asVoid(ctx.readContract({ address: TOKEN, abi: totalSupplyAbi, functionName: "totalSupply" }))
          }
        }
      })
      const error = yield* Effect.flip(Testing.run(indexer, [Testing.event("ERC20", "Transfer", { from: ZERO, to: alice, value: 1n }, { blockNumber: 3 })]))
      assert.instanceOf(error, Errors.HandlerError)
      assert.include(error.message, "readContract totalSupply on 0x00000000000000000000000000000000000000aa (chain 1, block 3)")
      assert.include(error.message, "cannot call contracts")
    }).pipe(Effect.provide(Testing.layer)))
})

const totalSupplyAbi = [{ type: "function", name: "totalSupply", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "uint256" }] }] as const
