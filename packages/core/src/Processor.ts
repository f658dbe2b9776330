/**
 * Processor: the main loop. awaitCapacity → next batch from the fetchers → preload → handlers in checkpoint
 * order → commitBatch (the write happens in the background). Once an exit is decided it takes no more batches;
 * it then flushes. It races against Fatal, so a failed write ends the run at once with that cause.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Scope } from "effect"
import * as Batch from "./Batch.js"
import { CapacityGate } from "./CapacityGate.js"
import { ChainstoreConfig } from "./Config.js"
import { EffectCache } from "./EffectCache.js"
import { HandlerError } from "./Errors.js"
import type * as Errors from "./Errors.js"
import type { Event } from "./Event.js"
import { Fatal } from "./Fatal.js"
import * as Fetcher from "./Fetcher.js"
import * as HandlerContext from "./HandlerContext.js"
import * as Metrics from "./Metrics.js"
import { PersistenceCycle } from "./PersistenceCycle.js"
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
    const fatal = yield* Fatal
    const storage = yield* Storage
    const config = yield* ChainstoreConfig
    const scope = yield* Scope.Scope
    const contexts = yield* HandlerContext.make
    const effectCache = yield* EffectCache
    const indexer = store.indexer
    const fetchOptions: Fetcher.Options = {
      batchSize: config.batchSize,
      fetchBlockRange: config.fetchBlockRange,
      exitAtHead: options.exitAtHead ?? false
    }
    const pollInterval = options.pollInterval ?? Duration.millis(500)

    const cursors = yield* Effect.forEach(indexer.chains, (chain) =>
      Effect.gen(function*() {
        const contracts = Fetcher.contractsOf(indexer, chain)
        const source = yield* chain.source.make({ chainId: chain.id, contracts }).pipe(Scope.provide(scope))
        const resumed = store.resumedChains.find((c) => c.chainId === chain.id)
        const window = chain.reorgWindow ?? 200
        const hashes = resumed === undefined ? [] : yield* storage.storedBlockHashes(chain.id, resumed.progressBlock - window)
        const registered = yield* storage.loadAddresses(chain.id)
        return Fetcher.makeCursor(chain, contracts, source, resumed, hashes, registered)
      }))
    let stopRequested = false
    // Preload rounds per batch: each resolves the effects the previous one stopped at.
    const preloadRounds = 3

    const handlerFor = (event: Event) => indexer.handlers.get(event.contractName)?.get(event.eventName)

    /** Preload, then the real pass; a handler failure names the event. */
    const processBatch = Effect.fn("Processor.processBatch")(function*(batch: Batch.Batch) {
      const checkpointIds = Batch.itemCheckpointIds(batch)
      const items = batch.items
      const registrations: Array<Batch.Registration> = []
      let pending: Array<number> = []
      // With no effects to resolve and every table complete in memory, a preload would find nothing to load.
      const preload = indexer.effects.length > 0 || indexer.entities.some((e) => !store.isComplete(e.name))
      if (preload) for (let i = 0; i < items.length; i++) if (handlerFor(items[i]!) !== undefined) pending.push(i)
      for (let round = 0; round < preloadRounds && pending.length > 0; round++) {
        const stopped: Array<number> = []
        for (const i of pending) {
          contexts.setCurrent(items[i]!, checkpointIds[i]!)
          // Preload runs are best effort: they only record what to load.
          yield* Effect.exit(handlerFor(items[i]!)!(items[i]!, contexts.preload))
          if (contexts.preloadStopped()) stopped.push(i)
        }
        yield* contexts.load
        pending = stopped
      }
      store.beginBatch(batch)
      // A registration cuts the batch after its block: later blocks are fetched again with the new address.
      let cut: Event | undefined
      let end = items.length
      for (let i = 0; i < items.length; i++) {
        const event = items[i]!
        if (cut !== undefined && (event.chainId !== cut.chainId || event.blockNumber !== cut.blockNumber)) {
          end = i
          break
        }
        const handler = handlerFor(event)
        if (handler === undefined) continue
        contexts.setCurrent(event, checkpointIds[i]!)
        const exit = yield* Effect.exit(handler(event, contexts.real))
        const failure = exit._tag === "Failure" ? exit.cause : undefined
        const registered = contexts.takeRegistrations()
        const unknown = registered.find((r) => !cursors.find((c) => c.chainId === r.chainId)!.contracts.some((k) => k.name === r.contractName))
        if (failure !== undefined || unknown !== undefined) {
          return yield* new HandlerError({
            chainId: event.chainId,
            blockNumber: event.blockNumber,
            logIndex: event.logIndex,
            transactionHash: event.transactionHash,
            handler: `${event.contractName}.${event.eventName}`,
            cause: failure ?? `addContract: chain ${event.chainId} has no contract named "${unknown!.contractName}"`
          })
        }
        if (registered.length > 0) {
          cut = event
          registrations.push(...registered)
        }
      }
      if (cut === undefined) return batch
      const truncated = Fetcher.truncate(cursors, batch, end)
      for (const cursor of cursors) {
        Fetcher.addRegistrations(cursor, registrations.filter((r) => r.chainId === cursor.chainId), true)
      }
      return { ...truncated, registrations }
    })

    /** Rolls every chain back to the reorg's fork point: flush, read the diff from history, stage it, rewind. */
    const rollback = Effect.fn("Processor.rollback")(function*(reorg: { readonly chainId: number; readonly forkBlock: number; readonly detectedAt: number }) {
      const cursor = cursors.find((c) => c.chainId === reorg.chainId)!
      yield* Effect.logWarning(`Reorg on chain ${reorg.chainId}: block ${reorg.detectedAt} changed; rolling back to block ${reorg.forkBlock}`)
      yield* Metric.update(Metrics.reorgs, 1)
      yield* Metric.update(Metrics.rollbackDepth, reorg.detectedAt - reorg.forkBlock)
      if (cursor.progress <= reorg.forkBlock) {
        // Only fetched-ahead blocks were on the fork: nothing processed to undo.
        Fetcher.rewind(cursor, reorg.forkBlock)
        return
      }
      yield* cycle.flush
      if (store.hasFailedWrite()) return yield* fatal.await
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
      // Write the rollback now, so stored effect rows of the fork are gone before handlers ask for them again.
      yield* cycle.flush
    })

    /** Deletes history no rollback can reach any more; in the background, at most one at a time. */
    let pruning = false
    let lastPrune = 0
    const maybePrune = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const safe = Fetcher.safeCheckpoint(cursors)
      if (pruning || safe === undefined || safe > store.committed() || now - lastPrune < Duration.toMillis(config.pruneInterval)) return
      pruning = true
      lastPrune = now
      yield* storage.pruneHistory(safe).pipe(
        Effect.catch((e) => Effect.logWarning(`History prune failed (will retry): ${e.message}`)),
        Effect.ensuring(Effect.sync(() => { pruning = false })),
        Effect.forkIn(scope)
      )
    })

    const report = (): ReadonlyArray<ChainReport> =>
      cursors.map((c) => ({ chainId: c.chainId, processedBlock: c.progress, head: c.head, endBlock: c.endBlock, eventsProcessed: c.eventsProcessed }))

    const loop = Effect.gen(function*() {
      while (!stopRequested) {
        yield* gate.awaitCapacity
        if (stopRequested) break
        const next = yield* Fetcher.nextBatch(cursors, store.processed(), fetchOptions).pipe(
          Effect.withSpan("Fetcher.nextBatch"),
          // A reorg deeper than the window: stop every write now, since nothing can undo what is queued.
          Effect.catchTag("DeepReorgError", (e) => Effect.andThen(fatal.fail(e), fatal.await))
        )
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
        const processed = yield* Effect.result(processBatch(next.batch))
        if (processed._tag === "Failure") {
          // The batches before this one are valid: write them; this one writes nothing.
          yield* cycle.flush
          return yield* Effect.fail(processed.failure)
        }
        const batch = processed.success
        yield* cycle.commitBatch(batch)
        if (config.inlineWrites) yield* cycle.flush
        store.setChainMeta(Fetcher.chainMeta(cursors))
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
      // A write that failed during the flush has reported to Fatal: surface it rather than end cleanly.
      if (store.hasFailedWrite()) return yield* fatal.await
      return {
        reason: stopRequested ? "stopped" : "ended",
        committedCheckpointId: store.committed(),
        chains: report()
      } satisfies RunResult
    })

    return Processor.of({
      run: Effect.raceFirst(loop, fatal.await),
      stop: Effect.sync(() => {
        stopRequested = true
      }),
      isReady: Effect.sync(() => cursors.every((c) => c.readyAt !== undefined)),
      chains: Effect.sync(report)
    })
  })

export const layer = (
  options: Options = {}
): Layer.Layer<Processor, Errors.SourceError | Errors.StorageError, Store | PersistenceCycle | CapacityGate | Fatal | EffectCache | Storage> =>
  Layer.effect(Processor, make(options))
