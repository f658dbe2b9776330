import { assert, describe, it } from "@effect/vitest"
import { Change } from "@chainstore/core"
import * as InMemoryTable from "../src/internal/InMemoryTable.js"

type Row = { readonly id: string; readonly n: number }
const row = (id: string, n: number): Row => ({ id, n })

describe("InMemoryTable", () => {
  it("keeps superseded uncommitted changes for history and counts entries incrementally", () => {
    const t = InMemoryTable.make<Row>()
    InMemoryTable.set(t, Change.set("a", row("a", 1), 1n), 0n)
    InMemoryTable.set(t, Change.set("a", row("a", 2), 2n), 0n)
    InMemoryTable.set(t, Change.set("a", row("a", 3), 2n), 0n) // same checkpoint: replaced, not kept
    InMemoryTable.set(t, Change.set("b", row("b", 1), 3n), 0n)
    assert.strictEqual(InMemoryTable.changesCount(t), 3)
    const snap = InMemoryTable.snapshotChanges(t, 0n, 2n)
    assert.deepStrictEqual(snap.map((c) => [c.entityId, c.checkpointId]), [["a", 1n], ["a", 2n]])
    // Latest entries stay readable; the superseded step now belongs to the write.
    assert.strictEqual(InMemoryTable.changesCount(t), 2)
    assert.deepStrictEqual(Change.value(InMemoryTable.get(t, "a")!), row("a", 3))
  })

  it("a step already committed is neither kept nor written again", () => {
    const t = InMemoryTable.make<Row>()
    InMemoryTable.set(t, Change.set("a", row("a", 1), 1n), 0n)
    // Processed while checkpoint 1's write was in flight: kept aside, since committed was still 0.
    InMemoryTable.set(t, Change.set("a", row("a", 2), 2n), 0n)
    assert.deepStrictEqual(InMemoryTable.snapshotChanges(t, 1n, 2n).map((c) => c.checkpointId), [2n])
  })

  it("dropCommitted spares db-loaded entries when asked, and evicts them otherwise", () => {
    const t = InMemoryTable.make<Row>()
    InMemoryTable.initFromDb(t, "db", row("db", 0))
    InMemoryTable.initFromDb(t, "absent", undefined)
    InMemoryTable.set(t, Change.set("c", row("c", 1), 1n), 0n)
    InMemoryTable.set(t, Change.set("u", row("u", 1), 5n), 0n)
    assert.strictEqual(InMemoryTable.dropCommitted(t, 1n, true), 1)
    assert.deepStrictEqual(InMemoryTable.get(t, "db"), Change.set("db", row("db", 0), 0n))
    assert.strictEqual(InMemoryTable.get(t, "absent")?._tag, "Delete")
    assert.strictEqual(InMemoryTable.dropCommitted(t, 1n, false), 2)
    assert.deepStrictEqual([...t.latest.keys()], ["u"])
  })

  it("lookups follow later sets and deletes", () => {
    const t = InMemoryTable.make<Row>()
    InMemoryTable.set(t, Change.set("a", row("a", 5), 1n), 0n)
    InMemoryTable.set(t, Change.set("b", row("b", 9), 1n), 0n)
    assert.deepStrictEqual(InMemoryTable.addLookup(t, "n", "gt", 6), ["b"])
    InMemoryTable.set(t, Change.set("a", row("a", 7), 2n), 0n)
    InMemoryTable.set(t, Change.del("b", 2n), 0n)
    assert.deepStrictEqual(InMemoryTable.lookup(t, "n", "gt", 6), ["a"])
    assert.deepStrictEqual(InMemoryTable.lookup(t, "n", "eq", 7), undefined)
  })
})

describe("InMemoryTable dirty ids", () => {
  it("a snapshot releases the ids it wrote, so a long run does not accumulate them", () => {
    const t = InMemoryTable.make<Row>()
    for (let i = 0; i < 1000; i++) InMemoryTable.set(t, Change.set(`k${i}`, row(`k${i}`, i), BigInt(i + 1)), 0n)
    InMemoryTable.snapshotChanges(t, 0n, 1000n)
    assert.strictEqual(t.dirty.size, 0)
  })
})
