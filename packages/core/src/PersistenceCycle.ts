/**
 * PersistenceCycle: the write loop. `commitBatch` queues a processed batch and returns at once; one writer fiber,
 * forked into the layer's scope, drains queued batches to storage while the next batches are processed. Every
 * storage write (batch runs with any staged rollback, chain metadata, history prunes, rollback staging) takes the
 * one write permit, so one write at a time is what the Semaphore enforces, whoever asks.
 *
 * Supervision: a failed write fails the writer fiber with that error and nothing is written after it. `failure`
 * joins the fiber, so whoever races against it (the Processor) ends with that cause; `flush` and `awaitCommit`
 * race against it too, so nobody waits for a writer that is gone.
 */
import { Clock, Context, Deferred, Duration, Effect, Exit, Fiber, FiberHandle, Layer, Metric, Option, PubSub, Queue, Semaphore } from "effect"
import type * as Batch from "./Batch.js"
import { ChainstoreConfig } from "./Config.js"
import { WriteFailed } from "./Errors.js"
import * as Metrics from "./Metrics.js"
import { Storage } from "./Storage.js"
import type { WritePlan } from "./Storage.js"
import { Store } from "./Store.js"

export class PersistenceCycle extends Context.Service<PersistenceCycle, {
  /** Queues a processed batch for writing and signals the writer; never waits for the write. */
  readonly commitBatch: (batch: Batch.Batch) => Effect.Effect<void>
  /** Signals the writer: dirty chain metadata is written once its throttle interval has passed. */
  readonly kick: Effect.Effect<void>
  /** Waits until nothing is queued or staged, no write is in flight and chain metadata is written. */
  readonly flush: Effect.Effect<void, WriteFailed>
  /** Waits for the writer's next commit (at once when nothing is queued or being written). */
  readonly awaitCommit: Effect.Effect<void, WriteFailed>
  /** A batch or a staged rollback is queued or being written: a commit is coming. */
  readonly commitPending: () => boolean
  /**
   * Runs `effect` holding the write permit: no write runs meanwhile (a rollback reads and stages under it).
   * `effect` must not wait for the writer (flush, awaitCommit): the writer needs the permit to answer.
   */
  readonly withWritePermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Prunes history below `safeCheckpointId` in the background under the write permit; one prune at a time. */
  readonly prune: (safeCheckpointId: bigint) => Effect.Effect<void>
  /** The writer's fate: never succeeds; fails with the first failed write. */
  readonly failure: Effect.Effect<never, WriteFailed>
  /** Stops the writer now, a write in flight included (rolled back): nothing queued is written. */
  readonly halt: Effect.Effect<void>
  /** One message per committed write, right after it commits: the committed checkpoint and the entities it wrote. */
  readonly commits: PubSub.PubSub<{ readonly checkpointId: bigint; readonly entities: ReadonlyArray<string> }>
}>()("chainstore/PersistenceCycle") {}

/** What the writer is asked: write what is pending; then tell a flush, or a waiter for the next commit. */
type Message =
  | { readonly _tag: "Kick" }
  | { readonly _tag: "Flush"; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "AwaitCommit"; readonly done: Deferred.Deferred<void> }

const kickMessage: Message = { _tag: "Kick" }

