import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Schema } from "effect"
import { Config, Errors, ExternalEffect, Indexer, Runtime, SimChain, Source, Storage } from "@chainstore/core"
import { expectedBalances, makeCounter, makeIndexer, simTables, transferBlocks } from "./fixtures.js"

const sim = { blocks: 60, eventsPerBlock: 6, accounts: 12 }

/** Every committed table of the memory storage, for equality checks. */
const tables = Effect.gen(function*() {
  const memory = yield* Storage.MemoryStorage
  return {
    accounts: [...(yield* memory.rows("Account"))].sort(),
    tokens: [...(yield* memory.rows("Token"))].sort()
  }
})

const run = (params: Partial<SimChain.Params>, reorgWindow: number, effectCalls = makeCounter()) =>
  Effect.gen(function*() {
    const result = yield* Runtime.run(makeIndexer({ source: SimChain.source({ ...sim, ...params }), reorgWindow, effectCalls }))
    return { result, tables: yield* tables }
  }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 20 })))

describe("Reorgs on the simulated chain (memory storage)", () => {
  for (const seed of [1, 2, 3]) {
    it.effect(`seed ${seed}: a run with reorgs ends with the tables of the canonical chain, computed from its events`, () =>
      Effect.gen(function*() {
        const forked = yield* run({ seed, reorgEvery: 10, reorgDepth: 3 }, 20)
        assert.strictEqual(forked.result.chains[0]!.processedBlock, 60)
        assert.deepStrictEqual(forked.tables, simTables({ ...sim, seed }))
        assert.strictEqual(forked.result.chains[0]!.eventsProcessed, 360)
      }))
  }

  it.effect("a reorg deeper than the window is a fatal error naming chain, block and depth", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(run({ reorgEvery: 10, reorgDepth: 6 }, 4))
      assert.instanceOf(error, Errors.DeepReorgError)
      const deep = error as Errors.DeepReorgError
      assert.strictEqual(deep.chainId, 1)
      assert.strictEqual(deep.blockNumber, 10)
      // Block 10 changed and so did every stored hash inside the 4-block window below it.
      assert.strictEqual(deep.reorgWindow, 4)
      assert.strictEqual(deep.depth, 5)
    }))
})

describe("Reorgs: effects, threshold entry, pruning", () => {
  it.effect("a reorg-sensitive effect runs again for forked blocks only; other effects never run again", () =>
    Effect.gen(function*() {
      const blockCalls = makeCounter()
      const tokenCalls = makeCounter()
      const blockInfo = ExternalEffect.make({
        name: "blockInfo",
        input: Schema.Struct({ block: Schema.Number }),
        output: Schema.Struct({ even: Schema.Boolean }),
        reorgSensitive: true,
        run: ({ block }) => Effect.sync(() => {
          blockCalls.hit(String(block))
          return { even: block % 2 === 0 }
        })
      })
      const base = makeIndexer({ source: SimChain.source({ ...sim, reorgEvery: 10, reorgDepth: 3 }), reorgWindow: 20, effectCalls: tokenCalls })
      const transfer = base.handlers.get("ERC20")!.get("Transfer")!
      const indexer: Indexer.Indexer = {
        ...base,
        effects: [...base.effects, blockInfo],
        handlers: new Map([["ERC20", new Map([["Transfer", (event, ctx) =>
          Effect.andThen(ctx.effect(blockInfo, { block: event.blockNumber }), transfer(event, ctx))]])]])
      }
      yield* Runtime.run(indexer).pipe(Effect.provide(Config.layer({ batchSize: 20 })))
      // Forks at tips 10..50 each cover 3 blocks: those 15 inputs ran twice, the other 45 once.
      const twice = [...blockCalls.runs].filter(([, n]) => n === 2).map(([b]) => Number(b)).sort((a, b) => a - b)
      assert.deepStrictEqual(twice, [8, 9, 10, 18, 19, 20, 28, 29, 30, 38, 39, 40, 48, 49, 50])
      assert.strictEqual(blockCalls.total(), 75)
      assert.strictEqual(tokenCalls.total(), 1)
      const rows = yield* (yield* Storage.MemoryStorage).effectRows("blockInfo")
      assert.strictEqual(rows.size, 60)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))

  for (const forkPoint of [31, 33]) {
    it.effect(`a fork from block ${forkPoint + 1}, found on restart, restores state written before and after the threshold entry (block 31)`, () =>
      Effect.gen(function*() {
        const original = transferBlocks(40, 4, 8)
        const replaced = [...original.slice(0, forkPoint), ...transferBlocks(41, 4, 8).slice(forkPoint).map((b) => ({
          ...b,
          hash: `0x${b.number.toString(16).padStart(62, "0")}ff`,
          events: b.events.map((e) => ({ ...e, params: { ...e.params, value: 3n } }))
        }))]
        const chain = Source.memory(original)
        const memory = yield* Storage.MemoryStorage
        yield* Runtime.run(makeIndexer({ source: chain.source, endBlock: 40, reorgWindow: 10 }))
        const firstRun = yield* memory.writes
        // Blocks up to 30 were written without history, blocks 31–40 with it.
        assert.strictEqual(Math.max(...firstRun.filter((w) => !w.batch.isInReorgThreshold).flatMap((w) => w.batch.checkpointBlockNumbers)), 30)
        assert.strictEqual(Math.min(...firstRun.filter((w) => w.batch.isInReorgThreshold).flatMap((w) => w.batch.checkpointBlockNumbers)), 31)
        chain.setBlocks(replaced)
        yield* Runtime.run(makeIndexer({ source: chain.source, endBlock: 41, reorgWindow: 10 }))
        const afterReorg = yield* tables
        assert.deepStrictEqual(
          afterReorg.accounts.map(([id, row]) => [id, (row as { balance: bigint }).balance]),
          [...expectedBalances(replaced)].sort()
        )
        const status = yield* (yield* Storage.Storage).status
        assert.strictEqual(status.chains[0]!.progressBlock, 41)
        assert.strictEqual(status.chains[0]!.eventsProcessed, 164)
      }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 20 }))))
  }

  it.effect("history outside the window is pruned while rollbacks inside it stay possible", () =>
    Effect.gen(function*() {
      const long = { blocks: 200, eventsPerBlock: 6, accounts: 12 }
      const pruned = yield* Effect.gen(function*() {
        const result = yield* Runtime.run(makeIndexer({ source: SimChain.source({ ...long, reorgEvery: 10, reorgDepth: 3 }), reorgWindow: 20 }))
        const history = yield* (yield* Storage.MemoryStorage).history("Account")
        return { result, history, tables: yield* tables }
      }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 20, pruneInterval: Duration.zero })))
      assert.deepStrictEqual(pruned.tables, simTables(long))
      // Each id keeps exactly one step at or below the oldest checkpoint left (what a rollback to it restores from).
      const safe = pruned.history.reduce((m, h) => h.checkpointId < m ? h.checkpointId : m, pruned.result.committedCheckpointId)
      const atOrBelow = new Map<string, number>()
      for (const h of pruned.history) if (h.checkpointId <= safe) atOrBelow.set(h.id, (atOrBelow.get(h.id) ?? 0) + 1)
      assert.isTrue([...atOrBelow.values()].every((n) => n === 1), `more than one step per id at or below ${safe}`)
      // Unpruned, all 200 blocks' steps would stay; pruned, about the window (20 blocks) plus what came since the last prune.
      const checkpointsKept = new Set(pruned.history.map((h) => h.checkpointId)).size
      assert.isAtMost(checkpointsKept, 20 + 20 + 2, `history kept ${checkpointsKept} checkpoints`)
    }))
})
