import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Config, Entity, Errors, Indexer, Runtime, Source, Storage } from "@chainstore/core"
import { erc20Abi, ZERO } from "./fixtures.js"

const factoryAbi = [
  {
    type: "event",
    name: "TokenCreated",
    anonymous: false,
    inputs: [{ name: "token", type: "address", indexed: true }, { name: "name", type: "string", indexed: false }]
  }
] as const

const FACTORY = "0x00000000000000000000000000000000000000f1"
const CHILD_A = "0x000000000000000000000000000000000000a0a0"
const CHILD_B = "0x000000000000000000000000000000000000b0b0"
const FACTORY_TOKEN = "0x00000000000000000000000000000000000000f2"
const holder = (i: number) => `0x${(0xc000 + i).toString(16).padStart(40, "0")}`

const Balance = Entity.make("Balance", { id: Schema.String, token: Schema.String, amount: Schema.BigInt })
const Child = Entity.make("Child", { id: Schema.String, name: Schema.String, createdAt: Schema.Int })

const indexer = (source: Source.Source, endBlock: number) =>
  Indexer.make({
    entities: [Balance, Child],
    chains: [{
      id: 1,
      source,
      startBlock: 1,
      endBlock,
      reorgWindow: 50,
      contracts: [{ name: "Factory", abi: factoryAbi, address: FACTORY }, { name: "Token", abi: erc20Abi }]
    }],
    handlers: {
      Factory: {
        TokenCreated: (event, ctx) =>
          Effect.andThen(
            ctx.Child.set({ id: event.params.token, name: event.params.name, createdAt: event.blockNumber }),
            ctx.addContract("Token", event.params.token)
          )
      },
      Token: {
        Transfer: (event, ctx) =>
          Effect.gen(function*() {
            const { from, to, value } = event.params
            for (const [who, delta] of [[from, -value], [to, value]] as const) {
              if (who === ZERO) continue
              const id = `${event.srcAddress}-${who}`
              const row = yield* ctx.Balance.get(id)
              yield* ctx.Balance.set({ id, token: event.srcAddress, amount: (row?.amount ?? 0n) + delta })
            }
          })
      }
    }
  })

/** One chain with the factory, its children and another token at FACTORY_TOKEN, over `blocks` up to `endBlock`. */
const withOther = (blocks: ReadonlyArray<Source.MemoryBlock>, endBlock: number) => ({
  id: 1,
  source: Source.memory(blocks).source,
  startBlock: 1,
  endBlock,
  contracts: [
    { name: "Factory", abi: factoryAbi, address: FACTORY },
    { name: "Token", abi: erc20Abi },
    { name: "Other", abi: erc20Abi, address: FACTORY_TOKEN }
  ]
} as const)

const transfer = (token: string, from: string, to: string, value: bigint): Source.MemoryEvent =>
  ({ contractName: "Token", eventName: "Transfer", srcAddress: token, params: { from, to, value } })
const created = (token: string, name: string): Source.MemoryEvent =>
  ({ contractName: "Factory", eventName: "TokenCreated", params: { token, name } })

/** Child A created in block 3 (its mint comes first in the block), child B in block 6; transfers follow. */
const chainBlocks = (withB: boolean): Array<Source.MemoryBlock> =>
  Array.from({ length: 12 }, (_, i) => {
    const n = i + 1
    const events: Array<Source.MemoryEvent> = []
    if (n === 3) events.push(transfer(CHILD_A, ZERO, holder(0), 1000n), created(CHILD_A, "A"), transfer(CHILD_A, holder(0), holder(1), 10n))
    if (n === 6 && withB) events.push(transfer(CHILD_B, ZERO, holder(2), 500n), created(CHILD_B, "B"))
    if (n > 3) events.push(transfer(CHILD_A, holder(n % 2), holder((n + 1) % 2), BigInt(n)))
    if (n > 6 && withB) events.push(transfer(CHILD_B, holder(2), holder(3), BigInt(n)))
    return { number: n, hash: `0x${n.toString(16).padStart(60, "0")}${withB || n < 6 ? "aaaa" : "bbbb"}`, events }
  })

