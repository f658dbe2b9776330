/**
 * Processor: the main loop. awaitCapacity → next batch from the fetchers → preload → handlers in checkpoint
 * order → commitBatch (the write happens in the background). Once an exit is decided it takes no more batches;
 * it then flushes. The loop races the writer fiber's fate, so a failed write ends the run at once with that
 * cause; a handler, source or reorg error ends it as the loop's own failure. One failure channel for all.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Option, Scope } from "effect"
import * as Batch from "./Batch.js"
import { CapacityGate } from "./CapacityGate.js"
import { ChainCache } from "./ChainCache.js"
import { ChainstoreConfig } from "./Config.js"
import { EffectCache } from "./EffectCache.js"
import type * as Entity from "./Entity.js"
import { HandlerError } from "./Errors.js"
import type * as Errors from "./Errors.js"
import { type Event, isBlockItem, type Item } from "./Event.js"
import type { Context as HandlerContext } from "./HandlerContext.js"
import * as Indexer from "./Indexer.js"
import * as Fetcher from "./internal/Fetcher.js"
import * as HandlerContexts from "./internal/HandlerContexts.js"
import * as Metrics from "./Metrics.js"
import { PersistenceCycle } from "./PersistenceCycle.js"
import * as ReadContract from "./ReadContract.js"
import type { ChainSource } from "./Source.js"
import { Storage } from "./Storage.js"
import { Store } from "./Store.js"

export interface Options {
  /** Stop each chain at its head instead of following it. */
  readonly exitAtHead?: boolean
  /** Pause between polls of a source that has nothing new. */
  readonly pollInterval?: Duration.Input
}

export interface ChainReport {
  readonly chainId: number
  readonly processedBlock: number
  readonly head: number
  readonly endBlock: number | undefined
  readonly eventsProcessed: number
}

export interface RunResult {
  /** "ended": every chain reached its end; "stopped": `stop` was called. */
  readonly reason: "ended" | "stopped"
  readonly committedCheckpointId: bigint
  readonly chains: ReadonlyArray<ChainReport>
}

export class Processor extends Context.Service<Processor, {
  /** Processes until every chain ends or `stop` is called, then flushes. Fails with the first fatal error. */
  readonly run: Effect.Effect<RunResult, Errors.Fatal>
  /** Takes no more batches; `run` flushes and returns. */
  readonly stop: Effect.Effect<void>
  /** Every chain has reached its head or end block at least once. */
  readonly isReady: Effect.Effect<boolean>
  readonly chains: Effect.Effect<ReadonlyArray<ChainReport>>
}>()("chainstore/Processor") {}

