import { assert, describe, it } from "@effect/vitest"
import * as Coverage from "../src/internal/CacheCoverage.js"
import * as Keys from "../src/internal/CacheKeys.js"

const r = (id: number, fromBlock: number, toBlock: number) => ({ id, fromBlock, toBlock })
const shape = (parts: ReadonlyArray<Coverage.Part<ReturnType<typeof r>>>) =>
  parts.map((p) => (p._tag === "Cached" ? `${p.fromBlock}-${p.toBlock}@${p.range.id}` : `${p.fromBlock}-${p.toBlock}?`))

describe("CacheCoverage: a request split into what stored ranges cover and what they miss", () => {
  it("no ranges: the whole request is missing", () => {
    assert.deepStrictEqual(shape(Coverage.plan([], 10, 20)), ["10-20?"])
  })

  it("ranges inside, around and across the request, in any order: cached parts clipped to it, gaps missing", () => {
    assert.deepStrictEqual(shape(Coverage.plan([r(2, 30, 40), r(1, 5, 14)], 10, 50)), ["10-14@1", "15-29?", "30-40@2", "41-50?"])
    assert.deepStrictEqual(shape(Coverage.plan([r(1, 0, 100)], 10, 20)), ["10-20@1"])
    assert.deepStrictEqual(shape(Coverage.plan([r(1, 15, 100)], 10, 20)), ["10-14?", "15-20@1"])
  })

  it("adjacent ranges follow each other without a gap; a range starting right after the request is not part of it", () => {
    assert.deepStrictEqual(shape(Coverage.plan([r(1, 10, 12), r(2, 13, 15), r(3, 21, 30)], 10, 20)), ["10-12@1", "13-15@2", "16-20?"])
  })

  it("overlapping ranges: from each block on, the one reaching furthest", () => {
    assert.deepStrictEqual(shape(Coverage.plan([r(1, 0, 12), r(2, 5, 18), r(3, 11, 14)], 10, 20)), ["10-18@2", "19-20?"])
    assert.deepStrictEqual(shape(Coverage.plan([r(1, 10, 20), r(2, 10, 20)], 10, 20)), ["10-20@1"])
  })

  it("one block", () => {
    assert.deepStrictEqual(shape(Coverage.plan([r(1, 7, 7)], 7, 7)), ["7-7@1"])
    assert.deepStrictEqual(shape(Coverage.plan([r(1, 8, 9)], 7, 7)), ["7-7?"])
  })

  it("the cached parts a request starts with end at its first missing block", () => {
    const leading = (parts: ReadonlyArray<Coverage.Part<ReturnType<typeof r>>>) => shape(Coverage.leadingCached(parts))
    assert.deepStrictEqual(leading(Coverage.plan([r(1, 10, 12), r(2, 13, 15), r(3, 18, 30)], 10, 20)), ["10-12@1", "13-15@2"])
    assert.deepStrictEqual(leading(Coverage.plan([r(1, 12, 30)], 10, 20)), [])
    assert.deepStrictEqual(leading(Coverage.plan([r(1, 0, 30)], 10, 20)), ["10-20@1"])
  })

  it("a read ends once the cached parts it starts with hold enough logs, at the end of a part, else where they end", () => {
    const c = (id: number, fromBlock: number, toBlock: number, logCount: number) => ({ id, fromBlock, toBlock, logCount })
    const ranges = [c(1, 1, 10, 4_000), c(2, 11, 20, 4_000), c(3, 21, 30, 4_000), c(4, 31, 40, 4_000)]
    // Three ranges reach 10,000 logs: the read ends with the third, though the request goes on.
    assert.strictEqual(Coverage.readEnd(ranges, 1, 40, 10_000), 30)
    assert.strictEqual(Coverage.readEnd(ranges, 5, 1_000, 10_000), 30)
    // One range holding more than enough: it alone, whole (never cut inside a range but by the request).
    assert.strictEqual(Coverage.readEnd([c(1, 1, 100, 50_000), c(2, 101, 200, 1)], 1, 200, 10_000), 100)
    assert.strictEqual(Coverage.readEnd([c(1, 1, 100, 50_000)], 1, 50, 10_000), 50)
    // Fewer logs than that up to a missing block: where the cached parts end; empty ranges add none.
    assert.strictEqual(Coverage.readEnd([c(1, 1, 10, 0), c(2, 11, 20, 0), c(3, 31, 40, 0)], 1, 40, 10_000), 20)
    // A request starting with a missing part: that part, up to the next stored range.
    assert.strictEqual(Coverage.readEnd([c(1, 15, 20, 10)], 1, 40, 10_000), 14)
    assert.strictEqual(Coverage.readEnd([], 1, 40, 10_000), 40)
  })

  it("merge: overlapping and touching intervals become one, in block order", () => {
    assert.deepStrictEqual(Coverage.merge([r(1, 20, 25), r(2, 1, 10), r(3, 11, 12), r(4, 5, 8), r(5, 30, 30)]).map((i) => [i.fromBlock, i.toBlock]), [
      [1, 12],
      [20, 25],
      [30, 30]
    ])
    assert.deepStrictEqual(Coverage.merge([]), [])
  })
})

describe("CacheKeys", () => {
  const selector = `0x${"dd".repeat(32)}` as const
  const other = `0x${"ee".repeat(32)}` as const

  it("a filter's key does not depend on the order or case of its addresses and topic values, nor trailing any-positions", () => {
    const key = Keys.filterKey({ addresses: ["0x00000000000000000000000000000000000000AA", "0x00000000000000000000000000000000000000bb"], topics: [[selector, other]] })
    assert.strictEqual(Keys.filterKey({ addresses: ["0x00000000000000000000000000000000000000bb", "0x00000000000000000000000000000000000000aa"], topics: [[other, selector], null, null] }), key)
  })

  it("filters matching other logs have other keys: another address, topic, position, or any address", () => {
    const base = { addresses: ["0x00000000000000000000000000000000000000aa"], topics: [[selector]] }
    const keys = [
      Keys.filterKey(base),
      Keys.filterKey({ ...base, addresses: ["0x00000000000000000000000000000000000000ab"] }),
      Keys.filterKey({ ...base, addresses: undefined }),
      Keys.filterKey({ ...base, addresses: [] }),
      Keys.filterKey({ ...base, topics: [[other]] }),
      Keys.filterKey({ ...base, topics: [null, [selector]] }),
      Keys.filterKey({ ...base, topics: [[selector], [other]] })
    ]
    assert.strictEqual(new Set(keys).size, keys.length)
  })

  it("a call's key names its block hash and target in lowercase and hashes its calldata", () => {
    const hash = `0x${"AB".repeat(32)}`
    const key = Keys.callKey(hash, "0x00000000000000000000000000000000000000AA", "0x18160ddd")
    assert.strictEqual(key, Keys.callKey(hash.toLowerCase(), "0x00000000000000000000000000000000000000aa", "0x18160ddd"))
    assert.notStrictEqual(key, Keys.callKey(hash, "0x00000000000000000000000000000000000000aa", "0x70a08231"))
    assert.isTrue(key.startsWith(`${hash.toLowerCase()}:0x00000000000000000000000000000000000000aa:0x`))
  })
})
