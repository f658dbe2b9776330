/**
 * Database: the Storage layer the CLI flags choose — Postgres by `--db`/`DATABASE_URL`, else embedded PGlite in
 * `--data-dir` (default `.chainstore`) — in the schema `--schema` (default `public`).
 */
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { Flag } from "effect/cli"
import type { SqlClient } from "effect/sql"
import type { Errors, Storage } from "@chainstore/core"
import { Embedded, PgStorage } from "@chainstore/persistence"

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

/** Where the data lives, for messages: never the password. */
export const describe = (options: Options): string =>
  Option.match(options.db, {
    onNone: () => `embedded PGlite in ${options.dataDir}, schema ${options.schema}`,
    onSome: (url) => {
      const parsed = URL.canParse(Redacted.value(url)) ? new URL(Redacted.value(url)) : undefined
      return `Postgres ${parsed === undefined ? "<unparsable url>" : `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`}, schema ${options.schema}`
    }
  })

/** The database client the flags choose (the query API reads through it too). */
export const client = (options: Options): Layer.Layer<SqlClient.SqlClient, Errors.StorageError> =>
  Option.match(options.db, {
    onNone: () => Embedded.layerEmbedded({ dataDir: options.dataDir }),
    onSome: (url) => Embedded.layerPostgres({ url })
  })

/** Storage on the chosen database, and its client. */
export const layer = (options: Options): Layer.Layer<Storage.Storage | SqlClient.SqlClient, Errors.StorageError> =>
  PgStorage.layer({ schema: options.schema }).pipe(Layer.provideMerge(client(options)))

/** Fails early with a clear message when the URL is not a postgres URL at all. */
export const check = (options: Options): Effect.Effect<void, string> =>
  Option.match(options.db, {
    onNone: () => Effect.void,
    onSome: (url) => {
      const text = Redacted.value(url)
      return URL.canParse(text) && /^postgres(ql)?:$/.test(new URL(text).protocol)
        ? Effect.void
        : Effect.fail("--db must be a postgres:// URL")
    }
  })
