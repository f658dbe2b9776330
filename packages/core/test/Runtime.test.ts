import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Config, Runtime, Source, Storage } from "@chainstore/core"
import { Account, Token, TOKEN, expectedBalances, makeCounter, makeIndexer, transferBlocks } from "./fixtures.js"

describe("Runtime", () => {
  it.effect("indexes every block to the end and writes balances equal to a direct computation", () =>
    Effect.gen(function*() {
      const blocks = transferBlocks(50, 40, 30)
      const chain = Source.memory(blocks)
      const calls = makeCounter()
      const result = yield* Runtime.run(makeIndexer({ source: chain.source, endBlock: 50, effectCalls: calls }))
      assert.strictEqual(result.reason, "ended")
      assert.strictEqual(result.chains[0]!.processedBlock, 50)
      const memory = yield* Storage.MemoryStorage
      const rows = yield* memory.rows("Account")
      const expected = expectedBalances(blocks)
      assert.strictEqual(rows.size, expected.size)
      for (const [id, balance] of expected) assert.strictEqual((rows.get(id) as { balance: bigint }).balance, balance)
      const token = (yield* memory.rows("Token")).get(TOKEN) as { transfers: number; supply: bigint }
      assert.strictEqual(token.transfers, 2000)
      assert.strictEqual(token.supply, 30n * 1_000_000n)
      assert.strictEqual(calls.total(), 1)
      const status = yield* (yield* Storage.Storage).status
      assert.strictEqual(status.committedCheckpointId, result.committedCheckpointId)
      void Account
      void Token
    }).pipe(Effect.provide(Storage.layerMemory), Effect.provide(Config.layer({ batchSize: 300, objectsTarget: 200 }))))
})
