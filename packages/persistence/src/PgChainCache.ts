/**
 * PgChainCache: the ChainCache port on Postgres and PGlite (only the abstract SqlClient). Its tables live in the
 * schema `chainstore_cache`, created on first use: in the embedded data dir beside the indexer's data, on a Postgres
 * server shared by every indexer schema of the database; a schema of another format is dropped then (it is a cache).
 * A range is one row holding its logs as one payload (internal/LogPayload.ts), compressed (brotli) on libuv's thread
 * pool and stored as bytea the database does not compress again; reading a range decompresses it there too and makes
 * only the logs of the blocks asked. A store is one transaction; past the size limit the oldest-stored ranges go, with
 * the entries stored with them. Entries are kept as the node's JSON text: nothing is decoded until read.
 */
import { promisify } from "node:util"
import * as zlib from "node:zlib"
import { Effect, Layer } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { ChainCache, Errors, type RpcClient } from "@chainstore/core"
import * as LogPayload from "./internal/LogPayload.js"

export interface Options {
  /** Bytes of stored payloads past which the oldest-stored ranges go (default 2 GiB). */
  readonly maxBytes?: number | undefined
}

export const schema = "chainstore_cache"
export const defaultMaxBytes = 2 * 1024 ** 3

/** A row's bytes besides its payload, about (keys, block numbers, tuple header). */
const rowOverhead = 64

/** The schema's comment, naming the layout of its tables and payloads: a schema with another is dropped at first use. */
const format = `chainstore chain cache, format 2, log payload ${LogPayload.version} (brotli)`

type Row = Readonly<Record<string, unknown>>

