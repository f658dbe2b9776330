/**
 * `chainstore run [indexer]`: index until every chain reaches its end (or its head with --exit-at-head; otherwise
 * follow the head). SIGINT/SIGTERM stop taking batches, flush, and exit 0 saying where the run stopped.
 * The HTTP port serves metrics and the query API (`/graphql`) over the committed data while it runs.
 */
import { Effect, Option } from "effect"
import { Argument, Flag } from "effect/cli"
import { type Indexer, SimChain } from "@chainstore/core"
import * as Database from "../Database.js"
import * as Indexing from "../Indexing.js"
import * as LoadIndexer from "../LoadIndexer.js"
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
export const adapt = (indexer: Indexer.Indexer, sim: Option.Option<SimChain.Params>, endBlock: Option.Option<number>): Indexer.Indexer => ({
  ...indexer,
  chains: indexer.chains.map((chain) => {
    const { endBlock: configured, ...rest } = chain
    const source = Option.isSome(sim) ? SimChain.source(sim.value) : chain.source
    // The simulated chain ends at its last block, whatever the module configured.
    const end = Option.isSome(endBlock) ? endBlock.value : Option.isSome(sim) ? undefined : configured
    return end === undefined ? { ...rest, source } : { ...rest, source, endBlock: end }
  })
})

export const run = Effect.fn("chainstore.run")(function*(options: Indexing.Options & {
  readonly indexer: Option.Option<string>
  readonly sim: Option.Option<string>
  readonly endBlock: Option.Option<number>
  readonly reset: boolean
}) {
  yield* Database.check(options)
  const sim = yield* parseSim(options.sim)
  const indexer = adapt(yield* LoadIndexer.load(Option.getOrUndefined(options.indexer)), sim, options.endBlock)
  yield* Indexing.index(indexer, options, { resetOnNewBuild: options.reset, onStart: Output.onStopSignal })
})

/** `--sim`'s parameters, parsed. */
export const parseSim = (sim: Option.Option<string>) =>
  Option.isSome(sim) ? Effect.map(SimChain.parse(sim.value), Option.some) : Effect.succeed(Option.none<SimChain.Params>())
