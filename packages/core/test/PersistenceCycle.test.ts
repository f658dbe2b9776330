import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Change, Config, Errors, type Indexer, PersistenceCycle, Processor, Runtime, Source, Storage, Store } from "@chainstore/core"
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
      // One block per batch: those in the held write plus those queued behind it are all 20.
      const [held] = yield* memory.writes
      assert.strictEqual(held!.batch.checkpointIds.length + store.queuedBatches(), 20)
      assert.isAbove(store.queuedBatches(), 0)
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
      assert.strictEqual((yield* memory.writes).length, 1)
      assert.strictEqual(store.committed(), 0n)
      // Processing stopped: far fewer than the 40 blocks were processed.
      assert.isTrue(store.processed() < 40n)
      // The writer is gone: a later batch is never written, and waiting on the cycle fails with the same cause.
      const cycle = yield* PersistenceCycle.PersistenceCycle
      yield* cycle.commitBatch(batchOf([100n]))
      assert.strictEqual(yield* Effect.flip(cycle.flush), written)
      assert.strictEqual((yield* memory.writes).length, 1)
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
      const flushed = yield* Effect.exit(cycle.flush)
      assert.isTrue(Exit.isFailure(flushed), "flush succeeded over a failed write")
      assert.strictEqual(store.committed(), 3n)
      // The writer fiber's own exit is that failure: the cycle's `failure` ends with it.
      const fate = yield* Effect.exit(cycle.failure)
      assert.deepStrictEqual(fate, flushed)
    }).pipe(Effect.provide(services(indexer))))

  it.effect("every storage write takes the one permit: batch writes, chain metadata, prunes and rollback staging never overlap", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      const log = yield* WriteLog
      yield* memory.hold
      yield* cycle.commitBatch(batchOf([1n]))
      yield* memory.awaitWrites(1)
      // While the batch write is held, everyone else who writes has to wait for the permit.
      yield* cycle.prune(1n)
      const staged = yield* Effect.forkChild(cycle.withWritePermit(log.recorded("stage", Effect.void)))
      store.setChainMeta([{ chainId: 1, sourceBlock: 9, bufferBlock: 9, firstEventBlock: 1, readyAt: undefined }])
      const flush = yield* Effect.forkChild(cycle.flush)
      for (let i = 0; i < 200; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(log.entries, ["start writeBatch"])
      yield* memory.release
      yield* Fiber.join(flush)
      yield* Fiber.join(staged)
      for (let i = 0; i < 1000 && !log.entries.includes("end pruneHistory"); i++) yield* Effect.yieldNow
      // Each write yields while it runs, so an overlap would show; every one of them ran, one at a time.
      assert.strictEqual(log.maxConcurrent, 1)
      assert.sameMembers(log.entries.filter((e) => e.startsWith("end")), ["end writeBatch", "end pruneHistory", "end stage", "end writeChainMeta"])
    }).pipe(Effect.provide(recordingServices(indexer))))

  it.effect("a failed write ends a run that is idle at the head, at once and with that cause", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const processor = yield* Processor.Processor
      yield* memory.failWrites(new Errors.StorageError({ operation: "writeBatch", message: "disk on fire", isRetryable: false }))
      // The chain has no end: after its 3 blocks the loop only polls, on a clock that never moves.
      const error = yield* Effect.flip(processor.run)
      assert.instanceOf(error, Errors.WriteFailed)
      assert.include(error.message, "disk on fire")
    }).pipe(Effect.provide(services(makeIndexer({ source: Source.memory(transferBlocks(3, 2, 4)).source }), { batchSize: 100 }))))

  it.effect("dirty chain metadata is written when its throttle interval has passed, by the writer's own timer", () =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      const log = yield* WriteLog
      const meta = (sourceBlock: number) => [{ chainId: 1, sourceBlock, bufferBlock: sourceBlock, firstEventBlock: 1, readyAt: undefined }]
      const metaWrites = () => log.entries.filter((e) => e === "end writeChainMeta").length
      store.setChainMeta(meta(5))
      yield* cycle.kick
      for (let i = 0; i < 100 && metaWrites() < 1; i++) yield* Effect.yieldNow
      assert.strictEqual(metaWrites(), 1)
      store.setChainMeta(meta(6))
      yield* cycle.kick
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow
      assert.strictEqual(metaWrites(), 1, "written again inside the throttle interval")
      yield* TestClock.adjust(Duration.seconds(9))
      assert.strictEqual(metaWrites(), 1)
      yield* TestClock.adjust(Duration.seconds(1))
      for (let i = 0; i < 100 && metaWrites() < 2; i++) yield* Effect.yieldNow
      assert.strictEqual(metaWrites(), 2)
    }).pipe(Effect.provide(recordingServices(indexer, { chainMetaInterval: Duration.seconds(10) }))))
})

/** Every storage write's start and end, in order, and the most writes seen running at once. */
class WriteLog extends Context.Service<WriteLog, {
  readonly entries: Array<string>
  readonly maxConcurrent: number
  /** Runs `effect` as a write named `name`, yielding inside it so that an overlapping write would show. */
  readonly recorded: <A, E>(name: string, effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
}>()("test/WriteLog") {}

const makeWriteLog = () => {
  const entries: Array<string> = []
  let running = 0
  let maxConcurrent = 0
  const yields = Effect.gen(function*() {
    for (let i = 0; i < 20; i++) yield* Effect.yieldNow
  })
  return WriteLog.of({
    entries,
    get maxConcurrent() {
      return maxConcurrent
    },
    recorded: (name, effect) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          entries.push(`start ${name}`)
          maxConcurrent = Math.max(maxConcurrent, ++running)
        }),
        () => Effect.andThen(yields, effect),
        () => Effect.sync(() => {
          running--
          entries.push(`end ${name}`)
        })
      )
  })
}

/** The run's services over a memory storage wrapped to record each write (a layer, as a user would swap it). */
const recordingServices = (indexer: Indexer.Indexer, config: Partial<Config.Options> = {}) => {
  const recording = Layer.effectContext(Effect.gen(function*() {
    const storage = yield* Storage.Storage
    const log = makeWriteLog()
    const wrapped = Storage.Storage.of({
      ...storage,
      writeBatch: (plan) => log.recorded("writeBatch", storage.writeBatch(plan)),
      writeChainMeta: (meta) => log.recorded("writeChainMeta", storage.writeChainMeta(meta)),
      pruneHistory: (safe) => log.recorded("pruneHistory", storage.pruneHistory(safe))
    })
    return Context.make(Storage.Storage, wrapped).pipe(Context.add(WriteLog, log))
  }))
  return Runtime.layer(indexer).pipe(
    Layer.provideMerge(recording),
    Layer.provideMerge(Storage.layerMemory),
    Layer.provide(Config.layer(config))
  )
}