export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const maxBytes = options.maxBytes ?? defaultMaxBytes
    // Checked against the limit after this many bytes were stored: a sum over every range is not free.
    const checkEvery = Math.max(1, Math.floor(maxBytes / 100))
    let storedSinceCheck = Number.POSITIVE_INFINITY

    const query = <A extends object = Row>(operation: string, text: string, params: ReadonlyArray<unknown> = []) =>
      sql.unsafe<A>(text, params).pipe(Effect.mapError((error) => cacheError(operation, error)))

    const transaction = <A>(operation: string, effect: Effect.Effect<A, Errors.ChainCacheError>) =>
      sql.withTransaction(effect).pipe(Effect.mapError((error) => (SqlError.isSqlError(error) ? cacheError(operation, error) : error)))

    // Concurrent first uses (several indexers on one server) serialise on an advisory lock: the first creates the schema,
    // or replaces one of another format; the others find it made.
    const created = yield* Effect.cached(transaction("create", Effect.gen(function*() {
      yield* query("create", `SELECT pg_advisory_xact_lock(hashtext('${schema}'))`)
      const rows = yield* query<{ readonly comment: string | null }>(
        "create",
        `SELECT obj_description(oid, 'pg_namespace') AS comment FROM pg_namespace WHERE nspname = '${schema}'`
      )
      if (rows.length > 0 && rows[0]!.comment === format) return
      if (rows.length > 0) yield* query("create", `DROP SCHEMA ${schema} CASCADE`)
      yield* Effect.forEach(createStatements, (text) => query("create", text), { discard: true })
    })))

    // A schema of another format holds nothing this code reads: status and clear see none.
    const exists = Effect.map(
      query<{ readonly comment: string | null }>("status", `SELECT obj_description(oid, 'pg_namespace') AS comment FROM pg_namespace WHERE nspname = '${schema}'`),
      (rows) => rows[0]?.comment === format
    )

    const parse = <A>(operation: string, payload: string): Effect.Effect<A, Errors.ChainCacheError> =>
      Effect.try({ try: () => JSON.parse(payload) as A, catch: (cause) => new Errors.ChainCacheError({ operation, message: `a stored value is not JSON: ${String(cause)}`, cause }) })

    /** A range's logs compressed, off the main thread. */
    const pack = (logs: ReadonlyArray<RpcClient.Log>): Effect.Effect<Uint8Array, Errors.ChainCacheError> =>
      Effect.try({
        try: () => LogPayload.encode(logs),
        catch: (cause) => new Errors.ChainCacheError({ operation: "store", message: `cannot encode logs: ${describe(cause)}`, cause })
      }).pipe(Effect.flatMap((encoded) =>
        Effect.tryPromise({
          try: () =>
            brotliCompress(encoded, {
              chunkSize: 256 * 1024,
              params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: encoded.length }
            }),
          catch: (cause) => new Errors.ChainCacheError({ operation: "store", message: `cannot compress logs: ${describe(cause)}`, cause })
        })
      ))

    /** The logs of a stored payload in the blocks of each span, decompressed off the main thread. */
    const unpack = (payload: Uint8Array, spans: ReadonlyArray<ChainCache.Part>): Effect.Effect<Array<Array<RpcClient.Log>>, Errors.ChainCacheError> =>
      Effect.flatMap(
        Effect.tryPromise({
          try: () => brotliDecompress(payload, { chunkSize: 1024 * 1024 }),
          catch: (cause) => new Errors.ChainCacheError({ operation: "logs", message: `cannot decompress stored logs: ${describe(cause)}`, cause })
        }),
        (encoded) =>
          Effect.try({
            try: () => spans.map((span) => LogPayload.decode(encoded, span.fromBlock, span.toBlock)),
            catch: (cause) => new Errors.ChainCacheError({ operation: "logs", message: `stored logs are unreadable: ${describe(cause)}`, cause })
          })
      )

    const evict = Effect.gen(function*() {
      storedSinceCheck = 0
      yield* query("evict", `DELETE FROM ${schema}.ranges WHERE id IN (
  SELECT id FROM (SELECT id, sum(bytes) OVER (ORDER BY id DESC) AS newer FROM ${schema}.ranges) t WHERE newer > $1::int8)`, [maxBytes])
    })

    return ChainCache.ChainCache.of({
      ranges: Effect.fn("PgChainCache.ranges")(function*(chainId: number, filterKey: string, fromBlock: number, toBlock: number) {
        yield* created
        const rows = yield* query<{ readonly id: string; readonly from_block: string; readonly to_block: string; readonly to_hash: string; readonly log_count: number }>(
          "ranges",
          `SELECT id::text AS id, from_block::text AS from_block, to_block::text AS to_block, to_hash, log_count FROM ${schema}.ranges
WHERE chain_id = $1::int8 AND filter_key = $2::text AND to_block >= $3::int8 AND from_block <= $4::int8 ORDER BY from_block, id`,
          [chainId, filterKey, fromBlock, toBlock]
        )
        return rows.map((r) => ({ id: Number(r.id), fromBlock: Number(r.from_block), toBlock: Number(r.to_block), toHash: r.to_hash, logCount: r.log_count }))
      }),

      logs: Effect.fn("PgChainCache.logs")(function*(parts: ReadonlyArray<ChainCache.Part>) {
        yield* created
        const present = new Set<number>()
        if (parts.length === 0) return { present, logs: [] }
        // A range dropped since it was listed has no row: it is not present.
        const rows = yield* query<{ readonly id: string; readonly payload: Uint8Array | null }>(
          "logs",
          `SELECT id::text AS id, payload FROM ${schema}.ranges WHERE id = ANY($1::int8[])`,
          [[...new Set(parts.map((p) => String(p.rangeId)))]]
        )
        const ordered = [...parts].sort((a, b) => a.fromBlock - b.fromBlock)
        const read = new Map<ChainCache.Part, ReadonlyArray<RpcClient.Log>>()
        yield* Effect.forEach(rows, (row) => {
          const id = Number(row.id)
          present.add(id)
          const spans = ordered.filter((p) => p.rangeId === id)
          if (row.payload === null) return Effect.void
          return Effect.map(unpack(row.payload, spans), (logs) => spans.forEach((span, i) => read.set(span, logs[i]!)))
        }, { concurrency: "unbounded", discard: true })
        return { present, logs: ordered.flatMap((p) => read.get(p) ?? []) }
      }),

      entries: Effect.fn("PgChainCache.entries")(function*(chainId: number, kind: ChainCache.Kind, keys: ReadonlyArray<string>) {
        const out = new Map<string, unknown>()
        if (keys.length === 0) return out
        yield* created
        const rows = yield* query<{ readonly key: string; readonly payload: string }>(
          "entries",
          `SELECT key, payload FROM ${schema}.entries WHERE chain_id = $1::int8 AND kind = $2::text AND key = ANY($3::text[])`,
          [chainId, kind, [...new Set(keys)]]
        )
        for (const row of rows) out.set(row.key, yield* parse("entries", row.payload))
        return out
      }),

      store: Effect.fn("PgChainCache.store")(function*(chainId: number, stored: ChainCache.Stored) {
        yield* created
        // Keys in order: two stores inserting the same keys in another order could deadlock.
        const entries = stored.entries.map((e) => ({ kind: e.kind, key: e.key, payload: JSON.stringify(e.value) }))
          .sort((a, b) => (a.kind === b.kind ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.kind < b.kind ? -1 : 1))
        const entryBytes = entries.reduce((n, e) => n + e.payload.length + rowOverhead, 0)
        // Compressed before the transaction: it holds no locks meanwhile.
        const payloads = yield* Effect.forEach(stored.ranges, (range) => (range.logs.length === 0 ? Effect.succeed(null) : pack(range.logs)))
        let bytes = 0
        yield* transaction("store", Effect.gen(function*() {
          let unit: string | undefined
          for (const [i, range] of stored.ranges.entries()) {
            const payload = payloads[i]!
            const rangeBytes = (payload?.length ?? 0) + rowOverhead + (unit === undefined ? entryBytes : 0)
            bytes += rangeBytes
            yield* query("store", `DELETE FROM ${schema}.ranges WHERE chain_id = $1::int8 AND filter_key = $2::text AND to_block >= $3::int8 AND from_block <= $4::int8`, [
              chainId,
              range.filterKey,
              range.fromBlock,
              range.toBlock
            ])
            const [row] = yield* query<{ readonly id: string }>(
              "store",
              `INSERT INTO ${schema}.ranges (chain_id, filter_key, from_block, to_block, to_hash, log_count, bytes, payload)
VALUES ($1::int8, $2::text, $3::int8, $4::int8, $5::text, $6::int4, $7::int8, $8::bytea) RETURNING id::text AS id`,
              [chainId, range.filterKey, range.fromBlock, range.toBlock, range.toHash, range.logs.length, rangeBytes, payload]
            )
            unit ??= row!.id
          }
          if (entries.length === 0) return
          if (unit === undefined) {
            bytes += entryBytes + rowOverhead
            const [row] = yield* query<{ readonly id: string }>(
              "store",
              `INSERT INTO ${schema}.ranges (chain_id, bytes) VALUES ($1::int8, $2::int8) RETURNING id::text AS id`,
              [chainId, entryBytes + rowOverhead]
            )
            unit = row!.id
          }
          yield* query(
            "store",
            `INSERT INTO ${schema}.entries (chain_id, kind, key, range_id, payload) SELECT $1::int8, u.kind, u.key, $2::int8, u.payload
FROM unnest($3::text[], $4::text[], $5::text[]) AS u(kind, key, payload) ON CONFLICT (chain_id, kind, key) DO NOTHING`,
            [chainId, unit, entries.map((e) => e.kind), entries.map((e) => e.key), entries.map((e) => e.payload)]
          )
        }))
        // Outside the store's transaction: concurrent stores would otherwise lock the oldest rows against each other.
        storedSinceCheck += bytes
        if (storedSinceCheck >= checkEvery) yield* evict
      }),

      dropFrom: Effect.fn("PgChainCache.dropFrom")(function*(chainId: number, blockNumber: number) {
        yield* created
        yield* query("dropFrom", `DELETE FROM ${schema}.ranges WHERE chain_id = $1::int8 AND filter_key IS NOT NULL AND to_block >= $2::int8`, [chainId, blockNumber])
      }),

      status: Effect.gen(function*() {
        if (!(yield* exists)) return []
        const [chains, kinds, spans] = yield* Effect.all([
          query<{ readonly chain_id: string; readonly filters: number; readonly ranges: number; readonly logs: string; readonly bytes: string }>(
            "status",
            `SELECT chain_id::text AS chain_id, count(DISTINCT filter_key)::int AS filters, count(filter_key)::int AS ranges,
  coalesce(sum(log_count), 0)::text AS logs, coalesce(sum(bytes), 0)::text AS bytes FROM ${schema}.ranges GROUP BY chain_id ORDER BY chain_id`
          ),
          query<{ readonly chain_id: string; readonly kind: ChainCache.Kind; readonly n: number }>(
            "status",
            `SELECT chain_id::text AS chain_id, kind, count(*)::int AS n FROM ${schema}.entries GROUP BY chain_id, kind`
          ),
          // The blocks covered, merged: a range starts an island unless an earlier one reaches it.
          query<{ readonly chain_id: string; readonly from_block: string; readonly to_block: string }>(
            "status",
            `SELECT chain_id::text AS chain_id, min(from_block)::text AS from_block, max(to_block)::text AS to_block FROM (
  SELECT chain_id, from_block, to_block, sum(starts) OVER (PARTITION BY chain_id ORDER BY from_block, to_block) AS island FROM (
    SELECT chain_id, from_block, to_block, CASE WHEN from_block <= max(to_block) OVER (PARTITION BY chain_id ORDER BY from_block, to_block
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + 1 THEN 0 ELSE 1 END AS starts
    FROM ${schema}.ranges WHERE filter_key IS NOT NULL) ranges) islands
GROUP BY chain_id, island ORDER BY chain_id, min(from_block)`
          )
        ])
        return chains.map((c): ChainCache.ChainStatus => {
          const count = (kind: ChainCache.Kind) => kinds.find((k) => k.chain_id === c.chain_id && k.kind === kind)?.n ?? 0
          return {
            chainId: Number(c.chain_id),
            filters: c.filters,
            ranges: c.ranges,
            covered: spans.filter((s) => s.chain_id === c.chain_id).map((s) => ({ fromBlock: Number(s.from_block), toBlock: Number(s.to_block) })),
            logs: Number(c.logs),
            headers: count("header"),
            transactions: count("transaction"),
            receipts: count("receipt"),
            calls: count("call"),
            bytes: Number(c.bytes)
          }
        })
      }).pipe(Effect.withSpan("PgChainCache.status")),

      clear: Effect.fn("PgChainCache.clear")(function*(chainId: number | undefined) {
        if (!(yield* exists)) return
        if (chainId === undefined) yield* query("clear", `DELETE FROM ${schema}.ranges`)
        else yield* query("clear", `DELETE FROM ${schema}.ranges WHERE chain_id = $1::int8`, [chainId])
      })
    })
  })