export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const store = yield* Store
    const cycle = yield* PersistenceCycle
    const gate = yield* CapacityGate
    const storage = yield* Storage
    const config = yield* ChainstoreConfig
    const scope = yield* Scope.Scope
    const effectCache = yield* EffectCache
    const indexer = store.indexer
    const fetchOptions: Fetcher.Options = {
      batchSize: config.batchSize,
      fetchBlockRange: config.fetchBlockRange,
      exitAtHead: options.exitAtHead ?? false
    }
    const pollInterval = options.pollInterval ?? Duration.millis(500)

    const sources = new Map<number, ChainSource>()
    // No ChainCache provided: sources fetch everything, as library users and tests expect.
    const cache = Option.getOrUndefined(yield* Effect.serviceOption(ChainCache))
    const cursors = yield* Effect.forEach(indexer.chains, (chain) =>
      Effect.gen(function*() {
        const contracts = yield* Fetcher.contractsOf(indexer, chain)
        const source = yield* chain.source.make({
          chainId: chain.id,
          contracts,
          blockHandlers: Indexer.blockHandlerInfos(chain),
          reorgWindow: chain.reorgWindow ?? 200,
          cache
        }).pipe(Scope.provide(scope))
        sources.set(chain.id, source)
        const resumed = store.resumedChains.find((c) => c.chainId === chain.id)
        const window = chain.reorgWindow ?? 200
        const hashes = resumed === undefined ? [] : yield* storage.storedBlockHashes(chain.id, resumed.progressBlock - window)
        const registered = yield* storage.loadAddresses(chain.id)
        return Fetcher.makeCursor(chain, contracts, source, resumed, hashes, registered)
      }))
    const contexts = yield* HandlerContexts.make(ReadContract.bind(sources))
    let stopRequested = false
    // Preload rounds per batch: each resolves the effects the previous one stopped at.
    const preloadRounds = 3

    /** The run of an item's handler (its event's, or its block handler) with `ctx`; undefined when none handles it. */
    const runHandler = (item: Item, ctx: HandlerContext<ReadonlyArray<Entity.Any>>): Effect.Effect<void, unknown> | undefined => {
      if (isBlockItem(item)) return indexer.blockHandlers.get(item.name)?.(item, ctx)
      return indexer.handlers.get(item.contractName)?.get(item.eventName)?.(item, ctx)
    }
    /** The handler function an item runs (its identity keys per-handler bookkeeping). */
    const handlerOf = (item: Item): unknown =>
      isBlockItem(item) ? indexer.blockHandlers.get(item.name) : indexer.handlers.get(item.contractName)?.get(item.eventName)
    const isHandled = (item: Item): boolean => handlerOf(item) !== undefined
    const userEffects = indexer.effects.some((e) => e.name !== ReadContract.effect.name)

    const cursorOf = (chainId: number) => cursors.find((c) => c.chainId === chainId)!

    // While every table is complete in memory, a handler whose runs after an effect's load recorded nothing new in a
    // batch (what follows the effect was in memory already) is not run again after loads for the next `rerunPause`
    // batches: the real pass has what it needs. Once a table is not complete, reruns batch its loads again.
    const rerunPause = 16
    const rerunsPausedUntil = new Map<unknown, number>()
    let batchNumber = 0

    /** The preload pass: runs the handlers only to record what they read, then loads it all at once. */
    const preload = Effect.fn("Processor.preload")(function*(items: ReadonlyArray<Item>, checkpointIds: ReadonlyArray<bigint>) {
      batchNumber++
      let pending: Array<number> = []
      for (let i = 0; i < items.length; i++) if (isHandled(items[i]!)) pending.push(i)
      const allComplete = indexer.entities.every((e) => store.isComplete(e.name))
      if (!allComplete) rerunsPausedUntil.clear()
      // Per handler, in this batch's reruns: true once one recorded something.
      const fruitful = new Map<unknown, boolean>()
      for (let round = 0; round < preloadRounds && pending.length > 0; round++) {
        const stopped: Array<number> = []
        for (const i of pending) {
          const item = items[i]!
          const handler = round === 0 || !allComplete ? undefined : handlerOf(item)
          if (handler !== undefined && (rerunsPausedUntil.get(handler) ?? 0) >= batchNumber) continue
          contexts.setCurrent(item, checkpointIds[i]!)
          const before = contexts.recordings()
          // Preload runs are best effort: they only record what to load.
          yield* Effect.exit(runHandler(item, contexts.preload)!)
          if (handler !== undefined && fruitful.get(handler) !== true) fruitful.set(handler, contexts.recordings() > before)
          if (contexts.preloadStopped()) stopped.push(i)
        }
        yield* contexts.load
        pending = stopped
      }
      for (const [handler, found] of fruitful) {
        if (found) rerunsPausedUntil.delete(handler)
        else rerunsPausedUntil.set(handler, batchNumber + rerunPause)
      }
    })

    /**
     * Preload, then the real pass; a handler failure names the event. A registration cuts the batch after its block
     * (later blocks are fetched again with the new address), and the block's events of the new address are fetched
     * now and handled in log order with the block's other events, in this batch: the registration, its children's
     * events in that block and the block's progress commit together. Children's events logged before the registering
     * event (a constructor's) mean the block is handled again from its start, its entity changes undone first.
     */
    const processBatch = Effect.fn("Processor.processBatch")(function*(batch: Batch.Batch) {
      // Copied only when a factory child's events grow a block (rare): the common batch is read as it is.
      let items = batch.items
      let grown: { readonly items: Array<Item>; readonly counts: Array<number> } | undefined
      const checkpointIds = Batch.itemCheckpointIds(batch)
      contexts.beginBatch()
      const grow = (at: number, from: number, children: ReadonlyArray<Event>) => {
        grown ??= { items: [...batch.items], counts: [...batch.checkpointEventsProcessed] }
        Batch.mergeIntoBlock(grown.items, checkpointIds, grown.counts, at, from, children)
        items = grown.items
      }
      // With no effects to resolve (no user effect, no contract read so far) and every table complete in memory, a
      // preload would find nothing to load.
      if (userEffects || contexts.readsContracts() || indexer.entities.some((e) => !store.isComplete(e.name))) yield* preload(items, checkpointIds)
      store.beginBatch(batch)
      const registrations: Array<Batch.Registration> = []
      let cut: Item | undefined
      let end: number | undefined
      let blockStart = 0
      for (let i = 0; i < items.length; i++) {
        const event = items[i]!
        if (i > 0 && checkpointIds[i] !== checkpointIds[i - 1]) blockStart = i
        if (cut !== undefined && (event.chainId !== cut.chainId || event.blockNumber !== cut.blockNumber)) {
          end = i
          break
        }
        if (!isHandled(event)) continue
        contexts.setCurrent(event, checkpointIds[i]!)
        const exit = yield* Effect.exit(runHandler(event, contexts.real)!)
        if (exit._tag === "Failure") return yield* HandlerError.of(event, exit.cause)
        const registered = contexts.takeRegistrations()
        if (registered.length === 0) continue
        const cursor = cursorOf(event.chainId)
        const fresh = Fetcher.freshRegistrations(cursor, registered)
        // An address already indexed changes nothing: no cut, the fetched-ahead blocks stay good.
        if (fresh.length === 0) continue
        cut = event
        Fetcher.addRegistrations(cursor, fresh)
        for (const r of fresh) registrations.push(r)
        const children = yield* Fetcher.fetchRegistered(cursor, event.blockNumber, fresh)
        if (children.some((e) => e.logIndex < event.logIndex)) {
          store.undoCheckpoint(checkpointIds[i]!)
          grow(i, blockStart, children)
          i = blockStart - 1
        } else if (children.length > 0) {
          grow(i, i + 1, children)
        }
      }
      if (cut === undefined) return batch
      const kept = grown === undefined ? batch : { ...batch, items: grown.items, checkpointEventsProcessed: grown.counts }
      return { ...Fetcher.truncate(cursors, kept, end ?? items.length), registrations }
    })

    /** Rolls every chain back to the reorg's fork point: flush, read the diff from history, stage it, rewind. */
    const rollback = Effect.fn("Processor.rollback")(function*(reorg: { readonly chainId: number; readonly forkBlock: number; readonly detectedAt: number }) {
      const cursor = cursorOf(reorg.chainId)
      yield* Effect.logWarning(`Reorg on chain ${reorg.chainId}: block ${reorg.detectedAt} changed; rolling back to block ${reorg.forkBlock}`)
      yield* Metric.update(Metrics.reorgs, 1)
      yield* Metric.update(Metrics.rollbackDepth, reorg.detectedAt - reorg.forkBlock)
      if (cursor.progress <= reorg.forkBlock) {
        // Only fetched-ahead blocks were on the fork: nothing processed to undo.
        Fetcher.rewind(cursor, reorg.forkBlock)
        return
      }
      yield* cycle.flush
      // Read and stage under the write permit: the history read is the state the staged diff is written over.
      yield* cycle.withWritePermit(Effect.gen(function*() {
        const target = yield* storage.rollbackTarget(reorg.chainId, reorg.forkBlock)
        const diff = yield* storage.readRollbackDiff(target)
        const progress: Array<Batch.ChainProgress> = []
        for (const c of cursors) {
          const entry = diff.chains.find((d) => d.chainId === c.chainId)
          const block = c === cursor ? Math.min(entry?.progressBlock ?? reorg.forkBlock, reorg.forkBlock) : entry?.progressBlock
          if (block === undefined || block >= c.progress) continue
          Fetcher.rewind(c, block)
          c.eventsProcessed -= entry?.eventsProcessedDiff ?? 0
          progress.push({ chainId: c.chainId, progressBlock: block, sourceBlock: c.head, eventsProcessed: c.eventsProcessed, firstEventBlock: c.firstEventBlock })
        }
        store.stageRollback(target, diff, progress)
      }))
      // Write the rollback now, so stored effect rows of the fork are gone before handlers ask for them again.
      yield* cycle.flush
    })

    /** Deletes history no rollback can reach any more; in the background, throttled, one prune at a time. */
    let lastPrune = Number.NEGATIVE_INFINITY
    const maybePrune = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const safe = Fetcher.safeCheckpoint(cursors)
      if (safe === undefined || safe > store.committed() || now - lastPrune < Duration.toMillis(config.pruneInterval)) return
      lastPrune = now
      yield* cycle.prune(safe)
    })

    const report = (): ReadonlyArray<ChainReport> =>
      cursors.map((c) => ({ chainId: c.chainId, processedBlock: c.progress, head: c.head, endBlock: c.endBlock, eventsProcessed: c.eventsProcessed }))

    const loop = Effect.gen(function*() {
      while (!stopRequested) {
        yield* gate.awaitCapacity
        if (stopRequested) break
        const next = yield* Fetcher.nextBatch(cursors, store.processed(), fetchOptions).pipe(Effect.withSpan("Fetcher.nextBatch"))
        if (next._tag === "Done") break
        if (next._tag === "Reorg") {
          yield* rollback(next)
          continue
        }
        if (next._tag === "Idle") {
          store.setChainMeta(Fetcher.chainMeta(cursors))
          yield* cycle.kick
          yield* Effect.sleep(pollInterval)
          continue
        }
        const started = yield* Clock.currentTimeMillis
        const batch = yield* processBatch(next.batch)
        // Metadata first, so the batch's write carries it.
        store.setChainMeta(Fetcher.chainMeta(cursors))
        yield* cycle.commitBatch(batch)
        if (config.inlineWrites) yield* cycle.flush
        yield* Metric.update(Metrics.processingDuration, (yield* Clock.currentTimeMillis) - started)
        yield* Metric.update(Metrics.eventsProcessed, batch.items.length)
        yield* Metric.update(Metrics.batchesProcessed, 1)
        yield* Metric.update(Metrics.writeQueueDepth, store.queuedBatches())
        yield* effectCache.publishMetrics
        for (const p of batch.progress) yield* Metric.update(Metrics.forChain(Metrics.processedBlock, p.chainId), p.progressBlock)
        yield* maybePrune
      }
      yield* cycle.flush
      yield* effectCache.publishMetrics
      return {
        reason: stopRequested ? "stopped" : "ended",
        committedCheckpointId: store.committed(),
        chains: report()
      } satisfies RunResult
    })

    /**
     * How the loop's own failure ends the run. The batches processed before it are valid: they are written first
     * (the failing batch writes nothing). A reorg deeper than the window is the exception: nothing can undo what is
     * queued, so the writer stops at once.
     */
    const onFailure = (error: Errors.Fatal): Effect.Effect<never, Errors.Fatal> =>
      error._tag === "WriteFailed" ? Effect.fail(error) :
      error._tag === "DeepReorgError" ? Effect.andThen(cycle.halt, Effect.fail(error)) :
      Effect.andThen(cycle.flush, Effect.fail(error))

    return Processor.of({
      run: Effect.raceFirst(Effect.catch(loop, onFailure), cycle.failure),
      stop: Effect.sync(() => {
        stopRequested = true
      }),
      isReady: Effect.sync(() => cursors.every((c) => c.readyAt !== undefined)),
      chains: Effect.sync(report)
    })
  })

export const layer = (
  options: Options = {}
): Layer.Layer<Processor, Errors.SourceError | Errors.StorageError, Store | PersistenceCycle | CapacityGate | EffectCache | Storage> =>
  Layer.effect(Processor, make(options))
