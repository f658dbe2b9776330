/**
 * `chainstore run [indexer]`: index until every chain reaches its end (or its head with --exit-at-head; otherwise
 * follow the head). SIGINT/SIGTERM stop taking batches, flush, and exit 0 saying where the run stopped.
 * The HTTP port serves metrics and the query API (`/graphql`) over the committed data while it runs.
 */
import { Clock, Effect, Layer, Option } from "effect"
import { Argument, Flag } from "effect/cli"
import { CapacityGate, Config, type Indexer, Processor, Runtime, SimChain, Store } from "@chainstore/core"
import * as ApiServer from "../ApiServer.js"
import * as BuildReset from "../BuildReset.js"
import * as Database from "../Database.js"
import * as LoadIndexer from "../LoadIndexer.js"
import * as MetricsServer from "../MetricsServer.js"
import * as Progress from "../Progress.js"
import * as Output from "../Output.js"

export const flags = {
  indexer: Argument.String("indexer").pipe(
    Argument.withDescription("A directory holding indexer.ts, or a module file (default: the current directory)"),
    Argument.optional
  ),
  ...Database.flags,
  sim: Flag.String("sim").pipe(
    Flag.withDescription("Index the simulated chain instead of each chain's source: k=v,... with keys seed, blocks, eventsPerBlock, accounts, reorgEvery, reorgDepth, blockTimeMs"),
    Flag.optional
  ),
  endBlock: Flag.Int("end-block").pipe(Flag.withDescription("Stop every chain at this block"), Flag.optional),
  exitAtHead: Flag.Boolean("exit-at-head").pipe(Flag.withDescription("Stop each chain when it reaches its head"), Flag.withDefault(false)),
  reset: Flag.Boolean("reset").pipe(
    Flag.withDescription("When the database holds tables of another build of the indexer (other code or chains), drop them and index from the start"),
    Flag.withDefault(false)
  ),
  objectsTarget: Flag.Int("objects-target").pipe(
    Flag.withDescription("Objects kept in memory before evicting or waiting (default 100000, or CHAINSTORE_IN_MEMORY_OBJECTS_TARGET)"),
    Flag.optional
  ),
  metricsPort: Flag.Int("metrics-port").pipe(Flag.withDescription("Port of /metrics, /ready and /healthz (default 9898; 0 disables)"), Flag.withDefault(9898)),
  metricsHost: Flag.String("metrics-host").pipe(Flag.withDescription("Address the metrics server binds (default 127.0.0.1)"), Flag.withDefault("127.0.0.1")),
  logFormat: Flag.Literals("log-format", ["pretty", "json"]).pipe(Flag.withDescription("Log format (default pretty)"), Flag.withDefault("pretty")),
  // Benchmarks only: awaits each write before the next batch, to measure the background writer's worth.
  inlineWrites: Flag.Boolean("inline-writes").pipe(Flag.withHidden, Flag.withDefault(false))
} as const

/** The indexer with --sim and --end-block applied. */
const adapt = (indexer: Indexer.Indexer, sim: Option.Option<SimChain.Params>, endBlock: Option.Option<number>): Indexer.Indexer => ({
  ...indexer,
  chains: indexer.chains.map((chain) => {
    const { endBlock: configured, ...rest } = chain
    const source = Option.isSome(sim) ? SimChain.source(sim.value) : chain.source
    // The simulated chain ends at its last block, whatever the module configured.
    const end = Option.isSome(endBlock) ? endBlock.value : Option.isSome(sim) ? undefined : configured
    return end === undefined ? { ...rest, source } : { ...rest, source, endBlock: end }
  })
})

export const run = Effect.fn("chainstore.run")(function*(options: {
  readonly indexer: Option.Option<string>
  readonly db: Database.Options["db"]
  readonly dataDir: string
  readonly schema: string
  readonly sim: Option.Option<string>
  readonly endBlock: Option.Option<number>
  readonly exitAtHead: boolean
  readonly reset: boolean
  readonly objectsTarget: Option.Option<number>
  readonly metricsPort: number
  readonly metricsHost: string
  readonly inlineWrites: boolean
}) {
  yield* Database.check(options)
  const sim = Option.isSome(options.sim) ? Option.some(yield* SimChain.parse(options.sim.value)) : Option.none()
  const indexer = adapt(yield* LoadIndexer.load(Option.getOrUndefined(options.indexer)), sim, options.endBlock)
  const config = Config.layerFromEnv({
    ...(Option.isSome(options.objectsTarget) ? { objectsTarget: options.objectsTarget.value } : {}),
    ...(options.inlineWrites ? { inlineWrites: true } : {})
  })
  const started = yield* Clock.currentTimeMillis
  yield* Effect.logInfo(`Indexing into ${Database.describe(options)}`)

  const index = Effect.gen(function*() {
    const processor = yield* Processor.Processor
    const store = yield* Store.Store
    const { objectsTarget } = yield* Config.ChainstoreConfig
    const api = options.metricsPort === 0 ? undefined : yield* ApiServer.build(indexer, { schema: options.schema, progress: processor.chains })
    yield* MetricsServer.serve({ port: options.metricsPort, host: options.metricsHost, isReady: processor.isReady, api })
    yield* Effect.forkScoped(Progress.report(processor, store, { tty: process.stderr.isTTY === true, objectsTarget }))
    yield* Output.onStopSignal(processor.stop)
    const result = yield* processor.run
    const gate = yield* (yield* CapacityGate.CapacityGate).stats
    yield* Effect.logInfo(`Memory: peak ${gate.peakObjects} objects (target ${objectsTarget}); evicted ${gate.evictedCommitted} committed, ${gate.evictedLoaded} db-loaded; ${gate.waits} waits for a commit`)
    return result
  }).pipe(
    Effect.scoped,
    Effect.provide(Runtime.layer(indexer, { exitAtHead: options.exitAtHead })),
    Effect.provide(Database.layer(options)),
    Effect.provide(Layer.fresh(config))
  )
  const result = yield* index.pipe(Effect.catchTag("BuildChangedError", (changed) =>
    options.reset ? Effect.andThen(BuildReset.reset(options, changed), index) : Effect.fail(changed)))
  const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
  const events = result.chains.reduce((n, c) => n + c.eventsProcessed, 0)
  for (const c of result.chains) {
    yield* Effect.logInfo(`${result.reason === "stopped" ? "Stopped" : "Done"}: chain ${c.chainId} at block ${c.processedBlock} (${c.eventsProcessed} events)`)
  }
  yield* Effect.logInfo(`${result.reason === "stopped" ? "Stopped" : "Finished"} after ${seconds.toFixed(1)}s, ${Math.round(events / Math.max(seconds, 0.001))} events/s overall; committed checkpoint ${result.committedCheckpointId}`)
})
