/**
 * `chainstore db status`, `db reset` and `db promote`: what an indexer's database holds, starting it over, and
 * switching readers to a schema a new build wrote.
 */
import { Console, Effect, Option } from "effect"
import { Argument, Flag } from "effect/cli"
import { Errors, Storage } from "@chainstore/core"
import { Promote } from "@chainstore/persistence"
import * as Database from "../Database.js"
import * as LoadIndexer from "../LoadIndexer.js"

const indexerArgument = Argument.String("indexer").pipe(
  Argument.withDescription("A directory holding indexer.ts, or a module file (default: the current directory)"),
  Argument.optional
)

export const statusFlags = {
  indexer: indexerArgument,
  ...Database.flags,
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print JSON"), Flag.withDefault(false))
} as const

export const resetFlags = {
  indexer: indexerArgument,
  ...Database.flags,
  yes: Flag.Boolean("yes").pipe(Flag.withDescription("Confirm dropping the indexer's tables"), Flag.withDefault(false))
} as const

export const promoteFlags = {
  schema: Argument.String("schema").pipe(Argument.withDescription("The schema a run wrote (`run --schema <schema>`), to serve")),
  db: Database.flags.db,
  dataDir: Database.flags.dataDir,
  readers: Flag.String("readers").pipe(Flag.withDescription("The schema of views readers query (default public)"), Flag.withDefault("public")),
  force: Flag.Boolean("force").pipe(Flag.withDescription("Promote even when a chain has not reached its head or end block"), Flag.withDefault(false))
} as const

type Target = Database.Options & { readonly indexer: Option.Option<string> }

export const status = Effect.fn("chainstore.db.status")(function*(options: Target & { readonly json: boolean }) {
  yield* Database.check(options)
  const indexer = yield* LoadIndexer.load(Option.getOrUndefined(options.indexer))
  const current = indexer.build?.id ?? "none"
  const status = yield* Effect.gen(function*() {
    const storage = yield* Storage.Storage
    yield* storage.initialize(indexer)
    return yield* storage.status
  }).pipe(Effect.provide(Database.layer(options)), Effect.catchTag("BuildChangedError", Effect.succeed))
  if (status instanceof Errors.BuildChangedError) {
    const build = { stored: status.stored, current, changes: status.changes, restart: "reset" }
    if (options.json) return yield* Console.log(JSON.stringify({ build }, undefined, 2))
    return yield* Console.log([
      `Database: ${Database.describe(options)}`,
      `Build: the tables are build ${status.stored}, this indexer is build ${current}: ${status.changes.join("; ")}`,
      "A restart: `chainstore run` stops on this difference; `chainstore run --reset` or `chainstore dev` drops the tables and indexes from the start"
    ].join("\n"))
  }
  if (options.json) {
    const build = { stored: current, current, changes: [], restart: "resume" }
    yield* Console.log(JSON.stringify({ ...status, build }, (_, v) => (typeof v === "bigint" ? v.toString() : v), 2))
    return
  }
  const lines = [
    `Database: ${Database.describe(options)}`,
    `Build: ${current} (the tables are this build's: a restart resumes)`,
    `Committed checkpoint: ${status.committedCheckpointId}`,
    ...status.chains.map((c) =>
      `Chain ${c.chainId}: committed block ${c.progressBlock}${c.endBlock === undefined ? "" : ` of ${c.endBlock}`}, head ${c.sourceBlock} (${
        Math.max(0, c.sourceBlock - c.progressBlock)} behind), ${c.eventsProcessed} events${c.readyAt === undefined ? "" : `, ready since ${c.readyAt.toISOString()}`}`
    ),
    ...status.entityCounts.map((e) => `Entity ${e.entity}: ${e.rows} rows`),
    ...status.effectCounts.map((e) => `Effect cache ${e.effect}: ${e.rows} entries`)
  ]
  yield* Console.log(lines.join("\n"))
})

export const reset = Effect.fn("chainstore.db.reset")(function*(options: Target & { readonly yes: boolean }) {
  if (!options.yes) return yield* Effect.fail("db reset drops the indexer's tables: add --yes to confirm")
  yield* Database.check(options)
  const indexer = yield* LoadIndexer.load(Option.getOrUndefined(options.indexer))
  yield* Database.dropTables(options)
  yield* Console.log(`Dropped chainstore's tables of ${indexer.entities.map((e) => e.name).join(", ")} in ${Database.describe(options)}`)
})

export const promote = Effect.fn("chainstore.db.promote")(function*(options: {
  readonly schema: string
  readonly db: Database.Options["db"]
  readonly dataDir: string
  readonly readers: string
  readonly force: boolean
}) {
  const target = { db: options.db, dataDir: options.dataDir, schema: options.schema }
  yield* Database.check(target)
  const promoted = yield* Promote.promote({ from: options.schema, readers: options.readers, force: options.force }).pipe(
    Effect.provide(Database.client(target))
  )
  yield* Console.log(`Schema ${options.readers} now serves ${options.schema} (${promoted.views} views${promoted.previous === undefined ? "" : `; it served ${promoted.previous}`})`)
})
