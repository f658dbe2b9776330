import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Config, Runtime, Source, Storage } from "@chainstore/core"
import { ZERO, account, expectedBalances, makeIndexer } from "./fixtures.js"

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
})
