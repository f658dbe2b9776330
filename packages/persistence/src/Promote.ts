/**
 * Promote: zero-downtime redeploys. Readers query a schema of views (default `public`) over the schema a run writes;
 * a new build indexes into another schema while the views keep serving the old one, and `promote` points every view
 * at the new schema in one transaction once it has caught up. Postgres' DDL is transactional: a reader sees the old
 * schema's rows or the new one's, never none, never some of each.
 */
import { Duration, Effect } from "effect"
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
  for (const schema of [options.from, options.readers]) {
    const problem = Tables.checkSchema(schema)
    if (problem !== undefined) return yield* failure(`invalid schema name: ${problem}`)
  }
  if (options.from === options.readers) return yield* failure(`the readers' schema must be another schema than "${options.from}"`)
  const query = <A extends object>(text: string, params: ReadonlyArray<unknown> = []) => sql.unsafe<A>(text, params).pipe(Effect.mapError(fromSql))
  return yield* sql.withTransaction(Effect.gen(function*() {
    // One promote at a time; a reader holding the views for long makes promote fail, not every later reader wait.
    yield* query("SELECT pg_advisory_xact_lock(hashtext('chainstore promote ' || $1))", [options.readers])
    yield* query(`SET LOCAL lock_timeout = '${lockTimeout}'`)
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
    // Caught up means at least as far as the schema it replaces, per chain (a run that died long ago is not).
    const previousChains = previous === undefined ? undefined : `${quote(previous)}.${quote(Tables.chains)}`
    const comparable = previousChains !== undefined && previous !== options.from && !options.force &&
      (yield* query<{ readonly exists: boolean }>("SELECT to_regclass($1) IS NOT NULL AS exists", [previousChains]))[0]?.exists === true
    if (comparable) {
      const behindPrevious = yield* query<{ readonly chain_id: string; readonly now: string; readonly was: string }>(
        `SELECT n.chain_id::text, n.progress_block::text AS now, p.progress_block::text AS was FROM ${quote(options.from)}.${quote(Tables.chains)} n
         JOIN ${previousChains} p USING (chain_id) WHERE n.progress_block < p.progress_block ORDER BY 1`
      )
      if (behindPrevious.length > 0) {
        return yield* failure(`schema "${options.from}" is behind "${previous}", which readers see now: ${
          behindPrevious.map((c) => `chain ${c.chain_id} at block ${c.now}, not ${c.was}`).join(", ")}. Promote once it has caught up (or with --force)`)
      }
    }
    const views = existing.filter((r) => r.note?.startsWith(marker)).map((r) => `${quote(options.readers)}.${quote(r.name)}`)
    // Every old view locked at once before any is dropped, never waiting while holding some: a reader of two views
    // holding one would otherwise deadlock with promote. Readers then wait for the commit and read the new views.
    if (views.length > 0) yield* lockAll(query, views)
    for (const view of views) yield* query(`DROP VIEW ${view}`)
    for (const { name } of tables) {
      const view = `${quote(options.readers)}.${quote(name)}`
      yield* query(`CREATE VIEW ${view} AS SELECT * FROM ${quote(options.from)}.${quote(name)}`)
      yield* query(`COMMENT ON VIEW ${view} IS '${marker}${options.from.replaceAll("'", "''")}'`)
    }
    return { views: tables.length, previous } satisfies Promoted
  })).pipe(Effect.mapError((e) => (e._tag === "StorageError" ? e : fromSql(e))))
})

/** How long promote waits for readers to let go of the views. */
const lockTimeout = "10s"
const lockAttempts = 200

/** Locks `views` exclusively, all or none (NOWAIT under a savepoint), retrying while readers hold some of them. */
const lockAll = (
  query: <A extends object>(text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, Errors.StorageError>,
  views: ReadonlyArray<string>
) =>
  Effect.gen(function*() {
    for (let attempt = 1; attempt <= lockAttempts; attempt++) {
      yield* query("SAVEPOINT chainstore_promote_lock")
      const locked = yield* Effect.result(query(`LOCK TABLE ${views.join(", ")} IN ACCESS EXCLUSIVE MODE NOWAIT`))
      if (locked._tag === "Success") return
      yield* query("ROLLBACK TO SAVEPOINT chainstore_promote_lock")
      if (sqlState(locked.failure) !== "55P03") return yield* Effect.fail(locked.failure)
      yield* Effect.sleep(Duration.millis(Math.min(100, 5 * attempt)))
    }
    return yield* failure(`readers kept the views busy for ${lockAttempts} attempts: promote again`)
  })

const sqlState = (error: Errors.StorageError): string | undefined => {
  const cause: unknown = (error.cause as SqlError.SqlError | undefined)?.reason.cause
  return typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined
}

const failure = (message: string) => Effect.fail(new Errors.StorageError({ operation: "promote", message, isRetryable: false }))

/** The server's own words (lock timeout, permissions…), not only the client's "query failed". */
const fromSql = (error: SqlError.SqlError) => {
  const cause: unknown = error.reason.cause
  const detail = cause instanceof Error ? cause.message : error.message
  return new Errors.StorageError({ operation: "promote", message: detail, isRetryable: false, cause: error })
}
