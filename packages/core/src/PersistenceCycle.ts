/**
 * PersistenceCycle: the write loop. `commitBatch` queues a processed batch and returns at once; one writer
 * fiber, forked into the layer's scope and admitted by a Semaphore(1), drains queued batches to storage while
 * the next batches are processed. The committed frontier moves only after a write succeeds. A failed write
 * stops the writer for good and reports to Fatal; any other fatal error stops it before its next write.
 */
import { Clock, Context, Deferred, Duration, Effect, Layer, Metric, Queue, Semaphore } from "effect"
import type * as Batch from "./Batch.js"
import { ChainstoreConfig } from "./Config.js"
import { WriteFailed } from "./Errors.js"
import { Fatal } from "./Fatal.js"
import * as Metrics from "./Metrics.js"
import { Storage } from "./Storage.js"
import { Store } from "./Store.js"

export class PersistenceCycle extends Context.Service<PersistenceCycle, {
  /** Queues a processed batch for writing and signals the writer; never waits for the write. */
  readonly commitBatch: (batch: Batch.Batch) => Effect.Effect<void>
  /** Signals the writer (pending batches, a staged rollback or dirty chain metadata). */
  readonly kick: Effect.Effect<void>
  /** Waits until nothing is queued and no write is in flight, or a write has failed. */
  readonly flush: Effect.Effect<void>
  /** A write transaction is running now. */
  readonly isWriting: () => boolean
  /** Signals the writer and waits for its next commit (or its failure). */
  readonly awaitCommit: Effect.Effect<void>
}>()("chainstore/PersistenceCycle") {}

export const make = Effect.gen(function*() {
  const store = yield* Store
  const storage = yield* Storage
  const fatal = yield* Fatal
  const config = yield* ChainstoreConfig
  const permit = yield* Semaphore.make(1)
  const wake = yield* Queue.sliding<void>(1)
  let commitSignal = yield* Deferred.make<void>()
  let writing = false
  let forceMeta = false
  let lastMetaWrite = Number.NEGATIVE_INFINITY
  let metaTimer = false

  const notifyCommit = Effect.gen(function*() {
    const done = commitSignal
    commitSignal = yield* Deferred.make<void>()
    yield* Deferred.succeed(done, undefined)
  })

  const kick = Queue.offer(wake, undefined).pipe(Effect.asVoid)

  /** One write: the next run of batches (with any staged rollback), else chain metadata alone. */
  const writeOnce = Effect.gen(function*() {
    const plan = store.takeWrite()
    if (plan !== undefined) {
      const started = yield* Clock.currentTimeMillis
      yield* storage.writeBatch(plan)
      store.setCommitted(plan.committedCheckpointId, plan.batch.progress)
      for (const p of plan.batch.progress) yield* Metric.update(Metrics.forChain(Metrics.committedBlock, p.chainId), p.progressBlock)
      const rows = plan.entities.reduce((n, e) => n + e.changes.length, 0) + plan.effects.reduce((n, e) => n + e.rows.length, 0)
      yield* Metrics.recordWrite((yield* Clock.currentTimeMillis) - started, rows)
      if (plan.chainMeta !== undefined) lastMetaWrite = yield* Clock.currentTimeMillis
      return
    }
    const now = yield* Clock.currentTimeMillis
    const wait = lastMetaWrite + Duration.toMillis(config.chainMetaInterval) - now
    if (wait > 0 && !forceMeta) {
      // Throttled: come back when the interval has passed.
      if (!metaTimer) {
        metaTimer = true
        yield* Effect.forkDetach(Effect.sleep(Duration.millis(wait)).pipe(Effect.andThen(Effect.sync(() => { metaTimer = false })), Effect.andThen(kick)))
      }
      return
    }
    const meta = store.takeChainMeta()
    if (meta !== undefined) {
      yield* storage.writeChainMeta(meta)
      lastMetaWrite = now
    }
  })

  const metaOnlyThrottled = () => store.queuedBatches() === 0 && metaTimer && !forceMeta

  const writerLoop = Effect.gen(function*() {
    while (true) {
      yield* Queue.take(wake)
      while (!store.hasFailedWrite() && store.hasPendingWrite() && !metaOnlyThrottled() && !(yield* fatal.isFailed)) {
        writing = true
        const result = yield* Effect.result(Semaphore.withPermits(permit, 1)(writeOnce))
        writing = false
        if (result._tag === "Failure") {
          store.markWriteFailed()
          yield* fatal.fail(new WriteFailed({ message: `Failed writing batch to the database: ${result.failure.message}`, cause: result.failure }))
        }
        yield* notifyCommit
      }
    }
  })

  yield* Effect.forkScoped(
    writerLoop.pipe(
      Effect.catchCause((cause) =>
        Effect.gen(function*() {
          store.markWriteFailed()
          yield* fatal.fail(new WriteFailed({ message: "The background writer died", cause }))
          yield* notifyCommit
        })
      )
    )
  )

  const flush: Effect.Effect<void> = Effect.gen(function*() {
    forceMeta = true
    while (!store.hasFailedWrite() && (writing || store.hasPendingWrite())) {
      const next = commitSignal
      yield* kick
      yield* Deferred.await(next)
    }
    forceMeta = false
  })

  return PersistenceCycle.of({
    commitBatch: (batch) => Effect.andThen(Effect.sync(() => store.enqueue(batch)), kick),
    kick,
    flush,
    isWriting: () => writing,
    awaitCommit: Effect.suspend(() => {
      if (store.hasFailedWrite()) return Effect.void
      const next = commitSignal
      return Effect.andThen(kick, Deferred.await(next))
    })
  })
})

export const layer: Layer.Layer<PersistenceCycle, never, Store | Storage | Fatal> = Layer.effect(PersistenceCycle, make)
