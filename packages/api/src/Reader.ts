/**
 * Reader: every read of one GraphQL request runs in one read-only REPEATABLE READ transaction, so a request sees
 * one committed snapshot (a write transaction is either wholly in it or not at all). A request's `Session` is
 * what the resolvers get: statements run one at a time on the transaction's connection, batched loaders live
 * as long as the request, and time-travel targets and `_meta` are read from the same snapshot.
 */
import { Context, Duration, Effect, Layer, Metric, Semaphore } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { GraphQLError } from "graphql"
import type { Indexer, Processor } from "@chainstore/core"
import { Columns, PgStorage, Tables } from "@chainstore/persistence"
import * as ApiMetrics from "./ApiMetrics.js"
import * as Catalog from "./Catalog.js"
import { ApiDefinitionError, ReadError } from "./Errors.js"
import * as ReadSql from "./ReadSql.js"

export type Row = Readonly<Record<string, unknown>>

export interface BlockInput {
  readonly number: number
  readonly chainId?: number | null | undefined
}

export interface ChainMeta {
  readonly chainId: number
  readonly startBlock: number
  readonly endBlock: number | null
  /** Handlers ran up to here (the live processor in `run`; the committed block in `serve`). */
  readonly processedBlock: number
  /** Durably written up to here: what this answer reflects. */
  readonly committedBlock: number
  readonly headBlock: number
  readonly ready: boolean
  readonly readyAt: Date | null
  readonly eventsProcessed: number
  /** The first block time-travel can answer for (null: none yet). */
  readonly historyFromBlock: number | null
}

export interface Meta {
  readonly committedCheckpointId: string
  readonly chains: ReadonlyArray<ChainMeta>
}

/** What resolvers work with during one request (the GraphQL context value). Promises: graphql-js awaits them. */
export interface Session {
  readonly catalog: Catalog.Catalog
  /** Runs a statement in the request's transaction; fails with a GraphQLError a client may see. */
  readonly query: <A extends object = Row>(statement: ReadSql.Statement) => Promise<ReadonlyArray<A>>
  /** The checkpoint to read at for a `block` argument (undefined: the committed state), or a GraphQLError. */
  readonly checkpointAt: (block: BlockInput | null | undefined) => Promise<bigint | undefined>
  readonly meta: () => Promise<Meta>
  /** A per-request memo (loaders): made on first use of `key`. */
  readonly memo: <A>(key: string, make: () => A) => A
}

export interface Options {
  /** The Postgres schema of the indexer's tables. */
  readonly schema: string
  /** Longest a statement may run (statement_timeout, set in each read transaction; default 10 s). */
  readonly statementTimeout?: Duration.Input | undefined
  /**
   * The connections already carry a statement_timeout (`chainstore serve` starts them with one): no SET per read
   * transaction, one round trip less per request. Default false.
   */
  readonly connectionStatementTimeout?: boolean | undefined
  /** Live progress of a processor running in this process (`chainstore run`); without it, the committed progress. */
  readonly progress?: Effect.Effect<ReadonlyArray<Processor.ChainReport>> | undefined
}

export class Reader extends Context.Service<Reader, {
  readonly catalog: Catalog.Catalog
  /** Runs `f` with a session over one read-only snapshot; the transaction ends when `f`'s promise settles. */
  readonly read: <A>(f: (session: Session) => Promise<A>) => Effect.Effect<A, ReadError>
}>()("chainstore/api/Reader") {}

