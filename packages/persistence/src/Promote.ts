/**
 * Promote: zero-downtime redeploys. Readers query a schema of views (default `public`) over the schema a run writes;
 * a new build indexes into another schema while the views keep serving the old one, and `promote` points every view
 * at the new schema in one transaction once it has caught up. Postgres' DDL is transactional: a reader sees the old
 * schema's rows or the new one's, never none, never some of each.
 */
import { Effect } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { Errors } from "@chainstore/core"
import { quote } from "./Columns.js"
import * as Tables from "./Tables.js"

export interface Options {
  /** The schema a run wrote, to serve. */
  readonly from: string
  /** The schema of views readers query. */
  readonly readers: string
  /** Promote even when a chain has not reached its head or end block yet. */
  readonly force: boolean
}

export interface Promoted {
  readonly views: number
  /** The schema the views served before, if any. */
  readonly previous: string | undefined
}

/** Marks the views promote made, so the next promote replaces exactly those. */
const marker = "chainstore promote:"

export const promote = Effect.fn("Promote.promote")(function*(options: Options) {
  const sql = yield* SqlClient.SqlClient
  if (options.from === options.readers) return yield* failure(`the readers' schema must be another schema than "${options.from}"`)
  const query = <A extends object>(text: string, params: ReadonlyArray<unknown> = []) => sql.unsafe<A>(text, params).pipe(Effect.mapError(fromSql))
  return yield* sql.withTransaction(Effect.gen(function*() {
    const tables = yield* query<{ readonly name: string }>(
      "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
      [options.from]
    )
    if (!tables.some((t) => t.name === Tables.state)) return yield* failure(`schema "${options.from}" holds no chainstore tables`)
    const behind = yield* query<{ readonly chain_id: string; readonly progress_block: string; readonly source_block: string }>(
      `SELECT chain_id::text, progress_block::text, source_block::text FROM ${quote(options.from)}.${quote(Tables.chains)} WHERE ready_at IS NULL ORDER BY chain_id`
    )
    if (behind.length > 0 && !options.force) {
      return yield* failure(`schema "${options.from}" has not caught up: ${
        behind.map((c) => `chain ${c.chain_id} at block ${c.progress_block} of ${c.source_block}`).join(", ")}. Promote once it is ready (or with --force)`)
    }
    yield* query(`CREATE SCHEMA IF NOT EXISTS ${quote(options.readers)}`)
    const existing = yield* query<{ readonly name: string; readonly kind: string; readonly note: string | null }>(
      "SELECT c.relname AS name, c.relkind::text AS kind, obj_description(c.oid, 'pg_class') AS note FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
      [options.readers]
    )
    const wanted = new Set(tables.map((t) => t.name))
    const foreign = existing.filter((r) => r.kind !== "v" || !r.note?.startsWith(marker)).filter((r) => wanted.has(r.name))
    if (foreign.length > 0) {
      return yield* failure(`schema "${options.readers}" holds ${foreign.map((r) => `"${r.name}"`).join(", ")}, not views promote made: choose another readers' schema`)
    }
    const previous = existing.find((r) => r.note?.startsWith(marker))?.note?.slice(marker.length)
    // Readers wait on these locks for the commit, then read the new views: never a missing one.
    for (const view of existing) if (view.note?.startsWith(marker)) yield* query(`DROP VIEW ${quote(options.readers)}.${quote(view.name)}`)
    for (const { name } of tables) {
      const view = `${quote(options.readers)}.${quote(name)}`
      yield* query(`CREATE VIEW ${view} AS SELECT * FROM ${quote(options.from)}.${quote(name)}`)
      yield* query(`COMMENT ON VIEW ${view} IS '${marker}${options.from.replaceAll("'", "''")}'`)
    }
    return { views: tables.length, previous } satisfies Promoted
  })).pipe(Effect.mapError((e) => (e._tag === "StorageError" ? e : fromSql(e))))
})

const failure = (message: string) => Effect.fail(new Errors.StorageError({ operation: "promote", message, isRetryable: false }))

const fromSql = (error: SqlError.SqlError) =>
  new Errors.StorageError({ operation: "promote", message: error.message, isRetryable: false, cause: error })
