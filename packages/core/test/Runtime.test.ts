import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Config, Errors, Indexer, Runtime, Source, Storage } from "@chainstore/core"
import { Account, Token, TOKEN, expectedBalances, makeCounter, makeIndexer, transferBlocks } from "./fixtures.js"

describe("Runtime", () => {
  it.effect("indexes every block to the end and writes balances equal to a direct computation", () =>
    Effect.gen(function*() {
      const blocks = transferBlocks(50, 40, 30)
      const chain = Source.memory(blocks)
      const calls = makeCounter()
      const result = yield* Runtime.run(makeIndexer({ source: chain.source, endBlock: 50, effectCalls: calls }))
      assert.strictEqual(result.reason, "ended")
      assert.strictEqual(result.chains[0]!.processedBlock, 50)
      const memory = yield* Storage.MemoryStorage
      const rows = yield* memory.rows("Account")
      const expected = expectedBalances(blocks)
      assert.strictEqual(rows.size, expected.size)
      for (const [id, balance] of expected) assert.strictEqual((rows.get(id) as { balance: bigint }).balance, balance)
      const token = (yield* memory.rows("Token")).get(TOKEN) as { transfers: number; supply: bigint }
      assert.strictEqual(token.transfers, 2000)
      assert.strictEqual(token.supply, 30n * 1_000_000n)
      assert.strictEqual(calls.total(), 1)
      const status = yield* (yield* Storage.Storage).status
      assert.strictEqual(status.committedCheckpointId, result.committedCheckpointId)
      void Account
      void Token
    }).pipe(Effect.provide(Storage.layerMemory), Effect.provide(Config.layer({ batchSize: 300, objectsTarget: 200 }))))
})

describe("Runtime failures", () => {
  it.effect("a handler failure names the event; batches before it are written, its own batch is not", () =>
    Effect.gen(function*() {
      const blocks = transferBlocks(10, 4, 8)
      const base = makeIndexer({ source: Source.memory(blocks).source, endBlock: 10 })
      const transfer = base.handlers.get("ERC20")!.get("Transfer")!
      const failing: typeof base = {
        ...base,
        handlers: new Map([["ERC20", new Map([["Transfer", (event, ctx) =>
          event.blockNumber === 7 && event.logIndex === 2 ? Effect.fail("boom") : transfer(event, ctx)]])]])
      }
      const exit = yield* Effect.exit(Runtime.run(failing))
      assert.strictEqual(exit._tag, "Failure")
      const reason = exit._tag === "Failure" ? exit.cause.reasons[0] : undefined
      const error = reason?._tag === "Fail" ? reason.error : undefined
      assert.instanceOf(error, Errors.HandlerError)
      const handlerError = error as Errors.HandlerError
      assert.deepInclude(handlerError, { chainId: 1, blockNumber: 7, logIndex: 2, handler: "ERC20.Transfer" })
      assert.match(handlerError.message, /ERC20\.Transfer failed on chain 1, block 7, log index 2, tx 0x/)
      // One block per batch: blocks 1–6 were flushed; nothing of block 7 reached storage.
      const memory = yield* Storage.MemoryStorage
      const rows = yield* memory.rows("Account")
      const expected = expectedBalances(blocks.slice(0, 6))
      assert.strictEqual(rows.size, expected.size)
      for (const [id, balance] of expected) assert.strictEqual((rows.get(id) as { balance: bigint }).balance, balance)
      const status = yield* (yield* Storage.Storage).status
      assert.strictEqual(status.chains[0]!.progressBlock, 6)
    }).pipe(Effect.provide(Storage.layerMemory), Effect.provide(Config.layer({ batchSize: 4 }))))

  it.effect("an indexer that reuses an entity name is refused, naming the file and field", () =>
    Effect.gen(function*() {
      const base = makeIndexer({ source: Source.memory([]).source })
      const error = yield* Effect.flip(Indexer.validate({ ...base, entities: [Account, Account] }, "indexer.ts"))
      assert.strictEqual(error._tag, "IndexerDefinitionError")
      assert.strictEqual(error.path, "indexer.ts: entities[1].name")
      assert.match(error.message, /duplicate entity name "Account"/)
    }))
})

describe("Runtime on a fresh database", () => {
  it.effect("reads nothing from storage: memory holds every row until the first eviction", () =>
    Effect.gen(function*() {
      yield* Runtime.run(makeIndexer({ source: Source.memory(transferBlocks(20, 10, 15)).source, endBlock: 20 }))
      const calls = yield* (yield* Storage.MemoryStorage).calls
      assert.deepStrictEqual([...calls.keys()].filter((k) => k.startsWith("load")), [])
    }).pipe(Effect.provide(Storage.layerMemory), Effect.provide(Config.layer({ batchSize: 30 }))))

  it.effect("after an eviction, misses go to storage again (and still give the right balances)", () =>
    Effect.gen(function*() {
      // 40 accounts against a target of 20 objects: accounts must be evicted.
      const blocks = transferBlocks(20, 10, 40)
      yield* Runtime.run(makeIndexer({ source: Source.memory(blocks).source, endBlock: 20 }))
      const memory = yield* Storage.MemoryStorage
      const calls = yield* memory.calls
      assert.isTrue((calls.get("loadByIds:Account") ?? 0) > 0, JSON.stringify([...calls]))
      const rows = yield* memory.rows("Account")
      const expected = expectedBalances(blocks)
      assert.strictEqual(rows.size, expected.size)
      for (const [id, balance] of expected) assert.strictEqual((rows.get(id) as { balance: bigint }).balance, balance)
    }).pipe(Effect.provide(Storage.layerMemory), Effect.provide(Config.layer({ batchSize: 30, objectsTarget: 20 }))))
})

describe("Fetching ahead", () => {
  it.effect("requests about two batches of events at a time on a dense chain, not the whole block range", () =>
    Effect.gen(function*() {
      const inner = Source.memory(transferBlocks(200, 50, 30)).source
      const spans: Array<number> = []
      const counting: Source.Source = {
        name: "counting",
        make: (chain) => Effect.map(inner.make(chain), (s) => ({
          ...s,
          fetch: (request) => Effect.map(s.fetch(request), (result) => {
            spans.push(request.toBlock - request.fromBlock + 1)
            return result
          })
        }))
      }
      yield* Runtime.run(makeIndexer({ source: counting, endBlock: 200 }))
      // The first request is blind (100 blocks); then 2 × 100 events / 50 per block = 4 blocks.
      assert.strictEqual(spans[0], 100)
      const rest = spans.slice(1)
      assert.isTrue(rest.length > 0 && rest.every((n) => n === 4), JSON.stringify(spans))
    }).pipe(Effect.provide(Storage.layerMemory), Effect.provide(Config.layer({ batchSize: 100 }))))
})
