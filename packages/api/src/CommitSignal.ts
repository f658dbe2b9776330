/**
 * CommitSignal: tells live queries that a write committed. In `chainstore run` it is the writer's own signal
 * (PersistenceCycle.commits: the checkpoint and the entities written). In `chainstore serve` another process
 * writes, possibly to a primary this process reads through a replica: LISTEN/NOTIFY does not reach hot standbys,
 * so the committed checkpoint id is polled instead (only while someone listens), and every entity counts as changed.
 */
import { Context, Duration, Effect, Layer, PubSub, Ref, type Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { PersistenceCycle } from "@chainstore/core"
import * as ReadSql from "./ReadSql.js"

export interface Commit {
  readonly checkpointId: bigint
  /** The entities the commit wrote; undefined when not known (any may have changed). */
  readonly entities: ReadonlyArray<string> | undefined
}

export class CommitSignal extends Context.Service<CommitSignal, {
  /** Subscribes now: the stream carries every commit from this point on. */
  readonly subscribe: Effect.Effect<Stream.Stream<Commit>, never, Scope.Scope>
}>()("chainstore/api/CommitSignal") {}

/** The in-process writer's commits (`chainstore run`). */
export const layerPersistenceCycle: Layer.Layer<CommitSignal, never, PersistenceCycle.PersistenceCycle> = Layer.effect(
  CommitSignal,
  Effect.gen(function*() {
    const cycle = yield* PersistenceCycle.PersistenceCycle
    return CommitSignal.of({
      subscribe: Effect.map(PubSub.subscribe(cycle.commits), (subscription) =>
        Stream.fromSubscription(subscription).pipe(Stream.map((c): Commit => ({ checkpointId: c.checkpointId, entities: c.entities }))))
    })
  })
)

export interface PollingOptions {
  readonly schema: string
  /** How often the committed checkpoint is read while a live query listens (default 500 ms). */
  readonly interval?: Duration.Input | undefined
}

/** Commits of another process, seen by polling `chainstore_state` (`chainstore serve`). */
export const layerPolling = (options: PollingOptions): Layer.Layer<CommitSignal, never, SqlClient.SqlClient> =>
  Layer.effect(
    CommitSignal,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pubsub = yield* PubSub.unbounded<Commit>()
      const listeners = yield* Ref.make(0)
      const statement = ReadSql.committed(options.schema)
      let last: bigint | undefined
      const poll = Effect.gen(function*() {
        if ((yield* Ref.get(listeners)) === 0) {
          last = undefined
          return
        }
        const rows = yield* sql.unsafe<{ readonly committed: string }>(statement.text, statement.params)
        const committed = BigInt(rows[0]?.committed ?? "0")
        // The first poll after a quiet time also signals: a commit may have landed between a subscription and it.
        if (committed !== last) yield* PubSub.publish(pubsub, { checkpointId: committed, entities: undefined })
        last = committed
      }).pipe(Effect.catch((error) => Effect.logWarning(`Polling the committed checkpoint failed: ${error.message}`)))
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(poll, Effect.sleep(options.interval ?? Duration.millis(500)))))
      return CommitSignal.of({
        subscribe: Effect.gen(function*() {
          const subscription = yield* PubSub.subscribe(pubsub)
          yield* Effect.acquireRelease(Ref.update(listeners, (n) => n + 1), () => Ref.update(listeners, (n) => n - 1))
          return Stream.fromSubscription(subscription)
        })
      })
    })
  )

/** No commits ever (a read-only API over data nobody writes). */
export const layerNone: Layer.Layer<CommitSignal> = Layer.succeed(CommitSignal, CommitSignal.of({ subscribe: Effect.succeed(Stream.never) }))