export const make = Effect.fn("Reader.make")(function*(indexer: Indexer.Indexer, options: Options) {
  const sql = yield* SqlClient.SqlClient
  const built = Catalog.make(indexer, options.schema)
  if (built._tag === "Failure") return yield* new ApiDefinitionError({ message: `cannot serve this indexer: ${built.failure}` })
  const catalog = built.success
  const statementTimeout = Math.max(1, Math.round(Duration.toMillis(options.statementTimeout ?? Duration.seconds(10))))

  const read = <A>(f: (session: Session) => Promise<A>): Effect.Effect<A, ReadError> =>
    Effect.gen(function*() {
      if (options.connectionStatementTimeout !== true) yield* sql.unsafe(`SELECT set_config('statement_timeout', $1, true)`, [String(statementTimeout)])
      const context = yield* Effect.context<never>()
      const run = Effect.runPromiseExitWith(context)
      // One statement at a time on the connection; closing takes the lock so none is in flight when the transaction ends.
      const lock = Semaphore.makeUnsafe(1)
      let closed = false
      const statement = <R extends object>(s: ReadSql.Statement): Effect.Effect<ReadonlyArray<R>, ReadError> =>
        lock.withPermits(1)(Effect.suspend(() =>
          closed
            ? Effect.fail(new ReadError({ code: "TIMEOUT", public: "the request ended before this read" }))
            : sql.unsafe<R>(s.text, s.params).pipe(Effect.mapError(fromSqlError), Effect.tap(Metric.update(ApiMetrics.statements, 1)))
        ))
      const toPromise = async <B>(effect: Effect.Effect<B, ReadError>): Promise<B> => {
        const exit = await run(effect)
        if (exit._tag === "Success") return exit.value
        const error = exit.cause.reasons.find((r) => r._tag === "Fail")
        const readError = error?._tag === "Fail" ? error.error : ReadError.internal(exit.cause)
        if (readError.code === "INTERNAL") await run(Effect.logWarning("GraphQL read failed", readError.cause))
        throw new GraphQLError(readError.public, { extensions: { code: readError.code } })
      }
      const memo = new Map<string, unknown>()
      let chainsRows: Promise<ReadonlyArray<ChainRow>> | undefined
      const chains = () => (chainsRows ??= toPromise(statement<ChainRow>(ReadSql.chains(options.schema))))
      const targets = new Map<string, Promise<bigint | undefined>>()
      const session: Session = {
        catalog,
        query: <R extends object>(s: ReadSql.Statement) => toPromise(statement<R>(s)),
        checkpointAt: (block) => {
          if (block === null || block === undefined) return Promise.resolve(undefined)
          const key = `${block.chainId ?? ""}:${block.number}`
          let target = targets.get(key)
          if (target === undefined) {
            target = resolveTarget(catalog, block, chains, (chainId, n) => toPromise(statement<{ target: string | null }>(ReadSql.checkpointAt(options.schema, chainId, n))))
            targets.set(key, target)
          }
          return target
        },
        meta: async () => {
          const [rows, committed, live] = await Promise.all([
            chains(),
            toPromise(statement<{ committed: string }>(ReadSql.committed(options.schema))),
            options.progress === undefined ? Promise.resolve(undefined) : toPromise(options.progress)
          ])
          return { committedCheckpointId: committed[0]?.committed ?? "0", chains: rows.map((row) => chainMeta(row, live)) }
        },
        memo: <B>(key: string, make: () => B): B => {
          if (!memo.has(key)) memo.set(key, make())
          return memo.get(key) as B
        }
      }
      return yield* Effect.tryPromise({ try: () => f(session), catch: ReadError.internal }).pipe(
        Effect.ensuring(lock.withPermits(1)(Effect.sync(() => {
          closed = true
        })))
      )
    }).pipe(
      sql.withTransaction,
      Effect.provideService(SqlClient.BeginTransaction, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
      Effect.catchTag("SqlError", (error: SqlError.SqlError) => Effect.fail(fromSqlError(error))),
      Effect.withSpan("Reader.read")
    )

  return Reader.of({ catalog, read })
})

/**
 * Checks that `schema` holds tables written for these entity definitions (what `chainstore serve` does before
 * serving a database another process writes): the stored fingerprint must match.
 */
export const verifyStored = Effect.fn("Reader.verifyStored")(function*(indexer: Indexer.Indexer, schema: string) {
  const sql = yield* SqlClient.SqlClient
  const layout = Tables.make(indexer, schema)
  if (layout._tag === "Failure") return yield* new ApiDefinitionError({ message: `cannot serve this indexer: ${layout.failure}` })
  const exists = yield* sql.unsafe<{ readonly exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS "exists"`, [`${Columns.quote(schema)}.${Columns.quote(Tables.state)}`])
  if (exists[0]?.exists !== true) {
    return yield* new ApiDefinitionError({ message: `schema "${schema}" holds no chainstore tables yet: start \`chainstore run\` on it first` })
  }
  const rows = yield* sql.unsafe<{ readonly entities_hash: string }>(`SELECT "entities_hash" FROM ${Columns.quote(schema)}.${Columns.quote(Tables.state)} WHERE "id" = 1`)
  const expected = Tables.fingerprint(Tables.definitions(layout.success))
  if (rows[0]?.entities_hash !== expected) {
    return yield* new ApiDefinitionError({ message: `schema "${schema}" holds tables of other entity definitions than this indexer's: serve the indexer that wrote them` })
  }
}, Effect.catchTag("SqlError", (error: SqlError.SqlError) => Effect.fail(new ApiDefinitionError({ message: `cannot read the database: ${error.reason._tag}: ${String((error.reason.cause as { message?: unknown } | undefined)?.message ?? error.message)}` }))))

