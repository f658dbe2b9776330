// Effect failures and rate limits: failing inputs fail only their callers, limits hold under concurrency (on the TestClock).
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Config, Entity, Errors, ExternalEffect, Indexer, Runtime, Source, Storage } from "@chainstore/core"

const abi = [{
  type: "event",
  name: "Ping",
  anonymous: false,
  inputs: [{ name: "n", type: "uint256", indexed: false }]
}] as const

const Result = Entity.make("Result", { id: Schema.String, value: Schema.String })

const blocks = (n: number, perBlock: number): Array<Source.MemoryBlock> =>
  Array.from({ length: n }, (_, b) => ({
    number: b + 1,
    events: Array.from({ length: perBlock }, (_, i) => ({ contractName: "Pinger", eventName: "Ping", params: { n: BigInt(b * perBlock + i) } }))
  }))

const indexerWith = (effect: ExternalEffect.ExternalEffect<"lookup", { readonly n: number }, string, string>, source: Source.Source, endBlock: number) =>
  Indexer.make({
    entities: [Result],
    effects: [effect],
    chains: [{ id: 1, source, startBlock: 1, endBlock, contracts: [{ name: "Pinger", abi, address: "0x00000000000000000000000000000000000000b1" }] }],
    handlers: {
      Pinger: {
        Ping: (event, ctx) =>
          Effect.gen(function*() {
            const n = Number(event.params.n % 20n)
            // The user chooses: a failed lookup is recorded, not fatal.
            const value = yield* ctx.effect(effect, { n }).pipe(
              Effect.catchTag("EffectCallError", (e) => Effect.succeed(`failed: ${e.inputKey}`))
            )
            yield* ctx.Result.set({ id: String(event.params.n), value })
          })
      }
    }
  })

describe("effect failures", () => {
  it.effect("a failing input fails only the calls that depend on it, is never cached, and other outputs are", () =>
    Effect.gen(function*() {
      const runs = new Map<number, number>()
      const lookup = ExternalEffect.make({
        name: "lookup",
        input: Schema.Struct({ n: Schema.Number }),
        output: Schema.String,
        run: ({ n }) => {
          runs.set(n, (runs.get(n) ?? 0) + 1)
          return n % 7 === 3 ? Effect.fail(`node refused ${n}`) : Effect.succeed(`v${n}`)
        }
      })
      yield* Runtime.run(indexerWith(lookup, Source.memory(blocks(10, 10)).source, 10)).pipe(Effect.provide(Config.layer({ batchSize: 20 })))
      const memory = yield* Storage.MemoryStorage
      const results = yield* memory.rows("Result")
      assert.strictEqual(results.size, 100)
      for (const [id, row] of results) {
        const n = Number(id) % 20
        assert.strictEqual((row as { value: string }).value, n % 7 === 3 ? `failed: {"n":${n}}` : `v${n}`)
      }
      const cached = yield* memory.effectRows("lookup")
      assert.deepStrictEqual([...cached.keys()].sort(), Array.from({ length: 20 }, (_, n) => n).filter((n) => n % 7 !== 3).map((n) => `{"n":${n}}`).sort())
      // Successful inputs ran once; failing ones were tried again when asked again.
      assert.strictEqual(runs.size, 20)
      for (const [n, count] of runs) assert.isTrue(n % 7 === 3 ? count > 1 : count === 1, `input ${n} ran ${count} times`)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))

  it.effect("an effect failure the handler does not handle names the effect, input and event", () =>
    Effect.gen(function*() {
      const lookup = ExternalEffect.make({
        name: "lookup",
        input: Schema.Struct({ n: Schema.Number }),
        output: Schema.String,
        run: ({ n }) => (n === 5 ? Effect.fail("gateway timeout") : Effect.succeed("ok"))
      })
      const base = indexerWith(lookup, Source.memory(blocks(2, 10)).source, 2)
      const strict: Indexer.Indexer = {
        ...base,
        handlers: new Map([["Pinger", new Map([["Ping", (event, ctx) =>
          Effect.asVoid(ctx.effect(lookup, { n: Number((event.params as { n: bigint }).n) }))]])]])
      }
      const error = yield* Effect.flip(Runtime.run(strict))
      assert.instanceOf(error, Errors.HandlerError)
      const handler = error as Errors.HandlerError
      assert.strictEqual(handler.blockNumber, 1)
      assert.strictEqual(handler.logIndex, 5)
      assert.match(handler.message, /Effect lookup failed for input \{"n":5\}: .*gateway timeout/)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))
})

describe("effect rate limits", () => {
  it.effect("hold under concurrency: 20 concurrent inputs at 4 per 150 ms run 4 per window, none early", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const lookup = ExternalEffect.make({
        name: "lookup",
        input: Schema.Struct({ n: Schema.Number }),
        output: Schema.String,
        rateLimit: { calls: 4, per: "150 millis" },
        run: ({ n }) => Effect.map(Clock.currentTimeMillis, (now) => {
          calls.push(now)
          return `v${n}`
        })
      })
      // 20 distinct inputs in one batch: the preload resolves them all concurrently.
      const run = yield* Effect.forkChild(Runtime.run(indexerWith(lookup, Source.memory(blocks(1, 20)).source, 1)))
      // The clock stands still until adjusted: lets the run reach its first window (cooperative yields, no sleeps).
      for (let i = 0; i < 10_000 && calls.length < 4; i++) yield* Effect.yieldNow
      for (let window = 1; window <= 5; window++) {
        assert.strictEqual(calls.length, 4 * window, `window ${window}`)
        yield* TestClock.adjust("149 millis")
        assert.strictEqual(calls.length, 4 * window, `window ${window} + 149 ms`)
        yield* TestClock.adjust("1 millis")
      }
      yield* Fiber.join(run)
      assert.deepStrictEqual(calls, [0, 150, 300, 450, 600].flatMap((at) => [at, at, at, at]))
      const results = yield* (yield* Storage.MemoryStorage).rows("Result")
      assert.deepStrictEqual([...results.values()].map((r) => (r as { value: string }).value).sort(), Array.from({ length: 20 }, (_, n) => `v${n}`).sort())
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))
})
