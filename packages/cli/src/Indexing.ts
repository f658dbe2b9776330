/**
 * Indexing: one run of a loaded indexer as the CLI drives it — its database, metrics and query API server, progress
 * display, and the summary it ends with. `run` makes one; `dev` makes one per build and stops it on a reload.
 */
import { Clock, Effect, Layer, Option, type Scope } from "effect"
import { CapacityGate, Config, type Indexer, Processor, Runtime, Store } from "@chainstore/core"
import * as ApiServer from "./ApiServer.js"
import * as BuildReset from "./BuildReset.js"
import * as Database from "./Database.js"
import * as MetricsServer from "./MetricsServer.js"
import * as Progress from "./Progress.js"

export interface Options extends Database.Options {
  readonly exitAtHead: boolean
  readonly objectsTarget: Option.Option<number>
  readonly metricsPort: number
  readonly metricsHost: string
  readonly inlineWrites: boolean
}

export interface Hooks {
  /** Tables of another build are dropped and indexed again, instead of failing the run. */
  readonly resetOnNewBuild: boolean
  /** Runs in the run's scope once it processes, given the way to stop it cleanly (take no more batches, flush). */
  readonly onStart: (stop: Effect.Effect<void>) => Effect.Effect<void, never, Scope.Scope>
  /** Once the chains end, the run's servers (metrics, query API) stay up until this completes. */
  readonly holdAfterEnd?: Effect.Effect<void>
}

/** Indexes until the chains end or the run is stopped, then logs where each chain stopped. */
export const index = Effect.fn("Indexing.index")(function*(indexer: Indexer.Indexer, options: Options, hooks: Hooks) {
  const config = Config.layerFromEnv({
    ...(Option.isSome(options.objectsTarget) ? { objectsTarget: options.objectsTarget.value } : {}),
    ...(options.inlineWrites ? { inlineWrites: true } : {})
  })
  const started = yield* Clock.currentTimeMillis
  yield* Effect.logInfo(`Indexing into ${Database.describe(options)}`)
  const once = Effect.gen(function*() {
    const processor = yield* Processor.Processor
    const store = yield* Store.Store
    const { objectsTarget } = yield* Config.ChainstoreConfig
    const api = options.metricsPort === 0 ? undefined : yield* ApiServer.build(indexer, { schema: options.schema, progress: processor.chains })
    yield* MetricsServer.serve({ port: options.metricsPort, host: options.metricsHost, isReady: processor.isReady, api })
    yield* Effect.forkScoped(Progress.report(processor, store, { tty: process.stderr.isTTY === true, objectsTarget }))
    yield* hooks.onStart(processor.stop)
    const result = yield* processor.run
    const gate = yield* (yield* CapacityGate.CapacityGate).stats
    yield* Effect.logInfo(`Memory: peak ${gate.peakObjects} objects (target ${objectsTarget}); evicted ${gate.evictedCommitted} committed, ${gate.evictedLoaded} db-loaded; ${gate.waits} waits for a commit`)
    yield* summary(result, started)
    if (hooks.holdAfterEnd !== undefined) yield* hooks.holdAfterEnd
    return result
  }).pipe(
    Effect.scoped,
    Effect.provide(Runtime.layer(indexer, { exitAtHead: options.exitAtHead })),
    Effect.provide(Database.layer(options)),
    Effect.provide(Layer.fresh(config))
  )
  return yield* once.pipe(Effect.catchTag("BuildChangedError", (changed) =>
    hooks.resetOnNewBuild ? Effect.andThen(BuildReset.reset(options, changed), once) : Effect.fail(changed)))
})

/** Where each chain stopped, and the run's pace. */
const summary = (result: Processor.RunResult, started: number) =>
  Effect.gen(function*() {
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    const events = result.chains.reduce((n, c) => n + c.eventsProcessed, 0)
    for (const c of result.chains) {
      yield* Effect.logInfo(`${result.reason === "stopped" ? "Stopped" : "Done"}: chain ${c.chainId} at block ${c.processedBlock} (${c.eventsProcessed} events)`)
    }
    yield* Effect.logInfo(`${result.reason === "stopped" ? "Stopped" : "Finished"} after ${seconds.toFixed(1)}s, ${Math.round(events / Math.max(seconds, 0.001))} events/s overall; committed checkpoint ${result.committedCheckpointId}`)
  })
