import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Change, Entity, ExternalEffect, Indexer, Source } from "@chainstore/core"
import * as InMemoryTable from "../src/internal/InMemoryTable.js"
import * as State from "../src/internal/StoreState.js"
import { batchOf, erc20Abi, TOKEN } from "./fixtures.js"

const Account = Entity.make("Account", { id: Schema.String, balance: Schema.BigInt })
const price = ExternalEffect.make({
  name: "price",
  input: Schema.String,
  output: Schema.Number,
  reorgSensitive: true,
  run: () => Effect.succeed(1)
})
const symbol = ExternalEffect.make({ name: "symbol", input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(s) })
const indexer = Indexer.make({
  entities: [Account],
  effects: [price, symbol],
  chains: [{ id: 1, source: Source.memory([]).source, startBlock: 1, contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }] }],
  handlers: {}
})
const fresh = () => State.make(indexer, { committedCheckpointId: 0n, chains: [] })
const acct = (id: string, balance: bigint) => ({ id, balance })
const set = (self: State.StoreState, id: string, balance: bigint, checkpointId: bigint) =>
  State.setEntity(self, "Account", Change.set(id, acct(id, balance), checkpointId))
const value = (self: State.StoreState, id: string) => State.entityTable(self, "Account").latest.get(id)

describe("StoreState", () => {
  it("enqueue advances the processed frontier; a write drains the leading run that shares isInReorgThreshold", () => {
    const self = fresh()
    const flags = [false, false, true, true, false]
    flags.forEach((inThreshold, i) => State.enqueue(self, batchOf([BigInt(i + 1)], { inThreshold, itemsPer: 2 })))
    assert.strictEqual(self.processed, 5n)
    assert.strictEqual(State.counts(self).queuedItems, 10)
    const runs: Array<ReadonlyArray<bigint>> = []
    for (let plan = State.takeWrite(self); plan !== undefined; plan = State.takeWrite(self)) {
      runs.push(plan.batch.checkpointIds)
      State.commit(self, plan)
    }
    assert.deepStrictEqual(runs, [[1n, 2n], [3n, 4n], [5n]])
    assert.strictEqual(self.committed, 5n)
    assert.strictEqual(State.counts(self).queuedItems, 0)
    assert.strictEqual(self.committedBlocks.get(1), 5)
  })

  it("a write snapshots the changes up to its run's last checkpoint; later ones stay for the next write and everything stays readable", () => {
    const self = fresh()
    set(self, "a", 1n, 1n)
    State.enqueue(self, batchOf([1n], { inThreshold: true }))
    set(self, "a", 2n, 2n)
    set(self, "b", 3n, 2n)
    const first = State.takeWrite(self)!
    assert.deepStrictEqual(first.entities, [{ entity: "Account", changes: [Change.set("a", acct("a", 1n), 1n)] }])
    assert.strictEqual(first.committedCheckpointId, 1n)
    // In flight: readable at their newest values, and a commit is pending.
    assert.deepStrictEqual(Change.value(value(self, "a")!), acct("a", 2n))
    assert.strictEqual(self.writing, first)
    State.commit(self, first)
    assert.isUndefined(self.writing)
    State.enqueue(self, batchOf([2n], { inThreshold: true }))
    const second = State.takeWrite(self)!
    assert.deepStrictEqual(second.entities[0]!.changes.map((c) => [c.entityId, c.checkpointId]), [["a", 2n], ["b", 2n]])
  })

  it("memory-only effects are snapshotted (their dirty ids released) but never written; cached ones are written encoded", () => {
    const self = fresh()
    State.setEffectOutput(self, "price", "eth", 3000, 1n)
    State.setEffectOutput(self, "symbol", "0xaa", "AA", 1n)
    State.enqueue(self, batchOf([1n]))
    const plan = State.takeWrite(self)!
    assert.deepStrictEqual(plan.effects, [
      { effect: "price", rows: [{ key: "eth", output: 3000, checkpointId: 1n }] },
      { effect: "symbol", rows: [{ key: "0xaa", output: "AA", checkpointId: 1n }] }
    ])
  })

  it("eviction: committed entries first, db-loaded ones only when asked; uncommitted ones never", () => {
    const self = fresh()
    InMemoryInit(self, "db", 9n)
    set(self, "c", 1n, 1n)
    set(self, "u", 1n, 2n)
    self.committed = 1n
    assert.strictEqual(State.dropCommitted(self, true), 1)
    assert.deepStrictEqual(value(self, "db"), Change.set("db", acct("db", 9n), 0n))
    assert.isFalse(self.complete.has("Account"), "an evicted table is no longer complete")
    assert.strictEqual(State.dropCommitted(self, false), 1)
    assert.isUndefined(value(self, "db"))
    assert.deepStrictEqual(value(self, "u"), Change.set("u", acct("u", 1n), 2n))
    assert.strictEqual(State.counts(self).entityChanges, 1)
  })

  it("a staged rollback drops entries after the target (effects only when reorg-sensitive) and is written with the diff stamped committed+1", () => {
    const self = fresh()
    set(self, "a", 1n, 1n)
    State.setEffectOutput(self, "price", "eth", 1, 1n)
    State.enqueue(self, batchOf([1n]))
    State.commit(self, State.takeWrite(self)!)
    set(self, "a", 5n, 3n)
    set(self, "new", 7n, 3n)
    State.setEffectOutput(self, "price", "eth2", 2, 3n)
    State.setEffectOutput(self, "symbol", "0xbb", "BB", 3n)
    State.enqueue(self, batchOf([2n, 3n]))
    State.commit(self, State.takeWrite(self)!)
    const diff = { entities: [{ entity: "Account", changes: [Change.set<unknown>("a", acct("a", 1n), 0n), Change.del("new", 0n)] }], chains: [] }
    State.stageRollback(self, 1n, diff, [{ chainId: 1, progressBlock: 1, sourceBlock: 9, eventsProcessed: 1, firstEventBlock: 1 }])
    assert.strictEqual(self.processed, 4n)
    assert.isUndefined(State.effectTable(self, "price").table.latest.get("eth2"))
    assert.deepStrictEqual(State.effectTable(self, "symbol").table.latest.get("0xbb"), Change.set("0xbb", "BB", 3n))
    assert.deepStrictEqual(value(self, "a"), Change.set("a", acct("a", 1n), 4n))
    const plan = State.takeWrite(self)!
    assert.deepStrictEqual(plan.rollback, { targetCheckpointId: 1n, diffCheckpointId: 4n })
    assert.deepStrictEqual(plan.batch.progress.map((p) => p.progressBlock), [1])
    assert.deepStrictEqual(plan.entities[0]!.changes.map((c) => [c._tag, c.entityId, c.checkpointId]), [["Set", "a", 4n], ["Delete", "new", 4n]])
    assert.strictEqual(plan.committedCheckpointId, 4n)
  })

  it("undoing a checkpoint puts back what each touched id held before it: a kept step, a committed value, a db-loaded one, or nothing", () => {
    const self = fresh()
    InMemoryInit(self, "db", 9n)
    set(self, "committed", 1n, 1n)
    self.committed = 1n
    set(self, "kept", 2n, 2n)
    State.beginBatch(self, batchOf([3n], { inThreshold: true }))
    for (const [id, balance] of [["db", 10n], ["committed", 11n], ["kept", 12n], ["new", 13n], ["kept", 14n]] as const) set(self, id, balance, 3n)
    const table = State.entityTable(self, "Account")
    assert.strictEqual(table.previous.length, 1, "the superseded uncommitted step of kept is kept for history")
    State.undoCheckpoint(self, 3n)
    assert.deepStrictEqual(value(self, "db"), Change.set("db", acct("db", 9n), 0n))
    assert.deepStrictEqual(value(self, "committed"), Change.set("committed", acct("committed", 1n), 1n))
    assert.deepStrictEqual(value(self, "kept"), Change.set("kept", acct("kept", 2n), 2n))
    assert.isUndefined(value(self, "new"))
    assert.strictEqual(table.previous.length, 0)
    // Handled again, the block's changes are snapshotted once each, with the kept step of 2 before them.
    set(self, "kept", 20n, 3n)
    State.enqueue(self, batchOf([2n, 3n], { inThreshold: true }))
    assert.deepStrictEqual(State.takeWrite(self)!.entities[0]!.changes.map((c) => [c.entityId, c.checkpointId]), [["kept", 2n], ["kept", 3n]])
  })

  it("an undo that takes an id out of memory drops lookups built since, which may have skipped its stored row", () => {
    const self = State.make(indexer, { committedCheckpointId: 5n, chains: [] })
    const table = State.entityTable(self, "Account")
    State.beginBatch(self, batchOf([6n], { inThreshold: true }))
    set(self, "p", 1n, 6n)
    // A lookup loads p's stored row; memory already has p, so the index is built from the new value.
    InMemoryTable.initFromDb(table, "p", acct("p", 9n))
    assert.deepStrictEqual(InMemoryTable.addLookup(table, "balance", "eq", 9n), [])
    State.undoCheckpoint(self, 6n)
    assert.isUndefined(value(self, "p"))
    assert.isUndefined(InMemoryTable.lookup(table, "balance", "eq", 9n), "a stale lookup would answer [] for a stored match")
  })

  it("chain metadata is dirty only when it changed", () => {
    const self = fresh()
    const meta = { chainId: 1, sourceBlock: 5, bufferBlock: 5, firstEventBlock: 1, readyAt: undefined }
    State.setChainMeta(self, [meta])
    assert.deepStrictEqual(State.takeChainMeta(self), [meta])
    State.setChainMeta(self, [{ ...meta }])
    assert.isUndefined(State.takeChainMeta(self))
    State.setChainMeta(self, [{ ...meta, sourceBlock: 6 }])
    assert.isTrue(self.chainMetaDirty)
    assert.isFalse(State.hasPendingBatches(self), "chain metadata alone is no batch to wait for")
  })
})

const InMemoryInit = (self: State.StoreState, id: string, balance: bigint) =>
  InMemoryTable.initFromDb(State.entityTable(self, "Account"), id, acct(id, balance))
