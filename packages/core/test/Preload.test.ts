import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Config, Entity, ExternalEffect, Indexer, Runtime, Source, Storage } from "@chainstore/core"
import { TOKEN, ZERO, account, erc20Abi, expectedBalances, makeIndexer } from "./fixtures.js"

const mints = { number: 1, events: Array.from({ length: 100 }, (_, i) => ({ contractName: "ERC20", eventName: "Transfer", params: { from: ZERO, to: account(i), value: 100n } })) }
const transfers = { number: 2, events: Array.from({ length: 100 }, (_, i) => ({ contractName: "ERC20", eventName: "Transfer", params: { from: account(i), to: account((i + 1) % 100), value: 1n + BigInt(i) } })) }

describe("Preload", () => {
  it.effect("N handler reads of distinct stored ids become one storage call per table", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const chain = Source.memory([mints, transfers])
      yield* Runtime.run(makeIndexer({ source: chain.source, endBlock: 1 }))
      const before = yield* memory.calls
      // A fresh run (cold memory) over 100 transfers in one batch: each reads two stored accounts and the token.
      yield* Runtime.run(makeIndexer({ source: chain.source, endBlock: 2 }))
      const after = yield* memory.calls
      const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0)
      assert.strictEqual(delta("loadByIds:Account"), 1)
      assert.strictEqual(delta("loadByIds:Token"), 1)
      assert.strictEqual(delta("loadEffectEntries:tokenInfo"), 1)
      const rows = yield* memory.rows("Account")
      const expected = expectedBalances([mints, transfers])
      assert.strictEqual(rows.size, expected.size)
      for (const [id, balance] of expected) assert.strictEqual((rows.get(id) as { balance: bigint }).balance, balance)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 1000 }))))

  it.effect("a handler whose runs after an effect's load find nothing new is not run again after loads for 16 batches; results unchanged", () =>
    Effect.gen(function*() {
      // Every event calls an effect with a new input, then reads a row: on a fresh database every table is complete
      // in memory, so a run after the effect's load records nothing and only the real pass needs to follow.
      const blocks = Array.from({ length: 40 }, (_, b) => ({
        number: b + 1,
        events: Array.from({ length: 10 }, (_, i) => ({ contractName: "ERC20", eventName: "Transfer", params: { from: ZERO, to: account(b * 10 + i), value: 1n } }))
      }))
      const parity = ExternalEffect.make({
        name: "parity",
        input: Schema.Struct({ to: Schema.String }),
        output: Schema.String,
        cache: false,
        run: ({ to }) => Effect.succeed(parseInt(to.slice(-1), 16) % 2 === 0 ? "even" : "odd")
      })
      const Tally = Entity.make("Tally", { id: Schema.String, n: Schema.Int })
      let runs = 0
      const indexer = Indexer.make({
        entities: [Tally],
        effects: [parity],
        chains: [{ id: 1, source: Source.memory(blocks).source, startBlock: 1, endBlock: 40, contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }] }],
        handlers: {
          ERC20: {
            Transfer: (event, ctx) =>
              Effect.gen(function*() {
                runs++
                const kind = yield* ctx.effect(parity, { to: event.params.to })
                const tally = yield* ctx.Tally.get(kind)
                yield* ctx.Tally.set({ id: kind, n: (tally?.n ?? 0) + 1 })
              })
          }
        }
      })
      yield* Runtime.run(indexer)
      const rows = yield* (yield* Storage.MemoryStorage).rows("Tally")
      const expected = { even: 0, odd: 0 }
      for (const b of blocks) for (const e of b.events) expected[parseInt(e.params.to.slice(-1), 16) % 2 === 0 ? "even" : "odd"]++
      assert.deepStrictEqual(Object.fromEntries([...rows].map(([id, row]) => [id, (row as { n: number }).n])), expected)
      // 40 batches of 10: a preload run and the real pass for each event, and a run after the load only in
      // batches 1, 18 and 35 (each ends a pause of 16): 800 + 3 × 10, where every batch rerunning would make 1200.
      assert.strictEqual(runs, 830)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 10 }))))

  it.effect("the real pass reuses the preload's key for an equal fresh effect input; an input object changed in place is keyed by what it holds", () =>
    Effect.gen(function*() {
      const blocks = Array.from({ length: 5 }, (_, b) => ({
        number: b + 1,
        events: Array.from({ length: 10 }, (_, i) => ({ contractName: "ERC20", eventName: "Transfer", params: { from: ZERO, to: account(b * 10 + i), value: 1n } }))
      }))
      const upperOf = (name: string) =>
        ExternalEffect.make({ name, input: Schema.Struct({ to: Schema.String }), output: Schema.String, cache: false, run: ({ to }) => Effect.succeed(to.toUpperCase()) })
      const made = upperOf("upper")
      let keyed = 0
      const upper: typeof made = { ...made, inputKey: (input) => (keyed++, made.inputKey(input)) }
      const upperShared = upperOf("upperShared")
      // One object for every call, changed in place: its key must follow what it holds at each call.
      const shared = { to: "" }
      const Digit = Entity.make("Digit", { id: Schema.String, fresh: Schema.String, shared: Schema.String })
      let runs = 0
      const indexer = Indexer.make({
        entities: [Digit],
        effects: [upper, upperShared],
        chains: [{ id: 1, source: Source.memory(blocks).source, startBlock: 1, endBlock: 5, contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }] }],
        handlers: {
          ERC20: {
            Transfer: (event, ctx) =>
              Effect.gen(function*() {
                runs++
                const fresh = yield* ctx.effect(upper, { to: event.params.to })
                shared.to = `${event.params.to}-${event.blockNumber}`
                const reused = yield* ctx.effect(upperShared, shared)
                yield* ctx.Digit.set({ id: event.params.to, fresh, shared: reused })
              })
          }
        }
      })
      yield* Runtime.run(indexer)
      const rows = yield* (yield* Storage.MemoryStorage).rows("Digit")
      assert.strictEqual(rows.size, 50)
      for (const [id, row] of rows) {
        const block = blocks.find((b) => b.events.some((e) => e.params.to === id))!.number
        assert.deepStrictEqual(row, { id, fresh: id.toUpperCase(), shared: `${id}-${block}`.toUpperCase() })
      }
      // Per event: 3 preload runs (stopped at upper, then at upperShared, then through) and the real pass; every
      // preload run keys upper's input, the real pass never does.
      assert.strictEqual(runs, 50 * 4)
      assert.strictEqual(keyed, 50 * 3)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 10 }))))
})
