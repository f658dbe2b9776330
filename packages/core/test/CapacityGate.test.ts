import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { CapacityGate, Change, Errors, PersistenceCycle, Source, Storage, Store } from "@chainstore/core"
import { batchOf, makeIndexer, services } from "./fixtures.js"

const indexer = makeIndexer({ source: Source.memory([]).source, endBlock: 1 })
const account = (id: string, balance: bigint) => ({ id, balance })

describe("CapacityGate", () => {
  it.effect("evicts committed entries before db-loaded ones, and db-loaded ones only when still over", () =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      const gate = yield* CapacityGate.CapacityGate
      for (let i = 0; i < 5; i++) store.initEntityFromDb("Account", `db${i}`, account(`db${i}`, 1n))
      for (let i = 0; i < 6; i++) store.setEntity("Account", Change.set(`w${i}`, account(`w${i}`, 2n), 1n))
      yield* cycle.commitBatch(batchOf([1n]))
      yield* cycle.flush
      // 11 entries ≥ target 8: dropping the 6 committed ones is enough; the db-loaded ones stay warm.
      yield* gate.awaitCapacity
      assert.isUndefined(store.getEntity("Account", "w0"))
      assert.deepStrictEqual(store.getEntity("Account", "db0"), Change.set("db0", account("db0", 1n), 0n))
      assert.strictEqual(store.counts().total, 5)
      // Uncommitted changes push it over again: now db-loaded entries go too, the uncommitted stay.
      for (let i = 0; i < 4; i++) store.setEntity("Account", Change.set(`u${i}`, account(`u${i}`, 3n), 2n))
      yield* gate.awaitCapacity
      assert.isUndefined(store.getEntity("Account", "db0"))
      assert.deepStrictEqual(store.getEntity("Account", "u3"), Change.set("u3", account("u3", 3n), 2n))
      assert.strictEqual(store.counts().total, 4)
    }).pipe(Effect.provide(services(indexer, { objectsTarget: 8 }))))

  it.effect("waits for a commit only while a queued or in-flight batch can free room", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      const gate = yield* CapacityGate.CapacityGate
      yield* memory.hold
      for (let i = 0; i < 10; i++) store.setEntity("Account", Change.set(`a${i}`, account(`a${i}`, 1n), 1n))
      yield* cycle.commitBatch(batchOf([1n], { itemsPer: 3 }))
      yield* memory.awaitWrites(1)
      const waiting = yield* Effect.forkChild(gate.awaitCapacity)
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow
      assert.isUndefined(waiting.pollUnsafe(), "the gate did not wait for the queued batch's commit")
      yield* memory.release
      yield* Fiber.join(waiting)
      assert.strictEqual(store.committed(), 1n)
      assert.strictEqual(store.counts().total, 0)
    }).pipe(Effect.provide(services(indexer, { objectsTarget: 5 }))))

  it.effect("a staged rollback diff with no queued batch: the gate has the writer commit it, then evicts it", () =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const gate = yield* CapacityGate.CapacityGate
      const changes = Array.from({ length: 20 }, (_, i) => Change.set<unknown>(`r${i}`, account(`r${i}`, 7n), 0n))
      store.stageRollback(0n, { entities: [{ entity: "Account", changes }], chains: [] }, [])
      assert.strictEqual(store.counts().total, 20)
      yield* gate.awaitCapacity
      assert.strictEqual(store.committed(), 1n)
      assert.strictEqual(store.counts().total, 0)
    }).pipe(Effect.provide(services(indexer, { objectsTarget: 5 }))))

  it.effect("uncommitted changes over the target with nothing queued: the gate proceeds instead of waiting forever", () =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const gate = yield* CapacityGate.CapacityGate
      for (let i = 0; i < 10; i++) store.setEntity("Account", Change.set(`u${i}`, account(`u${i}`, 1n), 1n))
      yield* gate.awaitCapacity
      assert.strictEqual(store.counts().total, 10)
      assert.strictEqual((yield* gate.stats).waits, 0)
    }).pipe(Effect.provide(services(indexer, { objectsTarget: 5 }))))

  it.effect("after a failed write the gate never waits: it fails with the write's error", () =>
    Effect.gen(function*() {
      const memory = yield* Storage.MemoryStorage
      const store = yield* Store.Store
      const cycle = yield* PersistenceCycle.PersistenceCycle
      const gate = yield* CapacityGate.CapacityGate
      yield* memory.failWrites(new Errors.StorageError({ operation: "writeBatch", message: "no", isRetryable: false }))
      yield* cycle.commitBatch(batchOf([1n], { itemsPer: 4 }))
      const failed = yield* Effect.flip(cycle.flush)
      yield* cycle.commitBatch(batchOf([2n], { itemsPer: 10 }))
      assert.deepStrictEqual([store.counts().total, store.queuedBatches()], [10, 1])
      assert.strictEqual(yield* Effect.flip(gate.awaitCapacity), failed)
    }).pipe(Effect.provide(services(indexer, { objectsTarget: 5 }))))
})
