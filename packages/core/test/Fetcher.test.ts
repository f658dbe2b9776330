import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Event, Indexer, Source } from "@chainstore/core"
import * as Fetcher from "../src/internal/Fetcher.js"
import { erc20Abi, TOKEN, ZERO } from "./fixtures.js"

const CHILD = "0x00000000000000000000000000000000000000c1"
const options: Fetcher.Options = { batchSize: 100, fetchBlockRange: 1000, exitAtHead: true }
const transfer = (value: bigint, srcAddress?: string): Source.MemoryEvent => ({
  contractName: "ERC20",
  eventName: "Transfer",
  params: { from: ZERO, to: ZERO, value },
  ...(srcAddress === undefined ? {} : { srcAddress })
})

/** Blocks 1..20; events only in the given blocks (`perBlock` transfers each, the last one from CHILD when asked). */
const chainOf = (withEvents: ReadonlyArray<number>, perBlock = 1, childIn: ReadonlyArray<number> = []) =>
  Source.memory(Array.from({ length: 20 }, (_, i) => {
    const n = i + 1
    const events = withEvents.includes(n) ? Array.from({ length: perBlock }, (_, k) => transfer(BigInt(n * 10 + k))) : []
    if (childIn.includes(n)) events.push(transfer(BigInt(n * 10 + 9), CHILD))
    return { number: n, events }
  }))

const cursorFor = (source: Source.Source, reorgWindow: number) =>
  Effect.gen(function*() {
    const chain: Indexer.Chain = { id: 1, source, startBlock: 1, reorgWindow, contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }] }
    const indexer = Indexer.make({ entities: [], chains: [chain], handlers: { ERC20: { Transfer: () => Effect.void } } })
    const contracts = yield* Fetcher.contractsOf(indexer, chain)
    const chainSource = yield* source.make({ chainId: 1, contracts, blockHandlers: [] })
    return Fetcher.makeCursor(chain, contracts, chainSource, undefined, [], [])
  })

const batchOf = (next: Fetcher.Next) => {
  assert.strictEqual(next._tag, "Batch")
  return next._tag === "Batch" ? next.batch : assert.fail("not a batch")
}

describe("Fetcher batch assembly", () => {
  it.effect("one checkpoint per block with events; inside the reorg window also one per hash-only block; ids continue from processed", () =>
    Effect.gen(function*() {
      const cursor = yield* cursorFor(chainOf([2, 5, 17]).source, 5)
      const batch = batchOf(yield* Fetcher.nextBatch([cursor], 40n, options))
      // Head 20, window 5: blocks 15..20 keep a checkpoint (hash only where they have no events).
      assert.deepStrictEqual(batch.checkpointBlockNumbers, [2, 5, 15, 16, 17, 18, 19, 20])
      assert.deepStrictEqual(batch.checkpointIds, [41n, 42n, 43n, 44n, 45n, 46n, 47n, 48n])
      assert.deepStrictEqual(batch.checkpointEventsProcessed, [1, 1, 0, 0, 1, 0, 0, 0])
      assert.deepStrictEqual(batch.items.map((e) => e.blockNumber), [2, 5, 17])
      assert.isTrue(batch.isInReorgThreshold)
      assert.deepStrictEqual(batch.progress.map((p) => [p.progressBlock, p.eventsProcessed]), [[20, 3]])
      assert.strictEqual((yield* Fetcher.nextBatch([cursor], 48n, options))._tag, "Done")
    }).pipe(Effect.scoped))

  it.effect("whole blocks only: a batch ends at a block boundary once it holds batchSize items, outside the window it is not in the threshold", () =>
    Effect.gen(function*() {
      const cursor = yield* cursorFor(chainOf([1, 2, 3, 4], 3).source, 0)
      const batch = batchOf(yield* Fetcher.nextBatch([cursor], 0n, { ...options, batchSize: 5 }))
      assert.deepStrictEqual(batch.checkpointBlockNumbers, [1, 2])
      assert.strictEqual(batch.items.length, 6)
      assert.isFalse(batch.isInReorgThreshold)
      assert.strictEqual(cursor.progress, 2)
    }).pipe(Effect.scoped))

  it.effect("truncate keeps the first blocks, rewinds the cursor to the last kept block and fetches the rest again", () =>
    Effect.gen(function*() {
      const cursor = yield* cursorFor(chainOf([3, 6, 9], 2).source, 0)
      const batch = batchOf(yield* Fetcher.nextBatch([cursor], 0n, options))
      // A window of 0 still keeps the head block's hash.
      assert.deepStrictEqual(batch.checkpointBlockNumbers, [3, 6, 9, 20])
      const kept = Fetcher.truncate([cursor], batch, 4)
      assert.deepStrictEqual(kept.checkpointBlockNumbers, [3, 6])
      assert.strictEqual(kept.items.length, 4)
      assert.deepStrictEqual(kept.progress.map((p) => [p.progressBlock, p.eventsProcessed]), [[6, 4]])
      assert.strictEqual(cursor.progress, 6)
      const rest = batchOf(yield* Fetcher.nextBatch([cursor], 2n, options))
      assert.deepStrictEqual(rest.checkpointBlockNumbers, [9, 20])
      assert.deepStrictEqual(rest.checkpointIds, [3n, 4n])
      assert.deepStrictEqual(rest.progress.map((p) => [p.progressBlock, p.eventsProcessed]), [[20, 6]])
    }).pipe(Effect.scoped))

  it.effect("a registration: only new addresses count, its block is fetched for them alone, later requests include them", () =>
    Effect.gen(function*() {
      const cursor = yield* cursorFor(chainOf([4, 8], 1, [4, 8]).source, 0)
      const registration = { chainId: 1, contractName: "ERC20", address: CHILD, blockNumber: 4, logIndex: 0, checkpointId: 1n }
      const fresh = Fetcher.freshRegistrations(cursor, [registration, registration, { ...registration, address: TOKEN }])
      assert.deepStrictEqual(fresh, [registration])
      const children = yield* Fetcher.fetchRegistered(cursor, 4, fresh)
      assert.deepStrictEqual(children.map((e) => [e.srcAddress, e.blockNumber, e.logIndex]), [[CHILD, 4, 1]])
      Fetcher.addRegistrations(cursor, fresh)
      assert.deepStrictEqual(Fetcher.freshRegistrations(cursor, [registration]), [])
      cursor.progress = cursor.fetchedTo = 4
      const batch = batchOf(yield* Fetcher.nextBatch([cursor], 1n, options))
      assert.deepStrictEqual(batch.items.map((e) => [(e as Event.Event).srcAddress, e.blockNumber]), [[TOKEN, 8], [CHILD, 8]])
    }).pipe(Effect.scoped))
})
