import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Config, EffectCache, ExternalEffect, Indexer, PersistenceCycle, Runtime, Source, Storage, Store } from "@chainstore/core"
import { ZERO, account, batchOf, erc20Abi, makeCounter, makeIndexer, services } from "./fixtures.js"

/** An indexer whose handler calls `effect` with the transfer's receiver as input. */
const receiverIndexer = (
  source: Source.Source,
  effect: ExternalEffect.ExternalEffect<"receiverInfo", { readonly who: string }, unknown, never>,
  endBlock = 6
) =>
  Indexer.make({
    entities: [],
    effects: [effect],
    chains: [{ id: 1, source, startBlock: 1, endBlock, contracts: [{ name: "ERC20", abi: erc20Abi, address: "0x00000000000000000000000000000000000000aa" }] }],
    handlers: {
      ERC20: {
        Transfer: (event, ctx) => Effect.asVoid(ctx.effect(effect, { who: event.params.to }))
      }
    }
  })

/** Nine blocks of transfers to 3 receivers, each receiver twice per block. */
const blocks = Array.from({ length: 9 }, (_, b) => ({
  number: b + 1,
  events: Array.from({ length: 6 }, (_, i) => ({
    contractName: "ERC20",
    eventName: "Transfer",
    params: { from: ZERO, to: account(i % 3), value: 1n }
  }))
}))

const receiverEffect = <O>(calls: ReturnType<typeof makeCounter>, output: ExternalEffect.Codec<O>, make: (who: string) => O, cache = true) =>
  ExternalEffect.make({
    name: "receiverInfo",
    input: Schema.Struct({ who: Schema.String }),
    output,
    cache,
    run: ({ who }) => Effect.sync(() => {
      calls.hit(who)
      return make(who)
    })
  })

