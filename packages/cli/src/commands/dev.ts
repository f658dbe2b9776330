/**
 * `chainstore dev [indexer]`: indexes like `run`, and on every save of the indexer or a file it imports rebuilds it,
 * stops the run cleanly and starts the new build's (its tables dropped and indexed again when the build changed).
 * A file that does not build or validate shows its error and leaves the last good build running. A run that fails
 * shows why and waits for the next save. SIGINT/SIGTERM stop the run (flushing it) and end dev.
 */
import * as path from "node:path"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Option, Ref, Result } from "effect"
import { Argument, Flag } from "effect/cli"
import type { Indexer, SimChain } from "@chainstore/core"
import * as Database from "../Database.js"
import * as Indexing from "../Indexing.js"
import * as LoadIndexer from "../LoadIndexer.js"
import * as Output from "../Output.js"
import * as Watch from "../Watch.js"
import * as Run from "./run.js"

export const flags = {
  indexer: Argument.String("indexer").pipe(
    Argument.withDescription("A directory holding indexer.ts, or a module file (default: the current directory)"),
    Argument.optional
  ),
  ...Database.flags,
  sim: Run.flags.sim,
  endBlock: Run.flags.endBlock,
  objectsTarget: Run.flags.objectsTarget,
  metricsPort: Run.flags.metricsPort,
  metricsHost: Run.flags.metricsHost,
  logFormat: Flag.Literals("log-format", ["pretty", "json"]).pipe(Flag.withDescription("Log format (default pretty)"), Flag.withDefault("pretty"))
} as const

/** How long a stopped run may take to flush before it is interrupted. */
const stopGrace = Duration.seconds(30)

/** A file esbuild may compile into the indexer (not dev's own compiled output, which starts with a dot). */
const isSource = (file: string): boolean => !path.basename(file).startsWith(".") && /\.(c|m)?[jt]sx?$|\.json$/.test(file)

/** A build's run: its fiber, how to stop it cleanly once it processes, and the end of its servers once it ended. */
interface Running {
  readonly build: string
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly stop: Ref.Ref<Effect.Effect<void> | undefined>
  readonly release: Deferred.Deferred<void>
}

export const dev = Effect.fn("chainstore.dev")(function*(options: Indexing.Options & {
  readonly indexer: Option.Option<string>
  readonly sim: Option.Option<string>
  readonly endBlock: Option.Option<number>
}) {
  yield* Database.check(options)
  const sim = yield* Run.parseSim(options.sim)
  const file = LoadIndexer.resolvePath(Option.getOrUndefined(options.indexer))
  const screen = makeScreen(file, process.stderr.isTTY === true)
  const quit = yield* Deferred.make<void>()
  yield* Output.onStopSignal(Deferred.succeed(quit, undefined).pipe(Effect.asVoid))

  const start = (indexer: Indexer.Indexer) =>
    Effect.gen(function*() {
      const stop = yield* Ref.make<Effect.Effect<void> | undefined>(undefined)
      const release = yield* Deferred.make<void>()
      // A run that reached its chains' end keeps serving its tables until the next reload.
      const hooks = { resetOnNewBuild: true, onStart: (s: Effect.Effect<void>) => Ref.set(stop, s), holdAfterEnd: Deferred.await(release) }
      const run = Indexing.index(indexer, options, hooks).pipe(
        Effect.onExit((exit) => Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? screen.runFailed(Output.describeFailure(exit.cause)) : Effect.void)
      )
      const fiber = yield* Effect.forkChild(run)
      return { build: indexer.build?.id ?? "", fiber, stop, release } satisfies Running
    })
  /** Stops a run cleanly when it processes (it flushes), else interrupts it (it is still opening, or stuck). */
  const stopRun = (running: Running) =>
    Effect.gen(function*() {
      const stop = yield* Ref.get(running.stop)
      if (stop === undefined) return yield* Fiber.interrupt(running.fiber)
      yield* stop
      yield* Deferred.succeed(running.release, undefined)
      // A run waiting on a slow RPC takes its next batch only once that returns: wait a while, then interrupt it.
      const ended = yield* Effect.timeoutOption(Fiber.await(running.fiber), stopGrace)
      if (Option.isNone(ended)) yield* Fiber.interrupt(running.fiber)
    })

  const watch = yield* Watch.make
  yield* watch.add([file])
  let running: Running | undefined
  let files: ReadonlySet<string> = new Set([file])
  let buildFails = false
  let changed: string | undefined
  while (true) {
    const loaded = yield* Effect.result(LoadIndexer.loadFile(file))
    if (Result.isFailure(loaded)) {
      buildFails = true
      yield* screen.buildFailed(loaded.failure.message, running !== undefined && !failed(running) ? running.build : undefined)
    } else {
      buildFails = false
      files = new Set(loaded.success.files)
      yield* watch.add(loaded.success.files)
      if (running !== undefined && loaded.success.indexer.build?.id === running.build && !failed(running)) {
        // The same code and chains (a file saved unchanged, a comment): the run goes on, or stays done.
        yield* screen.unchanged(changed)
      } else {
        if (running !== undefined) yield* stopRun(running)
        if (yield* Deferred.isDone(quit)) break
        yield* screen.reloaded(loaded.success.indexer.build?.id ?? "", files.size, changed)
        running = yield* start(Run.adapt(loaded.success.indexer, sim, options.endBlock))
      }
    }
    // While the build fails, a new file it imports may be the one to fix: any source file in a watched directory counts.
    const relevant = (f: string) => files.has(f) || (buildFails && isSource(f))
    const next = yield* Effect.raceFirst(
      Effect.map(watch.next(relevant), (f): string | undefined => f),
      Effect.as(Deferred.await(quit), undefined)
    )
    if (next === undefined) break
    changed = next
  }
  if (running !== undefined) yield* stopRun(running)
}, Effect.scoped)

/** The run ended with an error: even the same build is started again (the error may have been outside the code). */
const failed = (running: Running): boolean => {
  const exit = running.fiber.pollUnsafe()
  return exit !== undefined && Exit.isFailure(exit)
}

/** What dev shows: on a terminal, each reload starts a clean screen with a header; elsewhere, log lines. */
const makeScreen = (file: string, tty: boolean) => {
  const clear = () => {
    if (tty) process.stderr.write("\x1b[2J\x1b[3J\x1b[H")
  }
  const time = () => new Date().toISOString().slice(11, 19)
  return {
    reloaded: (build: string, files: number, changed: string | undefined) =>
      Effect.suspend(() => {
        clear()
        return Effect.logInfo(`chainstore dev: ${file}, build ${build} (${files} files watched)${changed === undefined ? "" : `; reloaded at ${time()} after ${changed} changed`}`)
      }),
    unchanged: (changed: string | undefined) => Effect.logInfo(`${changed ?? file} saved: the build is unchanged`),
    buildFailed: (message: string, keptBuild: string | undefined) =>
      Effect.logError(`✗ ${message}\n  ${keptBuild === undefined ? "Nothing runs until it builds" : `Build ${keptBuild} keeps running`}: fix the file and save to reload.`),
    runFailed: (message: string) => Effect.logError(`✗ The run stopped: ${message}\n  Fix the indexer and save to reload.`)
  }
}
