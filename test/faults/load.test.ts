// Load: a long simulated run under a small objects target; the store's object count (read from the store)
// never exceeds the target by more than what one batch adds.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { CapacityGate, Config, Processor, Runtime, SimChain, Storage } from "@chainstore/core"
import { makeIndexer } from "../../packages/core/test/fixtures.js"

const long = process.env.CHAINSTORE_LONG_TESTS === "1"
const blocks = long ? 50_000 : 10_000
const eventsPerBlock = 100
const batchSize = 1_000
const objectsTarget = 10_000

describe("memory bound", () => {
  it.live(`${blocks * eventsPerBlock} simulated events with objects target ${objectsTarget}`, () =>
    Effect.gen(function*() {
      const processor = yield* Processor.Processor
      const gate = yield* CapacityGate.CapacityGate
      const result = yield* processor.run
      const stats = yield* gate.stats
      assert.strictEqual(result.chains[0]!.eventsProcessed, blocks * eventsPerBlock)
      // One batch adds at most its items (queued until written) and, per item, the changes of one handler run:
      // two accounts and the token, plus an effect entry.
      const oneBatch = batchSize * (1 + 3 + 1)
      assert.isTrue(stats.peakObjects <= objectsTarget + oneBatch, `peak ${stats.peakObjects} objects`)
      assert.isTrue(stats.evictedCommitted > 0, "the gate never evicted")
    }).pipe(
      Effect.provide(Runtime.layer(makeIndexer({ source: SimChain.source({ blocks, eventsPerBlock, accounts: 30_000 }), reorgWindow: 0 }))),
      Effect.provide(Layer.fresh(Storage.layerMemory)),
      Effect.provide(Config.layer({ batchSize, objectsTarget }))
    ), 600_000)
})
