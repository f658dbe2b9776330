/**
 * `chainstore serve [indexer] --db URL`: the query API, read-only, over a database another process writes (one
 * `chainstore run` writes; any number of `serve` processes read, each on the primary or on a read replica, behind
 * any load balancer). Nothing is written; live queries poll the committed checkpoint. Runs until SIGINT/SIGTERM.
 */
import { Deferred, Effect, Option, type Redacted } from "effect"
import { Argument, Flag } from "effect/cli"
import { SqlClient } from "effect/sql"
import { Embedded } from "@chainstore/persistence"
import * as ApiServer from "../ApiServer.js"
import * as Database from "../Database.js"
import * as LoadIndexer from "../LoadIndexer.js"
import * as MetricsServer from "../MetricsServer.js"
import * as Output from "../Output.js"

export const flags = {
  indexer: Argument.String("indexer").pipe(
    Argument.withDescription("A directory holding indexer.ts, or a module file (default: the current directory)"),
    Argument.optional
  ),
  db: Database.flags.db,
  schema: Database.flags.schema,
  port: Flag.Int("port").pipe(Flag.withDescription("HTTP port of /graphql, /metrics, /ready, /healthz (default 4000)"), Flag.withDefault(4000)),
  host: Flag.String("host").pipe(Flag.withDescription("Address to bind (default 127.0.0.1)"), Flag.withDefault("127.0.0.1")),
  pollInterval: Flag.Int("poll-interval").pipe(Flag.withDescription("Milliseconds between checks for new commits while a live query listens (default 500)"), Flag.withDefault(500)),
  logFormat: Flag.Literals("log-format", ["pretty", "json"]).pipe(Flag.withDescription("Log format (default pretty)"), Flag.withDefault("pretty"))
} as const

export const serve = Effect.fn("chainstore.serve")(function*(options: {
  readonly indexer: Option.Option<string>
  readonly db: Option.Option<Redacted.Redacted<string>>
  readonly schema: string
  readonly port: number
  readonly host: string
  readonly pollInterval: number
}) {
  if (Option.isNone(options.db)) return yield* Effect.fail("serve reads a Postgres database that `chainstore run` writes: give --db <postgres url> (or DATABASE_URL)")
  const target = { db: options.db, dataDir: "", schema: options.schema }
  yield* Database.check(target)
  const indexer = yield* LoadIndexer.load(Option.getOrUndefined(options.indexer))
  yield* Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const api = yield* ApiServer.buildServe(indexer, { schema: options.schema, pollInterval: options.pollInterval })
    const isReady = sql.unsafe(`SELECT 1`).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
    yield* MetricsServer.serve({ port: options.port, host: options.host, isReady, api })
    yield* Effect.logInfo(`Serving ${Database.describe(target)} read-only`)
    const stopped = yield* Deferred.make<void>()
    yield* Output.onStopSignal(Deferred.succeed(stopped, undefined))
    yield* Deferred.await(stopped)
  }).pipe(
    Effect.scoped,
    // Every statement of this read-only server is bounded: a runaway read is canceled by Postgres itself.
    Effect.provide(Embedded.layerPostgres({ url: options.db.value, startupParameters: { statement_timeout: "10000" } }))
  )
})