const balances = Effect.gen(function*() {
  const memory = yield* Storage.MemoryStorage
  return [...(yield* memory.rows("Balance"))].sort()
})

/** Balances straight from the blocks (every Token transfer of a created child). */
const expected = (blocks: ReadonlyArray<Source.MemoryBlock>) => {
  const out = new Map<string, bigint>()
  for (const b of blocks) {
    for (const e of b.events) {
      if (e.contractName !== "Token") continue
      const { from, to, value } = e.params as { from: string; to: string; value: bigint }
      if (from !== ZERO) out.set(`${e.srcAddress}-${from}`, (out.get(`${e.srcAddress}-${from}`) ?? 0n) - value)
      out.set(`${e.srcAddress}-${to}`, (out.get(`${e.srcAddress}-${to}`) ?? 0n) + value)
    }
  }
  return [...out].sort()
}

describe("Factory registration", () => {
  it.effect("children's events are indexed from their creation block, in the same run and after a restart", () =>
    Effect.gen(function*() {
      const chain = Source.memory(chainBlocks(true))
      yield* Runtime.run(indexer(chain.source, 8))
      const memory = yield* Storage.MemoryStorage
      const afterFirst = (yield* memory.writes).flatMap((w) => w.batch.registrations.map((r) => [r.address, r.blockNumber]))
      assert.deepStrictEqual(afterFirst, [[CHILD_A, 3], [CHILD_B, 6]])
      // A restart knows both children from storage: their transfers in blocks 9–12 are indexed too.
      yield* Runtime.run(indexer(chain.source, 12))
      const rows = yield* balances
      assert.deepStrictEqual(rows.map(([id, r]) => [id, (r as { amount: bigint }).amount]), expected(chainBlocks(true)))
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 4 }))))

  it.effect("a reorg that removes a creation removes its registration and its events", () =>
    Effect.gen(function*() {
      const chain = Source.memory(chainBlocks(true))
      yield* Runtime.run(indexer(chain.source, 10))
      chain.setBlocks(chainBlocks(false).slice(5))
      yield* Runtime.run(indexer(chain.source, 12))
      const rows = yield* balances
      assert.deepStrictEqual(rows.map(([id, r]) => [id, (r as { amount: bigint }).amount]), expected(chainBlocks(false)))
      const memory = yield* Storage.MemoryStorage
      assert.deepStrictEqual([...(yield* memory.rows("Child")).keys()], [CHILD_A])
      assert.deepStrictEqual((yield* (yield* Storage.Storage).loadAddresses(1)).map((r) => r.address), [CHILD_A])
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 4 }))))

  it.effect("two runs split at a creation block equal one run: the children's events in that block commit with it", () =>
    Effect.gen(function*() {
      const one = yield* Effect.gen(function*() {
        yield* Runtime.run(indexer(Source.memory(chainBlocks(true)).source, 12))
        return yield* balances
      }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)))
      const split = yield* Effect.gen(function*() {
        const chain = Source.memory(chainBlocks(true))
        yield* Runtime.run(indexer(chain.source, 3))
        yield* Runtime.run(indexer(chain.source, 6))
        yield* Runtime.run(indexer(chain.source, 12))
        return yield* balances
      }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)))
      assert.deepStrictEqual(split, one)
      assert.deepStrictEqual(one.map(([id, r]) => [id, (r as { amount: bigint }).amount]), expected(chainBlocks(true)))
    }).pipe(Effect.provide(Config.layer({ batchSize: 4 }))))

  it.effect("a child's events in its creation block are handled in log order with the block's other events", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const blocks = [{ number: 1, events: [] }, {
        number: 2,
        events: [
          transfer(CHILD_A, ZERO, holder(0), 5n), // the child's constructor mint, before its registration
          created(CHILD_A, "A"),
          { ...transfer(FACTORY_TOKEN, ZERO, holder(1), 1n), contractName: "Other" },
          transfer(CHILD_A, holder(0), holder(1), 2n),
          { ...transfer(FACTORY_TOKEN, holder(1), holder(2), 1n), contractName: "Other" }
        ]
      }]
      const tracing = Indexer.make({
        entities: [Balance, Child],
        chains: [withOther(blocks, 2)],
        handlers: {
          Factory: { TokenCreated: (event, ctx) => Effect.sync(() => order.push(`created@${event.logIndex}`)).pipe(Effect.andThen(ctx.addContract("Token", event.params.token))) },
          Token: { Transfer: (event) => Effect.sync(() => order.push(`child@${event.logIndex}`)) },
          Other: { Transfer: (event) => Effect.sync(() => order.push(`other@${event.logIndex}`)) }
        }
      })
      const result = yield* Runtime.run(tracing)
      // The first pass stops at the registration; the block is then handled again, whole and in log order.
      assert.deepStrictEqual(order.slice(order.lastIndexOf("created@1") - 1), ["child@0", "created@1", "other@2", "child@3", "other@4"])
      assert.deepStrictEqual(result.chains.map((c) => c.eventsProcessed), [5])
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))

  it.effect("addContract with a value that is not an address fails the run with a HandlerError naming the event", () =>
    Effect.gen(function*() {
      const bad = Indexer.make({
        entities: [Balance, Child],
        chains: [{
          id: 1,
          source: Source.memory([{ number: 1, events: [created(CHILD_A, "A")] }]).source,
          startBlock: 1,
          endBlock: 1,
          contracts: [{ name: "Factory", abi: factoryAbi, address: FACTORY }, { name: "Token", abi: erc20Abi }]
        }],
        handlers: { Factory: { TokenCreated: (_event, ctx) => ctx.addContract("Token", "0x1234") } }
      })
      const error = yield* Effect.flip(Runtime.run(bad))
      assert.instanceOf(error, Errors.HandlerError)
      assert.include(error.message, "Factory.TokenCreated failed on chain 1, block 1, log index 0")
      assert.include(error.message, `addContract: "0x1234" is not a 0x address of 20 bytes`)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))

  it.effect("a block handled again after a constructor event counts each event once: its first pass's changes are undone", () =>
    Effect.gen(function*() {
      const Counter = Entity.make("Counter", { id: Schema.String, n: Schema.BigInt })
      const count = (ctx: { readonly Counter: { readonly get: (id: string) => Effect.Effect<{ readonly n: bigint } | undefined, unknown>; readonly set: (c: { readonly id: string; readonly n: bigint }) => Effect.Effect<void, unknown> } }) =>
        Effect.flatMap(ctx.Counter.get("all"), (row) => ctx.Counter.set({ id: "all", n: (row?.n ?? 0n) + 1n }))
      const counting = Indexer.make({
        entities: [Counter],
        chains: [withOther([{
          number: 1,
          events: [
            { ...transfer(FACTORY_TOKEN, ZERO, holder(1), 1n), contractName: "Other" },
            transfer(CHILD_A, ZERO, holder(0), 5n), // the child's constructor, before its registration
            created(CHILD_A, "A")
          ]
        }], 1)],
        handlers: {
          Factory: { TokenCreated: (event, ctx) => Effect.andThen(count(ctx), ctx.addContract("Token", event.params.token)) },
          Token: { Transfer: (_event, ctx) => count(ctx) },
          Other: { Transfer: (_event, ctx) => count(ctx) }
        }
      })
      yield* Runtime.run(counting)
      const memory = yield* Storage.MemoryStorage
      assert.deepStrictEqual((yield* memory.rows("Counter")).get("all"), { id: "all", n: 3n })
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))
})
