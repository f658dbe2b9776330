/**
 * Database: the Storage layer the CLI flags choose — Postgres by `--db`/`DATABASE_URL`, else embedded PGlite in
 * `--data-dir` (default `.chainstore`) — in the schema `--schema` (default `public`), and the chain cache on the same
 * database (`CHAINSTORE_CACHE=off` leaves it out; `CHAINSTORE_CACHE_MAX_MB` limits it, default 2048).
 */
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { Flag } from "effect/cli"
import type { SqlClient } from "effect/sql"
import { type ChainCache, Errors, Storage } from "@chainstore/core"
import { Embedded, PgChainCache, PgStorage } from "@chainstore/persistence"

export const flags = {
  db: Flag.Redacted("db").pipe(
    Flag.withDescription("Postgres connection URL (or DATABASE_URL); without it, the embedded PGlite database"),
    Flag.withFallbackConfig(Config.Redacted("DATABASE_URL")),
    Flag.optional
  ),
  dataDir: Flag.String("data-dir").pipe(
    Flag.withDescription("Embedded database directory (or CHAINSTORE_DATA_DIR; default .chainstore)"),
    Flag.withFallbackConfig(Config.String("CHAINSTORE_DATA_DIR")),
    Flag.withDefault(".chainstore")
  ),
  schema: Flag.String("schema").pipe(
    Flag.withDescription("Postgres schema of the indexer's tables (or CHAINSTORE_SCHEMA; default public)"),
    Flag.withFallbackConfig(Config.String("CHAINSTORE_SCHEMA")),
    Flag.withDefault("public")
  )
} as const

export interface Options {
  readonly db: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly schema: string
}

/** The database, without a schema. */
export type Location = Pick<Options, "db" | "dataDir">

/** Where the database is, for messages: never the password. */
export const describeLocation = (options: Location): string =>
  Option.match(options.db, {
    onNone: () => `embedded PGlite in ${options.dataDir}`,
    onSome: (url) => {
      const parsed = URL.canParse(Redacted.value(url)) ? new URL(Redacted.value(url)) : undefined
      return `Postgres ${parsed === undefined ? "<unparsable url>" : `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`}`
    }
  })

/** Where the data lives, for messages: never the password. */
export const describe = (options: Options): string => `${describeLocation(options)}, schema ${options.schema}`

/** The database client the flags choose (the query API reads through it too). */
export const client = (options: Location): Layer.Layer<SqlClient.SqlClient, Errors.StorageError> =>
  Option.match(options.db, {
    onNone: () => Embedded.layerEmbedded({ dataDir: options.dataDir }),
    onSome: (url) => Embedded.layerPostgres({ url })
  })

/** Whether runs cache fetched chain data, and its size limit in bytes, from the environment. */
const cacheSettings = Effect.gen(function*() {
  const mode = yield* Config.Literals(["on", "off"], "CHAINSTORE_CACHE").pipe(Config.withDefault("on"))
  const maxMb = yield* Config.Int("CHAINSTORE_CACHE_MAX_MB").pipe(Config.withDefault(PgChainCache.defaultMaxBytes / 1024 ** 2))
  return { enabled: mode === "on", maxBytes: maxMb * 1024 ** 2 }
}).pipe(Effect.mapError((error) => new Errors.StorageError({ operation: "open", message: `chain cache settings: ${error.message}`, isRetryable: false })))

/** The chain cache on the chosen database, with the size limit of the environment. */
export const cacheLayer = (options: Location): Layer.Layer<ChainCache.ChainCache | SqlClient.SqlClient, Errors.StorageError> =>
  Layer.unwrap(Effect.map(cacheSettings, ({ maxBytes }) => PgChainCache.layer({ maxBytes }).pipe(Layer.provideMerge(client(options)))))

/**
 * Storage on the chosen database and its client; also the chain cache there unless CHAINSTORE_CACHE=off (sources
 * cache through a ChainCache when the context has one).
 */
export const layer = (options: Options): Layer.Layer<Storage.Storage | SqlClient.SqlClient, Errors.StorageError> =>
  Layer.unwrap(Effect.map(cacheSettings, ({ enabled, maxBytes }) => {
    const storage = PgStorage.layer({ schema: options.schema })
    const services: Layer.Layer<Storage.Storage, never, SqlClient.SqlClient> = enabled ? Layer.merge(storage, PgChainCache.layer({ maxBytes })) : storage
    return services.pipe(Layer.provideMerge(client(options)))
  }))

/** Drops the indexer's tables in the chosen database (`db reset`, and a new build's reset). */
export const dropTables = (options: Options): Effect.Effect<void, Errors.StorageError> =>
  Effect.gen(function*() {
    const storage = yield* Storage.Storage
    yield* storage.reset
  }).pipe(Effect.provide(layer(options)))

/** Fails early with a clear message when the URL is not a postgres URL at all. */
export const check = (options: Pick<Options, "db">): Effect.Effect<void, string> =>
  Option.match(options.db, {
    onNone: () => Effect.void,
    onSome: (url) => {
      const text = Redacted.value(url)
      return URL.canParse(text) && /^postgres(ql)?:$/.test(new URL(text).protocol)
        ? Effect.void
        : Effect.fail("--db must be a postgres:// URL")
    }
  })
