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
    const config = yield* ChainstoreConfig
    const scope = yield* Scope.Scope
    const contexts = yield* HandlerContext.make
    const indexer = store.indexer
    const fetchOptions: Fetcher.Options = {
      batchSize: config.batchSize,
      fetchBlockRange: config.fetchBlockRange,
      exitAtHead: options.exitAtHead ?? false
    }
    const pollInterval = options.pollInterval ?? Duration.millis(500)

    const cursors = yield* Effect.forEach(indexer.chains, (chain) =>
      Effect.map(
        chain.source.make({ chainId: chain.id, contracts: Fetcher.contractsOf(indexer, chain) }).pipe(Scope.provide(scope)),
        (source) => Fetcher.makeCursor(chain, source, store.resumedChains.find((c) => c.chainId === chain.id))
      ))
    let stopRequested = false
    // Preload rounds per batch: each resolves the effects the previous one stopped at.
    const preloadRounds = 3

    const handlerFor = (event: Event) => indexer.handlers.get(event.contractName)?.get(event.eventName)

    /** Preload, then the real pass; a handler failure names the event. */
    const processBatch = Effect.fn("Processor.processBatch")(function*(batch: Batch.Batch) {
      const checkpointIds = Batch.itemCheckpointIds(batch)
      const items = batch.items
      let pending: Array<number> = []
      for (let i = 0; i < items.length; i++) if (handlerFor(items[i]!) !== undefined) pending.push(i)
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
      for (let i = 0; i < items.length; i++) {
        const event = items[i]!
        const handler = handlerFor(event)
        if (handler === undefined) continue
        contexts.setCurrent(event, checkpointIds[i]!)
        const exit = yield* Effect.exit(handler(event, contexts.real))
        if (exit._tag === "Failure") {
          return yield* new HandlerError({
            chainId: event.chainId,
            blockNumber: event.blockNumber,
            logIndex: event.logIndex,
            transactionHash: event.transactionHash,
            handler: `${event.contractName}.${event.eventName}`,
            cause: exit.cause
          })
        }
      }
    })

    const report = (): ReadonlyArray<ChainReport> =>
      cursors.map((c) => ({ chainId: c.chainId, processedBlock: c.progress, head: c.head, eventsProcessed: c.eventsProcessed }))

    const loop = Effect.gen(function*() {
      while (!stopRequested) {
        yield* gate.awaitCapacity
        if (stopRequested) break
        const next = yield* Fetcher.nextBatch(cursors, store.processed(), fetchOptions)
        if (next._tag === "Done") break
        if (next._tag === "Idle") {
          store.setChainMeta(Fetcher.chainMeta(cursors))
          yield* cycle.kick
          yield* Effect.sleep(pollInterval)
          continue
        }
        const batch = next.batch
        const started = yield* Clock.currentTimeMillis
        const failure = yield* Effect.flip(processBatch(batch)).pipe(Effect.option)
        if (failure._tag === "Some") {
          // The batches before this one are valid: write them; this one writes nothing.
          yield* cycle.flush
          return yield* Effect.fail(failure.value)
        }
        yield* cycle.commitBatch(batch)
        store.setChainMeta(Fetcher.chainMeta(cursors))
        yield* Metric.update(Metrics.processingDuration, (yield* Clock.currentTimeMillis) - started)
        yield* Metric.update(Metrics.eventsProcessed, batch.items.length)
        yield* Metric.update(Metrics.batchesProcessed, 1)
        yield* Metric.update(Metrics.writeQueueDepth, store.queuedBatches())
        for (const p of batch.progress) yield* Metric.update(Metrics.forChain(Metrics.processedBlock, p.chainId), p.progressBlock)
      }
      yield* cycle.flush
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
): Layer.Layer<Processor, Errors.SourceError, Store | PersistenceCycle | CapacityGate | Fatal | EffectCache | Storage> =>
  Layer.effect(Processor, make(options))
