import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Change, Errors, Fatal, PersistenceCycle, Processor, Source, Storage, Store } from "@chainstore/core"
import { batchOf, makeIndexer, services, transferBlocks } from "./fixtures.js"

const idle = Source.memory([]).source
const indexer = makeIndexer({ source: idle, endBlock: 1 })

/** Lets other fibers run until `done` holds (cooperative yields, not sleeps). */
const until = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000 && !done(); i++) yield* Effect.yieldNow
    assert.isTrue(done(), "condition never held")
  })

describe("PersistenceCycle", () => {
  it.effect("a held write does not block processing of the next batches; at most one write is in flight", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const processor = yield* Processor.Processor
      yield* memory.hold
      const run = yield* Effect.forkChild(processor.run)
      yield* memory.awaitWrites(1)
      // While the first write is held, the processor goes on through all 20 blocks (5 per batch).
      yield* until(() => store.processed() === 20n)
      assert.strictEqual(yield* memory.writesInFlight, 1)
      assert.isTrue(store.queuedBatches() >= 2)
      yield* memory.release
      const result = yield* Fiber.join(run)
      assert.strictEqual(result.committedCheckpointId, 20n)
      assert.strictEqual(yield* memory.maxWritesInFlight, 1)
    }).pipe(Effect.provide(services(makeIndexer({ source: Source.memory(transferBlocks(20, 5, 10)).source, endBlock: 20 }), { batchSize: 5 }))))

  it.effect("queued batches [F,F,T,T,F] are written as [F,F], [T,T], [F], in order", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const cycle = yield* PersistenceCycle.PersistenceCycle
      yield* memory.hold
      yield* cycle.commitBatch(batchOf([1n]))
      yield* memory.awaitWrites(1)
      const flags = [false, false, true, true, false]
      for (const [i, inThreshold] of flags.entries()) yield* cycle.commitBatch(batchOf([BigInt(i + 2)], { inThreshold }))
      yield* memory.release
      yield* cycle.flush
      const writes = (yield* memory.writes).slice(1)
      assert.deepStrictEqual(writes.map((w) => w.batch.checkpointIds), [[2n, 3n], [4n, 5n], [6n]])
      assert.deepStrictEqual(writes.map((w) => w.batch.isInReorgThreshold), [false, true, false])
      assert.deepStrictEqual(writes.map((w) => w.committedCheckpointId), [3n, 5n, 6n])
    }).pipe(Effect.provide(services(indexer))))

  it.effect("changes of a batch processed during an in-flight write are not in that write and stay readable", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      yield* memory.hold
      store.setEntity("Account", Change.set("a", { id: "a", balance: 1n }, 1n))
      yield* cycle.commitBatch(batchOf([1n], { inThreshold: true }))
      yield* memory.awaitWrites(1)
      store.setEntity("Account", Change.set("a", { id: "a", balance: 2n }, 2n))
      store.setEntity("Account", Change.set("b", { id: "b", balance: 5n }, 2n))
      yield* cycle.commitBatch(batchOf([2n], { inThreshold: true }))
      const [first] = yield* memory.writes
      assert.deepStrictEqual(first!.entities, [{ entity: "Account", changes: [Change.set("a", { id: "a", balance: 1n }, 1n)] }])
      assert.deepStrictEqual(Change.value(store.getEntity("Account", "a")!), { id: "a", balance: 2n })
      assert.deepStrictEqual(Change.value(store.getEntity("Account", "b")!), { id: "b", balance: 5n })
      yield* memory.release
      yield* cycle.flush
      const second = (yield* memory.writes)[1]!
      assert.deepStrictEqual(second.entities[0]!.changes.map((c) => [c.entityId, c.checkpointId]), [["a", 2n], ["b", 2n]])
      // Both steps of "a" reached history; the committed rows hold the latest values.
      assert.deepStrictEqual((yield* memory.history("Account")).map((h) => [h.id, h.checkpointId]), [["a", 1n], ["a", 2n], ["b", 2n]])
      assert.deepStrictEqual((yield* memory.rows("Account")).get("a"), { id: "a", balance: 2n })
      assert.strictEqual(store.committed(), 2n)
    }).pipe(Effect.provide(services(indexer))))

  it.effect("a failing write fails the program with its cause; the writer stops and nothing more is written", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const processor = yield* Processor.Processor
      const failure = new Errors.StorageError({ operation: "writeBatch", message: "disk on fire", isRetryable: false })
      yield* memory.failWrites(failure)
      const exit = yield* Effect.exit(processor.run)
      assert.strictEqual(exit._tag, "Failure")
      const error = exit._tag === "Failure" ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      assert.instanceOf(error?._tag === "Fail" ? error.error : undefined, Errors.WriteFailed)
      const written = error?._tag === "Fail" ? (error.error as Errors.WriteFailed) : undefined
      assert.strictEqual(written?.cause, failure)
      assert.isTrue(store.hasFailedWrite())
      assert.strictEqual((yield* memory.writes).length, 1)
      assert.strictEqual(store.committed(), 0n)
      // Processing stopped: far fewer than the 40 blocks were processed.
      assert.isTrue(store.processed() < 40n)
      const cycle = yield* PersistenceCycle.PersistenceCycle
      yield* cycle.commitBatch(batchOf([100n]))
      yield* cycle.flush
      assert.strictEqual((yield* memory.writes).length, 1)
      assert.isTrue(yield* (yield* Fatal.Fatal).isFailed)
    }).pipe(Effect.provide(services(makeIndexer({ source: Source.memory(transferBlocks(40, 5, 10)).source, endBlock: 40 }), { batchSize: 5, objectsTarget: 20 }))))

  it.effect("flush waits for every queued batch; the committed frontier never passes a failed write", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      yield* memory.hold
      yield* cycle.commitBatch(batchOf([1n]))
      yield* memory.awaitWrites(1)
      yield* cycle.commitBatch(batchOf([2n]))
      yield* cycle.commitBatch(batchOf([3n], { inThreshold: true }))
      const flush = yield* Effect.forkChild(cycle.flush)
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow
      assert.isUndefined(flush.pollUnsafe(), "flush returned while writes were held")
      yield* memory.release
      yield* Fiber.join(flush)
      assert.strictEqual(store.queuedBatches(), 0)
      assert.strictEqual(store.committed(), 3n)
      yield* memory.failWrites(new Errors.StorageError({ operation: "writeBatch", message: "gone", isRetryable: false }))
      yield* cycle.commitBatch(batchOf([4n]))
      yield* cycle.flush
      assert.strictEqual(store.committed(), 3n)
      assert.isTrue(store.hasFailedWrite())
    }).pipe(Effect.provide(services(indexer))))
})
