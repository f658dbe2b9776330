import { assert, describe, it } from "@effect/vitest"
import { Batch, type Event } from "@chainstore/core"

const item = (block: number, logIndex: number, src = "a"): Event.Event => ({
  chainId: 1,
  contractName: "C",
  eventName: "E",
  srcAddress: src,
  blockNumber: block,
  blockHash: `0x${block}`,
  blockTimestamp: block,
  logIndex,
  transactionHash: "0x01",
  params: {},
  block: { number: block, hash: `0x${block}`, timestamp: block },
  transaction: { hash: "0x01" },
  log: {}
})
const show = (items: ReadonlyArray<Event.Item>) => items.map((e) => `${e.blockNumber}:${e.logIndex}${(e as Event.Event).srcAddress}`)

describe("Batch.mergeIntoBlock", () => {
  // Checkpoints: block 1 (2 items), block 2 hash-only (0), block 3 (3 items), block 4 (1 item).
  const setup = () => ({
    items: [item(1, 0), item(1, 5), item(3, 1), item(3, 4), item(3, 8), item(4, 0)],
    ids: [1n, 1n, 3n, 3n, 3n, 4n],
    counts: [2, 0, 3, 1]
  })

  it("merges after `from` in log order, inside the item's own block only, past a hash-only checkpoint", () => {
    const { counts, ids, items } = setup()
    Batch.mergeIntoBlock(items, ids, counts, 3, 4, [item(3, 9, "c"), item(3, 5, "c")])
    assert.deepStrictEqual(show(items), ["1:0a", "1:5a", "3:1a", "3:4a", "3:5c", "3:8a", "3:9c", "4:0a"])
    assert.deepStrictEqual(ids, [1n, 1n, 3n, 3n, 3n, 3n, 3n, 4n])
    assert.deepStrictEqual(counts, [2, 0, 5, 1])
  })

  it("from the block's start (a replay), events before every item come first", () => {
    const { counts, ids, items } = setup()
    Batch.mergeIntoBlock(items, ids, counts, 0, 0, [item(1, 2, "c"), item(1, 0, "c")])
    assert.deepStrictEqual(show(items).slice(0, 4), ["1:0a", "1:0c", "1:2c", "1:5a"])
    assert.deepStrictEqual(counts, [4, 0, 3, 1])
    assert.deepStrictEqual(ids.slice(0, 5), [1n, 1n, 1n, 1n, 3n])
  })
})