export const make = Effect.gen(function*() {
  const store = yield* Store
  const storage = yield* Storage
  const config = yield* ChainstoreConfig
  const permit = yield* Semaphore.make(1)
  const mailbox = yield* Queue.unbounded<Message>()
  const pruner = yield* FiberHandle.make<void>()
  const metaInterval = Duration.toMillis(config.chainMetaInterval)
  const withWritePermit = Semaphore.withPermits(permit, 1)
  const commits = yield* PubSub.unbounded<{ readonly checkpointId: bigint; readonly entities: ReadonlyArray<string> }>()

  const writeFailed = (what: string) => (cause: { readonly message: string }) =>
    new WriteFailed({ message: `Failed writing ${what} to the database: ${cause.message}`, cause })

  const writePlan = Effect.fn("PersistenceCycle.writePlan")(function*(plan: WritePlan) {
    const started = yield* Clock.currentTimeMillis
    yield* storage.writeBatch(plan).pipe(Effect.mapError(writeFailed("batch")))
    store.commit(plan)
    yield* PubSub.publish(commits, { checkpointId: plan.committedCheckpointId, entities: plan.entities.filter((e) => e.changes.length > 0).map((e) => e.entity) })
    for (const p of plan.batch.progress) yield* Metric.update(Metrics.forChain(Metrics.committedBlock, p.chainId), p.progressBlock)
    let rows = 0
    for (const e of plan.entities) rows += e.changes.length
    for (const e of plan.effects) rows += e.rows.length
    yield* Metrics.recordWrite((yield* Clock.currentTimeMillis) - started, rows)
  })

  const writerLoop = Effect.gen(function*() {
    let lastMetaWrite = Number.NEGATIVE_INFINITY
    let commitWaiters: Array<Deferred.Deferred<void>> = []
    while (true) {
      // Dirty chain metadata held back by the throttle: wake up when it may be written, message or not.
      const metaDue = store.hasDirtyChainMeta() ? lastMetaWrite + metaInterval - (yield* Clock.currentTimeMillis) : undefined
      const messages = metaDue === undefined ? yield* Queue.takeAll(mailbox) :
        Option.getOrElse(yield* Effect.timeoutOption(Queue.takeAll(mailbox), Duration.millis(Math.max(0, metaDue))), () => [kickMessage])
      const flushes: Array<Deferred.Deferred<void>> = []
      for (const message of messages) {
        if (message._tag === "Flush") flushes.push(message.done)
        else if (message._tag === "AwaitCommit") commitWaiters.push(message.done)
      }
      while (store.hasPendingBatches()) {
        const written = yield* withWritePermit(Effect.suspend(() => {
          const plan = store.takeWrite()
          return plan === undefined ? Effect.succeed(undefined) : Effect.as(writePlan(plan), plan)
        }))
        if (written?.chainMeta !== undefined) lastMetaWrite = yield* Clock.currentTimeMillis
        for (const waiter of commitWaiters) yield* Deferred.succeed(waiter, undefined)
        commitWaiters = []
      }
      // Nothing is queued or in flight: a waiter for the next commit would wait for nothing.
      for (const waiter of commitWaiters) yield* Deferred.succeed(waiter, undefined)
      commitWaiters = []
      const now = yield* Clock.currentTimeMillis
      if (store.hasDirtyChainMeta() && (flushes.length > 0 || now - lastMetaWrite >= metaInterval)) {
        const meta = store.takeChainMeta()
        if (meta !== undefined) yield* withWritePermit(storage.writeChainMeta(meta)).pipe(Effect.mapError(writeFailed("chain metadata")))
        lastMetaWrite = now
      }
      for (const done of flushes) yield* Deferred.succeed(done, undefined)
    }
  }).pipe(
    // A defect in the writer (a bug, not a storage error) is still the run's failure, named as a failed write.
    Effect.catchDefect((defect) => Effect.fail(new WriteFailed({ message: `The background writer died: ${String(defect)}`, cause: defect }))),
    // Nothing is written after a failed write: a prune in flight goes with the writer.
    Effect.onError(() => FiberHandle.clear(pruner))
  )

  const writer = yield* Effect.forkScoped(writerLoop)
  // The writer's failure; a writer halted on purpose (or closed with the scope) ends nothing by itself.
  const failure: Effect.Effect<never, WriteFailed> = Effect.flatMap(Fiber.await(writer), (exit) =>
    Exit.hasInterrupts(exit) ? Effect.never : exit)

  /** Sends the writer a request and waits for its answer, or for the writer's failure. */
  const ask = (tag: "Flush" | "AwaitCommit"): Effect.Effect<void, WriteFailed> =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<void>()
      yield* Queue.offer(mailbox, { _tag: tag, done })
      return yield* Effect.raceFirst(Deferred.await(done), failure)
    })

  const kick = Queue.offer(mailbox, kickMessage).pipe(Effect.asVoid)

  return PersistenceCycle.of({
    commitBatch: (batch) => Effect.andThen(Effect.sync(() => store.enqueue(batch)), kick),
    kick,
    flush: ask("Flush"),
    awaitCommit: ask("AwaitCommit"),
    commitPending: () => store.hasPendingBatches() || store.writeInFlight(),
    withWritePermit,
    prune: (safe) =>
      FiberHandle.run(pruner, { onlyIfMissing: true })(
        withWritePermit(storage.pruneHistory(safe)).pipe(
          Effect.catch((e) => Effect.logWarning(`History prune failed (will retry): ${e.message}`))
        )
      ).pipe(Effect.asVoid),
    failure,
    halt: Effect.andThen(FiberHandle.clear(pruner), Fiber.interrupt(writer)),
    commits
  })
})

export const layer: Layer.Layer<PersistenceCycle, never, Store | Storage> = Layer.effect(PersistenceCycle, make)
