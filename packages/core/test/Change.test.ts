import { assert, describe, it } from "@effect/vitest"
import { Change } from "@chainstore/core"

describe("Change", () => {
  describe("latestPerId", () => {
    it("keeps per id the change at the highest checkpoint, ids in first-seen order", () => {
      const latest = Change.latestPerId([
        Change.set("b", 1, 1n),
        Change.set("a", 1, 1n),
        Change.set("b", 3, 3n),
        Change.del("a", 2n),
        Change.set("c", 2, 2n)
      ])
      assert.deepStrictEqual(latest, [Change.set("b", 3, 3n), Change.del("a", 2n), Change.set("c", 2, 2n)])
    })

    it("a change at an equal checkpoint replaces the earlier one; a lower one does not", () => {
      assert.deepStrictEqual(Change.latestPerId([Change.set("a", 1, 2n), Change.set("a", 2, 2n)]), [Change.set("a", 2, 2n)])
      assert.deepStrictEqual(Change.latestPerId([Change.set("a", 1, 2n), Change.set("a", 2, 1n)]), [Change.set("a", 1, 2n)])
      assert.deepStrictEqual(Change.latestPerId([Change.set("a", 1, 1n), Change.del("a", 1n)]), [Change.del("a", 1n)])
    })

    it("of no changes is empty", () => {
      assert.deepStrictEqual(Change.latestPerId([]), [])
    })
  })
})