describe("EffectCache", () => {
  it.effect("runs the user's function once per distinct input, within a batch and across batches", () =>
    Effect.gen(function*() {
      const calls = makeCounter()
      const effect = receiverEffect(calls, Schema.Struct({ n: Schema.Number }), (who) => ({ n: who.length }))
      yield* Runtime.run(receiverIndexer(Source.memory(blocks).source, effect)).pipe(Effect.provide(Config.layer({ batchSize: 6 })))
      assert.deepStrictEqual([...calls.runs.values()], [1, 1, 1])
      const memory = yield* Storage.MemoryStorage
      assert.strictEqual((yield* memory.effectRows("receiverInfo")).size, 3)
    }).pipe(Effect.provide(Storage.layerMemory)))

  it.effect("resumed with new inputs, a batch reads the stored outputs once per effect, not once more per input it must run", () =>
    Effect.gen(function*() {
      const calls = makeCounter()
      const effect = receiverEffect(calls, Schema.Struct({ n: Schema.Number }), (who) => ({ n: who.length }))
      const memory = yield* Storage.MemoryStorage
      // The first run stores 3 receivers' outputs; the resumed one meets 5 new receivers in one batch.
      yield* Runtime.run(receiverIndexer(Source.memory(blocks).source, effect, 1))
      const more = [...blocks.slice(0, 1), {
        number: 2,
        events: Array.from({ length: 8 }, (_, i) => ({ contractName: "ERC20", eventName: "Transfer", params: { from: ZERO, to: account(i), value: 1n } }))
      }]
      const before = (yield* memory.calls).get("loadEffectEntries:receiverInfo") ?? 0
      yield* Runtime.run(receiverIndexer(Source.memory(more).source, effect, 2))
      assert.strictEqual(((yield* memory.calls).get("loadEffectEntries:receiverInfo") ?? 0) - before, 1)
      assert.strictEqual(calls.total(), 8)
      assert.strictEqual((yield* memory.effectRows("receiverInfo")).size, 8)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 100 }))))

  it.effect("concurrent calls with one input run once", () =>
    Effect.gen(function*() {
      const cache = yield* EffectCache.EffectCache
      const gate = yield* Deferred.make<void>()
      let runs = 0
      const slow = ExternalEffect.make({
        name: "tokenInfo",
        input: Schema.Struct({ address: Schema.String }),
        output: Schema.Struct({ symbol: Schema.String, decimals: Schema.Number }),
        run: () => Effect.andThen(Effect.sync(() => runs++), Effect.as(Deferred.await(gate), { symbol: "X", decimals: 1 }))
      })
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(cache.call(slow, { address: "0xa" }, 1n)))
      // All three are waiting on the one run before it may finish: dedup, not a cache hit after the fact.
      for (let i = 0; i < 10_000 && (yield* cache.stats).get("tokenInfo")?.misses !== 1; i++) yield* Effect.yieldNow
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow
      assert.strictEqual(runs, 1)
      assert.deepStrictEqual(fibers.map((f) => f.pollUnsafe()), [undefined, undefined, undefined])
      yield* Deferred.succeed(gate, undefined)
      const outputs = yield* Effect.forEach(fibers, Fiber.join)
      assert.strictEqual(runs, 1)
      assert.deepStrictEqual(outputs, [{ symbol: "X", decimals: 1 }, { symbol: "X", decimals: 1 }, { symbol: "X", decimals: 1 }])
    }).pipe(Effect.provide(services(makeIndexer({ source: Source.memory([]).source, endBlock: 1 })))))

  it.effect("rate limits hold per effect: each effect's calls are spaced by its own limit, on the TestClock", () => {
    const ran: Array<string> = []
    const limited = <const Name extends string>(name: Name, calls: number) =>
      ExternalEffect.make({
        name,
        input: Schema.Struct({ n: Schema.Number }),
        output: Schema.Number,
        rateLimit: { calls, per: "1 second" },
        run: ({ n }) => Effect.map(Clock.currentTimeMillis, (now) => {
          ran.push(`${name}@${now}`)
          return n
        })
      })
    const fast = limited("fast", 2)
    const slow = limited("slow", 1)
    const indexer = Indexer.make({
      entities: [],
      effects: [fast, slow],
      chains: [{ id: 1, source: Source.memory([]).source, startBlock: 1, endBlock: 1, contracts: [] }],
      handlers: {}
    })
    return Effect.gen(function*() {
      const cache = yield* EffectCache.EffectCache
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5], (n) =>
        Effect.forkChild(Effect.all([cache.call(fast, { n }, 1n), cache.call(slow, { n }, 1n)], { concurrency: 2 })))
      for (let i = 0; i < 10_000 && ran.length < 3; i++) yield* Effect.yieldNow
      yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual([...ran].sort(), ["fast@0", "fast@0", "slow@0"])
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(ran.length, 6)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]])
      const at = (name: string) => ran.filter((r) => r.startsWith(`${name}@`)).map((r) => Number(r.slice(name.length + 1)))
      assert.deepStrictEqual(at("fast"), [0, 0, 1000, 1000, 2000])
      assert.deepStrictEqual(at("slow"), [0, 1000, 2000, 3000, 4000])
    }).pipe(Effect.provide(services(indexer)))
  })

  it.effect("cache: false outputs are never persisted and run again after eviction", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      const cache = yield* EffectCache.EffectCache
      const effect = store.effect("tokenInfo") as ExternalEffect.ExternalEffect<"tokenInfo", { readonly address: string }, unknown, never>
      yield* cache.call(effect, { address: "0xa" }, 1n)
      yield* cache.call(effect, { address: "0xa" }, 1n)
      assert.strictEqual(calls.total(), 1)
      yield* cycle.commitBatch(batchOf([1n]))
      yield* cycle.flush
      assert.strictEqual((yield* memory.effectRows("tokenInfo")).size, 0)
      assert.strictEqual((yield* memory.writes)[0]!.effects.length, 0)
      store.dropCommitted(false)
      yield* cache.call(effect, { address: "0xa" }, 2n)
      assert.strictEqual(calls.total(), 2)
    }).pipe(Effect.provide(services(makeIndexer({ source: Source.memory([]).source, endBlock: 1, cache: false, effectCalls: calls })))))

  it.effect("a stored output that no longer decodes is invalidated and recomputed after a reload", () =>
    Effect.gen(function*() {
      const calls = makeCounter()
      const v1 = receiverEffect(calls, Schema.Struct({ n: Schema.Number }), (who) => ({ n: who.length }))
      yield* Runtime.run(receiverIndexer(Source.memory(blocks).source, v1, 3))
      assert.strictEqual(calls.total(), 3)
      // A restart that sees the same inputs in blocks 4–6: every output comes from the stored rows.
      const resumed = yield* Runtime.run(receiverIndexer(Source.memory(blocks).source, v1, 6))
      assert.strictEqual(resumed.chains[0]!.eventsProcessed, 36)
      assert.strictEqual(calls.total(), 3)
      // The output schema changed: stored rows fail to decode, count as invalidated, and are recomputed.
      const v2 = receiverEffect(calls, Schema.Struct({ label: Schema.String }), (who) => ({ label: who.slice(0, 6) }))
      yield* Runtime.run(receiverIndexer(Source.memory(blocks).source, v2, 9))
      assert.strictEqual(calls.total(), 6)
      const rows = yield* (yield* Storage.MemoryStorage).effectRows("receiverInfo")
      assert.deepStrictEqual([...rows.values()].map((r) => r.output), [{ label: "0x0000" }, { label: "0x0000" }, { label: "0x0000" }])
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))

  it.effect("an output its schema cannot encode fails that call, naming the effect and input; nothing reaches the writer", () =>
    Effect.gen(function*() {
      const counter = makeCounter()
      // The function promises a number and returns a string: TypeScript cannot see it through the cast.
      const effect = receiverEffect(counter, Schema.Number, (who) => who as unknown as number)
      const error = yield* Effect.flip(Runtime.run(receiverIndexer(Source.memory(blocks).source, effect)))
      assert.strictEqual(error._tag, "HandlerError")
      assert.include(error.message, "Effect receiverInfo failed for input")
      assert.include(error.message, account(0))
      assert.deepStrictEqual(yield* (yield* Storage.MemoryStorage).writes, [])
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))
})

const calls = makeCounter()