/** The reader of `indexer`'s tables in `options.schema`, on the SqlClient in context. */
export const layer = (indexer: Indexer.Indexer, options: Options): Layer.Layer<Reader, ApiDefinitionError, SqlClient.SqlClient> =>
  Layer.effect(Reader, make(indexer, options))

// ---------------------------------------------------------------------------------------------------------------

/** chainstore_chains as the storage reads it, and where its stored checkpoints start. */
interface ChainRow extends PgStorage.ChainRow {
  readonly history_from: string | null
}

const chainMeta = (row: ChainRow, live: ReadonlyArray<Processor.ChainReport> | undefined): ChainMeta => {
  const chain = PgStorage.decodeChain(row)
  const report = live?.find((c) => c.chainId === chain.chainId)
  const endBlock = chain.endBlock ?? null
  const headBlock = Math.max(report?.head ?? 0, chain.sourceBlock)
  const processedBlock = Math.max(report?.processedBlock ?? chain.progressBlock, chain.progressBlock)
  const readyAt = chain.readyAt === undefined ? null : new Date(chain.readyAt)
  return {
    chainId: chain.chainId,
    startBlock: chain.startBlock,
    endBlock,
    processedBlock,
    committedBlock: chain.progressBlock,
    headBlock,
    ready: readyAt !== null || (report !== undefined && processedBlock >= (endBlock ?? report.head) && report.head > 0),
    readyAt,
    eventsProcessed: Math.max(report?.eventsProcessed ?? 0, chain.eventsProcessed),
    historyFromBlock: historyFrom(row)
  }
}

/** The first block time-travel answers for: history must hold it (stored checkpoints) and it must be inside the reorg window. */
const historyFrom = (row: ChainRow): number | null =>
  row.history_from === null ? null : Math.max(Number(row.history_from), Number(row.source_block) - row.reorg_window)

const resolveTarget = async (
  catalog: Catalog.Catalog,
  block: BlockInput,
  chains: () => Promise<ReadonlyArray<ChainRow>>,
  checkpoint: (chainId: number, block: number) => Promise<ReadonlyArray<{ target: string | null }>>
): Promise<bigint | undefined> => {
  const fail = (code: "BAD_USER_INPUT" | "BLOCK_OUT_OF_RANGE", message: string): never => {
    throw new GraphQLError(message, { extensions: { code } })
  }
  const chainId = block.chainId ?? (catalog.chains.length === 1 ? catalog.chains[0]!.id : fail("BAD_USER_INPUT", `block.chainId is required: this indexer has chains ${catalog.chains.map((c) => c.id).join(", ")}`))
  if (!Number.isSafeInteger(block.number) || block.number < 0) fail("BAD_USER_INPUT", "block.number must be a non-negative integer")
  const row = (await chains()).find((c) => Number(c.chain_id) === chainId) ?? fail("BAD_USER_INPUT", `this indexer has no chain ${chainId}`)
  const committed = Number(row.progress_block)
  if (block.number > committed) fail("BLOCK_OUT_OF_RANGE", `block ${block.number} of chain ${chainId} is not indexed yet: the committed block is ${committed}`)
  const from = historyFrom(row)
  if (from === null || block.number < from) {
    fail(
      "BLOCK_OUT_OF_RANGE",
      from === null || from > committed
        ? `chain ${chainId} holds no history to answer as of block ${block.number} (history is kept inside the reorg window of ${row.reorg_window} blocks)`
        : `block ${block.number} of chain ${chainId} is outside the history window: blocks ${from} to ${committed} can be queried`
    )
  }
  const rows = await checkpoint(chainId, block.number)
  const target = rows[0]?.target ?? null
  return target === null ? fail("BLOCK_OUT_OF_RANGE", `chain ${chainId} has no stored checkpoint at or below block ${block.number}`) : BigInt(target)
}

const fromSqlError = (error: SqlError.SqlError): ReadError => {
  const cause: unknown = error.reason.cause
  const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined
  // 57014: canceled by statement_timeout.
  return code === "57014"
    ? new ReadError({ code: "TIMEOUT", public: "the request took too long and was canceled", cause: error })
    : ReadError.internal(error)
}