/** The cache on the database of the SqlClient provided. */
export const layer = (options: Options = {}): Layer.Layer<ChainCache.ChainCache, never, SqlClient.SqlClient> =>
  Layer.effect(ChainCache.ChainCache, make(options))

// --- private helpers ---------------------------------------------------------------------------------------------

// A range row with a filter key holds that filter's logs of [from_block, to_block] (payload: none when it has none);
// one without holds only entries stored together. Entries go with their range (the unit of eviction). The payload is
// compressed already: stored out of line as it is (EXTERNAL), not compressed again.
const createStatements: ReadonlyArray<string> = [
  `CREATE SCHEMA ${schema}`,
  `COMMENT ON SCHEMA ${schema} IS '${format}'`,
  `CREATE TABLE ${schema}.ranges (
  id bigserial PRIMARY KEY,
  chain_id bigint NOT NULL,
  filter_key text,
  from_block bigint,
  to_block bigint,
  to_hash text,
  log_count integer NOT NULL DEFAULT 0,
  bytes bigint NOT NULL,
  stored_at timestamptz NOT NULL DEFAULT now(),
  payload bytea)`,
  `ALTER TABLE ${schema}.ranges ALTER COLUMN payload SET STORAGE EXTERNAL`,
  `CREATE INDEX ranges_filter ON ${schema}.ranges (chain_id, filter_key, to_block)`,
  `CREATE TABLE ${schema}.entries (
  chain_id bigint NOT NULL,
  kind text NOT NULL,
  key text NOT NULL,
  range_id bigint NOT NULL REFERENCES ${schema}.ranges (id) ON DELETE CASCADE,
  payload text NOT NULL,
  PRIMARY KEY (chain_id, kind, key))`,
  `CREATE INDEX entries_range ON ${schema}.entries (range_id)`
]

// Brotli at quality 1: faster than deflate at level 1 and smaller, on hex-heavy JSON. On libuv's thread pool, in
// chunks about as large as a payload, or each 16 KiB chunk would come back to the main thread.
const brotliCompress = promisify(zlib.brotliCompress)
const brotliDecompress = promisify(zlib.brotliDecompress)

const cacheError = (operation: string, error: SqlError.SqlError): Errors.ChainCacheError =>
  new Errors.ChainCacheError({ operation, message: `${error.reason._tag}: ${describe(error.reason.cause) || error.message}`, cause: error })

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : cause === undefined ? "" : String(cause))
