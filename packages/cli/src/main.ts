/**
 * The `chainstore` command: `run`, `dev`, `serve`, `db status`, `db reset`, `db promote`. Runs without NodeRuntime's signal handling, so a
 * SIGINT flushes instead of interrupting, and ends the process with the command's exit code.
 */
import * as v8 from "node:v8"
import { Effect, Exit, Layer, Logger } from "effect"
import { Command } from "effect/cli"
// The subpath: the package index also loads an HTTP stack `run` does not use, half a second more per start.
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cache from "./commands/cache.js"
import * as Db from "./commands/db.js"
import * as Dev from "./commands/dev.js"
import * as Run from "./commands/run.js"
import * as Serve from "./commands/serve.js"
import * as Output from "./Output.js"

const run = Command.make("run", Run.flags, ({ logFormat: _, ...options }) => Run.run(options)).pipe(
  Command.withDescription("Index an indexer's chains into its database")
)
const dev = Command.make("dev", Dev.flags, ({ logFormat: _, ...options }) => Dev.dev({ ...options, exitAtHead: false, inlineWrites: false })).pipe(
  Command.withDescription("Index like `run`, and reload on every save of the indexer or a file it imports")
)
const serve = Command.make("serve", Serve.flags, ({ logFormat: _, ...options }) => Serve.serve(options)).pipe(
  Command.withDescription("Serve the query API (GraphQL) read-only over a database another process writes")
)
const status = Command.make("status", Db.statusFlags, Db.status).pipe(Command.withDescription("Show what an indexer's database holds"))
const reset = Command.make("reset", Db.resetFlags, Db.reset).pipe(Command.withDescription("Drop an indexer's tables"))
const promote = Command.make("promote", Db.promoteFlags, Db.promote).pipe(
  Command.withDescription("Point the readers' views at a schema a run wrote, in one transaction (zero-downtime redeploys)")
)
const db = Command.make("db").pipe(Command.withDescription("Inspect, reset or promote an indexer's database"), Command.withSubcommands([status, reset, promote]))
const cacheStatus = Command.make("status", Cache.statusFlags, Cache.status).pipe(Command.withDescription("Show what the chain cache holds per chain"))
const cacheClear = Command.make("clear", Cache.clearFlags, Cache.clear).pipe(Command.withDescription("Drop what the chain cache holds"))
const cache = Command.make("cache").pipe(
  Command.withDescription("Inspect or clear the cache of fetched chain data runs reuse"),
  Command.withSubcommands([cacheStatus, cacheClear])
)
const chainstore = Command.make("chainstore").pipe(
  Command.withDescription("chainstore: index blockchain events into Postgres through your handlers"),
  Command.withSubcommands([run, dev, serve, db, cache])
)

// V8 lets the heap grow to up to 4× what survived the last collection when allocation is fast, as it is while
// indexing; 2× keeps RSS near what the capacity gate holds, at no measured cost in events/s (docs/benchmarks.md).
if (!process.execArgv.some((a) => a.startsWith("--heap-growing-percent"))) v8.setFlagsFromString("--heap-growing-percent=100")

const json = process.argv.some((a, i) => a === "--log-format=json" || (a === "--log-format" && process.argv[i + 1] === "json"))
const loggers = Logger.layer([json ? Logger.consoleJson : Logger.consolePretty({ colors: "auto" })])

const program = Command.run(chainstore, { version: "0.1.0" }).pipe(
  Effect.provide(Layer.mergeAll(NodeServices.layer, loggers))
)

const exit = await Effect.runPromiseExit(program)
if (Exit.isFailure(exit)) process.stderr.write(`chainstore: ${Output.describeFailure(exit.cause)}\n`)
process.exit(Output.exitCode(exit))
