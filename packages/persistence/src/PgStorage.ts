/**
 * PgStorage: the Storage port on Postgres (design.md §3). It uses only the abstract SqlClient, so the same
 * code serves a Postgres server and embedded PGlite. One schema per indexer, guarded by an advisory lock held
 * for the layer's lifetime and by a fingerprint of the entity definitions; one transaction per write.
 */
import { createHash } from "node:crypto"
import { Data, Effect, Exit, Fiber, Layer, Ref, Result, Scope } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { Batch, Build, Change, Errors, Event, type Indexer, Storage } from "@chainstore/core"
import * as Columns from "./Columns.js"
import * as Statements from "./internal/Statements.js"
import * as Tables from "./Tables.js"

export interface Options {
  /** The Postgres schema holding the indexer's tables (default "public"). */
  readonly schema?: string | undefined
}

/** A statement of a write failed; `unit` names the entity, effect or table whose rows it carried. */
class StatementFailed extends Data.TaggedError("StatementFailed")<{ readonly unit: string; readonly error: SqlError.SqlError }> {}

type Row = Readonly<Record<string, unknown>>

// One closure over the client, schema and layout shared by every method; it runs once, the methods are short.
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const layerScope = yield* Effect.scope
    const schema = options.schema ?? "public"
    const layoutRef = yield* Ref.make<Tables.Layout | undefined>(undefined)
    const lockedRef = yield* Ref.make(false)

    const query = <A extends object = Row>(operation: string, text: string, params: ReadonlyArray<unknown> = []) =>
      sql.unsafe<A>(text, params).pipe(Effect.mapError((error) => fromSqlError(operation, error)))

    const transaction = <A, E, R>(operation: string, effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(effect).pipe(
        Effect.mapError((error): E | Errors.StorageError => (SqlError.isSqlError(error) ? fromSqlError(operation, error) : error)),
        // A lost connection also fails the ROLLBACK, which the client raises as defects: recover the typed failure.
        Effect.catchCause((cause): Effect.Effect<never, E | Errors.StorageError> => {
          if (cause.reasons.some((r) => r._tag === "Fail" || r._tag === "Interrupt")) return Effect.failCause(cause)
          for (const reason of cause.reasons) {
            if (reason._tag === "Die" && reason.defect instanceof StatementFailed) {
              return Effect.fail(fromSqlError(operation, reason.defect.error, reason.defect.unit))
            }
          }
          for (const reason of cause.reasons) {
            if (reason._tag === "Die" && SqlError.isSqlError(reason.defect)) return Effect.fail(fromSqlError(operation, reason.defect))
          }
          return Effect.failCause(cause)
        })
      )

    const initialized = (operation: string) =>
      Effect.flatMap(Ref.get(layoutRef), (layout) =>
        layout === undefined
          ? Effect.fail(storageError(operation, `storage for schema "${schema}" is not initialized: call initialize first`))
          : Effect.succeed(layout))

    const entityTable = (operation: string, layout: Tables.Layout, entity: string) => {
      const table = layout.entities.find((t) => t.entity === entity)
      return table === undefined
        ? Effect.fail(storageError(operation, `unknown entity "${entity}"`))
        : Effect.succeed(table)
    }

    const effectTable = (operation: string, layout: Tables.Layout, effect: string) => {
      const table = layout.effects.find((t) => t.effect === effect)
      return table === undefined
        ? Effect.fail(storageError(operation, `unknown effect "${effect}"`))
        : Effect.succeed(table)
    }

    /** Runs pure encoding/decoding code that throws on values it cannot handle. */
    const attempt = <A>(operation: string, what: string, f: () => A) =>
      Effect.try({ try: f, catch: (cause) => storageError(operation, `${what}: ${describe(cause)}`, cause) })

    // The advisory lock lives on a reserved connection in a scope under the layer's: held until the layer closes.
    const lock = Effect.gen(function*() {
      if (yield* Ref.get(lockedRef)) return
      const scope = yield* Scope.fork(layerScope, "sequential")
      const key = advisoryKey(schema)
      const acquired = yield* Effect.gen(function*() {
        const connection = yield* sql.reserve
        const rows: ReadonlyArray<{ readonly locked?: unknown }> = yield* connection.execute(
          `SELECT pg_try_advisory_lock($1::int8) AS "locked"`,
          [key],
          undefined
        )
        if (rows[0]?.locked !== true) return false
        yield* Effect.addFinalizer(() => Effect.ignore(connection.execute(`SELECT pg_advisory_unlock($1::int8)`, [key], undefined)))
        return true
      }).pipe(
        Scope.provide(scope),
        Effect.mapError((error) => fromSqlError("initialize", error)),
        Effect.onError(() => Scope.close(scope, Exit.void))
      )
      if (!acquired) {
        yield* Scope.close(scope, Exit.void)
        return yield* storageError(
          "initialize",
          `schema "${schema}" is in use by another chainstore process (its advisory lock is held): stop that process or use another schema`
        )
      }
      yield* Ref.set(lockedRef, true)
    })

    const readResume = (operation: string) =>
      Effect.gen(function*() {
        const state = yield* query<{ readonly committed: string }>(operation, Statements.selectState(schema))
        const chains = yield* query<ChainRow>(operation, Statements.selectChains(schema))
        return {
          committedCheckpointId: BigInt(state[0]?.committed ?? "0"),
          chains: chains.map(decodeChain)
        } satisfies Storage.ResumeState
      })

    const initialize = Effect.fn("PgStorage.initialize")(function*(indexer: Indexer.Indexer) {
      const layout = Tables.make(indexer, schema)
      if (Result.isFailure(layout)) return yield* storageError("initialize", `invalid identifier: ${layout.failure}`)
      yield* lock
      const defs = Tables.definitions(layout.success)
      const fingerprint = Tables.fingerprint(defs)
      yield* transaction(
        "initialize",
        Effect.gen(function*() {
          const run = (text: string, params?: ReadonlyArray<unknown>) => query("initialize", text, params)
          yield* run(Statements.createSchema(schema))
          yield* run(Statements.createState(schema))
          yield* run(Statements.addBuildColumn(schema))
          const stored = yield* query<StateRow>("initialize", Statements.selectState(schema))
          const state = stored[0]
          if (state === undefined) {
            yield* run(Statements.insertState(schema), [Tables.schemaVersion, fingerprint, JSON.stringify(defs)])
          } else if (state.schema_version !== Tables.schemaVersion) {
            return yield* storageError(
              "initialize",
              `schema "${schema}" was written by chainstore storage version ${state.schema_version}, this build uses version ${Tables.schemaVersion}. ${resetHint}`
            )
          } else if (indexer.build !== undefined && state.build !== null && state.build.id !== indexer.build.id) {
            // Before the entities' check: a build's change explains a change of its entities too.
            return yield* Build.changedError(state.build, indexer.build)
          } else if (state.entities_hash !== fingerprint) {
            const differences = Tables.diff(state.entities as Tables.Definitions, defs)
            return yield* storageError(
              "initialize",
              `schema "${schema}" holds tables of different entity definitions: ${differences.join("; ")}. ${resetHint}`
            )
          }
          if (indexer.build !== undefined && state?.build?.id !== indexer.build.id) yield* run(Statements.updateBuild(schema), [JSON.stringify(indexer.build)])
          yield* run(Statements.createChains(schema))
          yield* run(Statements.createCheckpoints(schema))
          yield* run(Statements.createCheckpointsIndex(schema))
          yield* run(Statements.createAddresses(schema))
          yield* run(Statements.createAddressesIndex(schema))
          for (const table of layout.success.entities) {
            yield* run(Statements.createEntity(schema, table))
            yield* run(Statements.createHistory(schema, table))
            yield* run(Statements.createHistoryIndex(schema, table))
            for (const column of table.indexes) yield* run(Statements.createEntityIndex(schema, table, column))
          }
          for (const table of layout.success.effects) yield* run(Statements.createEffect(schema, table))
          if (layout.success.rawEvents) {
            yield* run(Statements.createRawEvents(schema))
            yield* run(Statements.createRawEventsIndex(schema))
          }
          if (indexer.chains.length > 0) {
            yield* run(Statements.insertChains(schema), [
              Columns.arrayParam(indexer.chains.map((c) => String(c.id))),
              Columns.arrayParam(indexer.chains.map((c) => String(c.startBlock))),
              Columns.arrayParam(indexer.chains.map((c) => (c.endBlock === undefined ? null : String(c.endBlock)))),
              Columns.arrayParam(indexer.chains.map((c) => String(c.reorgWindow ?? defaultReorgWindow)))
            ])
          }
        })
      )
      yield* Ref.set(layoutRef, layout.success)
      return yield* readResume("initialize")
    })

    const loadByIds = Effect.fn("PgStorage.loadByIds")(function*(entity: string, ids: ReadonlyArray<string>) {
      const layout = yield* initialized("loadByIds")
      const table = yield* entityTable("loadByIds", layout, entity)
      if (ids.length === 0) return []
      const rows = yield* query("loadByIds", Statements.selectByIds(schema, table), [Columns.arrayParam(ids)])
      return yield* attempt("loadByIds", `cannot decode ${entity} rows`, () => rows.map((row) => Columns.decodeRow(table.columns, row)))
    })

    const loadByField = Effect.fn("PgStorage.loadByField")(function*(entity: string, field: string, op: "eq" | "gt" | "lt", value: unknown) {
      const layout = yield* initialized("loadByField")
      const table = yield* entityTable("loadByField", layout, entity)
      const column = table.columns.find((c) => c.field === field)
      if (column === undefined) return yield* storageError("loadByField", `entity "${entity}" has no field "${field}"`)
      let rows: ReadonlyArray<Row>
      if (value === null || value === undefined) {
        if (op !== "eq") return []
        rows = yield* query("loadByField", Statements.selectByNull(schema, table, column))
      } else {
        const param = yield* attempt("loadByField", `cannot encode ${entity}.${field} value`, () => column.encode(value))
        rows = yield* query("loadByField", Statements.selectByField(schema, table, column, op), [param])
      }
      return yield* attempt("loadByField", `cannot decode ${entity} rows`, () => rows.map((row) => Columns.decodeRow(table.columns, row)))
    })

    const loadEffectEntries = Effect.fn("PgStorage.loadEffectEntries")(function*(effect: string, keys: ReadonlyArray<string>) {
      const layout = yield* initialized("loadEffectEntries")
      const table = yield* effectTable("loadEffectEntries", layout, effect)
      if (keys.length === 0) return []
      const rows = yield* query<{ readonly id: string; readonly output: unknown }>(
        "loadEffectEntries",
        Statements.selectEffects(schema, table),
        [Columns.arrayParam(keys)]
      )
      return rows.map((row) => ({ key: row.id, output: row.output }))
    })

    const writeBatch = Effect.fn("PgStorage.writeBatch")(function*(plan: Storage.WritePlan) {
      const layout = yield* initialized("writeBatch")
      // NUL bytes are rare: only a failed attempt pays for stripping them, and only in the offending unit's rows.
      const write = (strip: ReadonlySet<string>): Effect.Effect<void, Errors.StorageError> =>
        transaction("writeBatch", writeSteps(sql, schema, layout, plan, strip)).pipe(
          Effect.catchTag("StatementFailed", (failed: StatementFailed) =>
            isTextError(failed.error) && !strip.has(failed.unit)
              ? write(new Set([...strip, failed.unit]))
              : Effect.fail(fromSqlError("writeBatch", failed.error, failed.unit)))
        )
      yield* write(new Set())
    })

    const writeChainMeta = Effect.fn("PgStorage.writeChainMeta")(function*(meta: ReadonlyArray<Storage.ChainMeta>) {
      yield* initialized("writeChainMeta")
      if (meta.length === 0) return
      yield* query("writeChainMeta", Statements.updateChainMeta(schema), chainMetaParams(meta))
    })

    const rollbackTarget = Effect.fn("PgStorage.rollbackTarget")(function*(chainId: number, blockNumber: number) {
      yield* initialized("rollbackTarget")
      const rows = yield* query<{ readonly target: string }>("rollbackTarget", Statements.rollbackTarget(schema), [String(chainId), String(blockNumber)])
      return BigInt(rows[0]?.target ?? "0")
    })

    const readRollbackDiff = Effect.fn("PgStorage.readRollbackDiff")(function*(target: bigint) {
      const layout = yield* initialized("readRollbackDiff")
      const entities: Array<{ entity: string; changes: Array<Change.Change<unknown>> }> = []
      for (const table of layout.entities) {
        const rows = yield* query("readRollbackDiff", Statements.rollbackDiff(schema, table), [String(target)])
        if (rows.length === 0) continue
        const changes = yield* attempt("readRollbackDiff", `cannot decode ${table.entity} history`, () =>
          rows.map((row) => {
            const id = row.chainstore_diff_id as string
            return row.chainstore_change === "SET"
              ? Change.set<unknown>(id, Columns.decodeRow(table.columns, row), 0n)
              : Change.del<unknown>(id, 0n)
          }))
        entities.push({ entity: table.entity, changes })
      }
      const chains = yield* query<{ readonly chain_id: string; readonly progress_block: string; readonly events: string }>(
        "readRollbackDiff",
        Statements.rollbackProgress(schema),
        [String(target)]
      )
      return {
        entities,
        chains: chains.map((c) => ({ chainId: Number(c.chain_id), progressBlock: Number(c.progress_block), eventsProcessedDiff: Number(c.events) }))
      } satisfies Storage.RollbackDiff
    })

    const storedBlockHashes = Effect.fn("PgStorage.storedBlockHashes")(function*(chainId: number, fromBlock: number) {
      yield* initialized("storedBlockHashes")
      const rows = yield* query<{ readonly block_number: string; readonly block_hash: string }>(
        "storedBlockHashes",
        Statements.storedBlockHashes(schema),
        [String(chainId), String(fromBlock)]
      )
      return rows.map((r) => ({ number: Number(r.block_number), hash: r.block_hash }))
    })

    const loadAddresses = Effect.fn("PgStorage.loadAddresses")(function*(chainId: number) {
      yield* initialized("loadAddresses")
      const rows = yield* query<AddressRow>("loadAddresses", Statements.selectAddresses(schema), [String(chainId)])
      return rows.map((r): Batch.Registration => ({
        chainId: Number(r.chain_id),
        contractName: r.contract_name,
        address: r.address,
        blockNumber: Number(r.block_number),
        logIndex: r.log_index,
        checkpointId: BigInt(r.checkpoint_id)
      }))
    })

    const pruneHistory = Effect.fn("PgStorage.pruneHistory")(function*(safe: bigint) {
      const layout = yield* initialized("pruneHistory")
      yield* transaction(
        "pruneHistory",
        Effect.gen(function*() {
          for (const table of layout.entities) yield* query("pruneHistory", Statements.pruneHistory(schema, table), [String(safe)])
          yield* query("pruneHistory", Statements.pruneCheckpoints(schema), [String(safe)])
        })
      )
    })

    const status = Effect.gen(function*() {
      const layout = yield* initialized("status")
      const resume = yield* readResume("status")
      const tables = [...layout.entities.map((t) => t.name), ...layout.effects.map((t) => t.name)]
      const counts = new Map<string, number>()
      if (tables.length > 0) {
        const rows = yield* query<{ readonly name: string; readonly rows: string }>("status", Statements.countRows(schema, tables), tables)
        for (const row of rows) counts.set(row.name, Number(row.rows))
      }
      return {
        ...resume,
        entityCounts: layout.entities.map((t) => ({ entity: t.entity, rows: counts.get(t.name) ?? 0 })),
        effectCounts: layout.effects.map((t) => ({ effect: t.effect, rows: counts.get(t.name) ?? 0 }))
      } satisfies Storage.Status
    }).pipe(Effect.withSpan("PgStorage.status"))

    const reset = Effect.gen(function*() {
      const schemaProblem = Tables.checkSchema(schema)
      if (schemaProblem !== undefined) return yield* storageError("reset", `invalid identifier: ${schemaProblem}`)
      yield* lock
      // Dropping a promoted schema would drop the readers' views with it (CASCADE): the outage promote avoids.
      const readers = yield* query<{ readonly view_schema: string }>("reset", Statements.readersOf, [schema])
      if (readers.length > 0) {
        return yield* storageError(
          "reset",
          `schema "${schema}" is promoted: views in schema ${readers.map((r) => `"${r.view_schema}"`).join(", ")} read it (chainstore db promote). Promote another schema first, or index this build into a new schema`
        )
      }
      if (schema !== "public") {
        yield* query("reset", Statements.dropSchema(schema))
      } else {
        // Tables of the current layout, of the stored definitions (possibly older), and any chainstore_ table.
        const tables = new Set<string>()
        const layout = yield* Ref.get(layoutRef)
        if (layout !== undefined) for (const t of Tables.allTables(layout)) tables.add(t)
        const exists = yield* query<{ readonly exists: boolean }>("reset", Statements.tableExists, [Statements.qualifiedName(schema, Tables.state)])
        if (exists[0]?.exists === true) {
          const state = yield* query<StateRow>("reset", Statements.selectState(schema))
          for (const def of (state[0]?.entities ?? []) as Tables.Definitions) {
            tables.add(def.table)
            tables.add(Tables.historyPrefix + def.table)
          }
        }
        const internal = yield* query<{ readonly tablename: string }>("reset", Statements.listChainstoreTables, [schema])
        for (const row of internal) tables.add(row.tablename)
        if (tables.size > 0) yield* query("reset", Statements.dropTables(schema, [...tables]))
      }
      yield* Ref.set(layoutRef, undefined)
    }).pipe(Effect.withSpan("PgStorage.reset"))

    return Storage.Storage.of({
      initialize,
      loadByIds,
      loadByField,
      loadEffectEntries,
      writeBatch,
      writeChainMeta,
      rollbackTarget,
      readRollbackDiff,
      storedBlockHashes,
      loadAddresses,
      pruneHistory,
      status,
      reset
    })
  })

/** Storage on the SqlClient in context, in `options.schema` (default "public"). */
export const layer = (options: Options = {}): Layer.Layer<Storage.Storage, never, SqlClient.SqlClient> =>
  Layer.effect(Storage.Storage, make(options))

// ---------------------------------------------------------------------------------------------------------------
// The write transaction (design.md §3): one function per step, run in order by `writeSteps`.

/** What every step writes through: statements of one attempt and the rows it writes, NULs stripped per unit. */
interface Tx {
  readonly schema: string
  /** Runs one statement; its failure names the unit (entity, effect or table) whose rows it carried. */
  readonly step: (unit: string, text: string, params: ReadonlyArray<unknown>) => Effect.Effect<void, StatementFailed>
  /** Runs `text` over rows given column by column, one statement per chunk of the parameter size budget. */
  readonly bulk: (unit: string, text: string, columns: ReadonlyArray<ReadonlyArray<string | null>>) => Effect.Effect<void, StatementFailed>
  /** The rows of `unit` as this attempt writes them: with NULs stripped after an attempt failed on them. */
  readonly values: <A>(unit: string, rows: ReadonlyArray<A>) => ReadonlyArray<A>
}

/** One entity's part of a write: the run's steps, and the staged rollback's diff (entity table only). */
interface EntityWrite {
  readonly table: Tables.EntityTable
  readonly unit: string
  readonly steps: ReadonlyArray<Change.Change<unknown>>
  readonly diff: ReadonlyArray<Change.Change<unknown>>
}

const writeSteps = (
  sql: SqlClient.SqlClient,
  schema: string,
  layout: Tables.Layout,
  plan: Storage.WritePlan,
  strip: ReadonlySet<string>
): Effect.Effect<void, StatementFailed | Errors.StorageError> =>
  Effect.gen(function*() {
    const tx = makeTx(sql, schema, strip)
    const entities = yield* entityWrites(tx, layout, plan)
    if (plan.rollback !== undefined) yield* applyStagedRollback(tx, layout, plan.rollback.targetCheckpointId, entities)
    if (plan.batch.isInReorgThreshold) yield* writeHistory(tx, entities)
    yield* writeEntities(tx, entities)
    if (layout.rawEvents) yield* writeRawEvents(tx, plan.batch)
    yield* writeEffectRows(tx, layout, plan.effects)
    yield* writeProgress(tx, plan)
    if (plan.chainMeta !== undefined) yield* writeChainMetadata(tx, plan.chainMeta)
  })

const makeTx = (sql: SqlClient.SqlClient, schema: string, strip: ReadonlySet<string>): Tx => {
  const step = (unit: string, text: string, params: ReadonlyArray<unknown>) =>
    Effect.asVoid(sql.unsafe(text, params)).pipe(Effect.mapError((error) => new StatementFailed({ unit, error })))
  return {
    schema,
    step,
    // Rows are split only when a statement's parameters would pass the size budget.
    bulk: (unit, text, columns) =>
      Effect.forEach(
        Columns.chunkRanges(columns, maxStatementChars),
        ([from, to]) => step(unit, text, columns.map((c) => Columns.arrayParam(from === 0 && to === c.length ? c : c.slice(from, to)))),
        { discard: true }
      ),
    values: <A>(unit: string, rows: ReadonlyArray<A>): ReadonlyArray<A> => (strip.has(unit) ? rows.map((row) => Columns.cleanText(row) as A) : rows)
  }
}

const encode = <A>(what: string, f: () => A) =>
  Effect.try({ try: f, catch: (cause) => storageError("writeBatch", `cannot encode ${what}: ${describe(cause)}`, cause) })

/** Each entity's changes, split into the run's steps and the diff of a staged rollback (stamped with its checkpoint). */
const entityWrites = (tx: Tx, layout: Tables.Layout, plan: Storage.WritePlan) =>
  Effect.forEach(plan.entities, ({ changes, entity }) => {
    const table = layout.entities.find((t) => t.entity === entity)
    if (table === undefined) return Effect.fail(storageError("writeBatch", `unknown entity "${entity}"`))
    const unit = `entity ${entity}`
    const diffCheckpoint = plan.rollback?.diffCheckpointId
    if (diffCheckpoint === undefined) return Effect.succeed<EntityWrite>({ table, unit, steps: tx.values(unit, changes), diff: [] })
    const steps: Array<Change.Change<unknown>> = []
    const diff: Array<Change.Change<unknown>> = []
    for (const change of tx.values(unit, changes)) (change.checkpointId === diffCheckpoint ? diff : steps).push(change)
    return Effect.succeed<EntityWrite>({ table, unit, steps, diff })
  })

/** Leaves each id of `changes` as its latest change says: deleted, or holding the latest Set's value. */
const applyLatest = (tx: Tx, table: Tables.EntityTable, unit: string, changes: ReadonlyArray<Change.Change<unknown>>) =>
  Effect.gen(function*() {
    if (changes.length === 0) return
    const latest = Change.latestPerId(changes)
    const sets: Array<unknown> = []
    for (const change of latest) if (change._tag === "Set") sets.push(change.entity)
    // The server deletes while this thread encodes the rows to insert.
    const deleting = yield* Effect.forkChild(tx.step(unit, Statements.deleteIds(tx.schema, table.name), [latest.map((c) => c.entityId)]))
    const encoded = yield* Effect.exit(encode(`${table.entity} rows`, () => Columns.encodeColumns(table.columns, sets)))
    yield* Fiber.join(deleting)
    const columns = yield* encoded
    if (sets.length > 0) yield* tx.bulk(unit, Statements.insertRows(tx.schema, table), columns)
  })

/** 0. A staged rollback: forget what came after the target, then restore the entity tables (no history). */
const applyStagedRollback = (tx: Tx, layout: Tables.Layout, targetCheckpointId: bigint, entities: ReadonlyArray<EntityWrite>) =>
  Effect.gen(function*() {
    const deleteAfter = (unit: string, table: string, column: string) =>
      tx.step(unit, Statements.deleteAfter(tx.schema, table, column), [String(targetCheckpointId)])
    for (const table of layout.entities) yield* deleteAfter(`entity ${table.entity}`, table.history, "chainstore_checkpoint_id")
    yield* deleteAfter("checkpoints", Tables.checkpoints, "id")
    yield* deleteAfter("addresses", Tables.addresses, "checkpoint_id")
    for (const table of layout.effects) {
      if (table.reorgSensitive) yield* deleteAfter(`effect ${table.effect}`, table.name, "checkpoint_id")
    }
    if (layout.rawEvents) yield* deleteAfter("raw events", Tables.rawEvents, "checkpoint_id")
    for (const { diff, table, unit } of entities) yield* applyLatest(tx, table, unit, diff)
  })

/** 1. History (inside the reorg threshold): the current row of ids without history at checkpoint 0, then every step. */
const writeHistory = (tx: Tx, entities: ReadonlyArray<EntityWrite>) =>
  Effect.forEach(entities, ({ steps, table, unit }) =>
    Effect.gen(function*() {
      if (steps.length === 0) return
      // The backfill runs before step 2 overwrites the rows it copies.
      const ids = [...new Set(steps.map((c) => c.entityId))]
      yield* tx.step(unit, Statements.backfillHistory(tx.schema, table), [Columns.arrayParam(ids)])
      const rows = dedupeHistory(steps)
      const columns = yield* encode(`${table.entity} history`, () => [
        ...Columns.encodeColumns(table.columns, rows.map((c) => (c._tag === "Set" ? c.entity : { id: c.entityId }))),
        rows.map((c) => c.checkpointId.toString()),
        rows.map((c) => (c._tag === "Set" ? "SET" : "DELETE"))
      ])
      yield* tx.bulk(unit, Statements.insertHistory(tx.schema, table), columns)
    }), { discard: true })

/** 2. Entity tables: the latest change per id. */
const writeEntities = (tx: Tx, entities: ReadonlyArray<EntityWrite>) =>
  Effect.forEach(entities, ({ steps, table, unit }) => applyLatest(tx, table, unit, steps), { discard: true })

/** 3. Raw events (when the indexer keeps them), built from the batch's events (block handlers' items are no events). */
const writeRawEvents = (tx: Tx, batch: Batch.Batch) =>
  Effect.gen(function*() {
    const unit = "raw events"
    const itemIds = Batch.itemCheckpointIds(batch)
    const events: Array<Event.Event> = []
    const checkpointIds: Array<bigint> = []
    for (let i = 0; i < batch.items.length; i++) {
      const item = batch.items[i]!
      if (Event.isBlockItem(item)) continue
      events.push(item)
      checkpointIds.push(itemIds[i]!)
    }
    if (events.length === 0) return
    const columns = yield* encode("raw events", () => rawEventColumns(tx.values(unit, events), checkpointIds))
    yield* tx.bulk(unit, Statements.insertRawEvents(tx.schema), columns)
  })

/** 4. Effect cache rows: per key the last row of the write. */
const writeEffectRows = (tx: Tx, layout: Tables.Layout, effects: Storage.WritePlan["effects"]) =>
  Effect.forEach(effects, ({ effect, rows }) =>
    Effect.gen(function*() {
      if (rows.length === 0) return
      const table = layout.effects.find((t) => t.effect === effect)
      if (table === undefined) return yield* storageError("writeBatch", `unknown effect "${effect}"`)
      const unit = `effect ${effect}`
      const latest = tx.values(unit, [...new Map(rows.map((r) => [r.key, r])).values()])
      const columns = yield* encode(`${effect} outputs`, () => [
        latest.map((r) => r.key),
        latest.map((r) => Columns.stringifyJson(r.output)),
        latest.map((r) => r.checkpointId.toString())
      ])
      yield* tx.step(unit, Statements.deleteIds(tx.schema, table.name), [columns[0]])
      yield* tx.bulk(unit, Statements.insertEffects(tx.schema, table), columns)
    }), { discard: true })

/** 5. Checkpoints (inside the reorg threshold), chain progress, registered addresses and the committed frontier. */
const writeProgress = (tx: Tx, plan: Storage.WritePlan) =>
  Effect.gen(function*() {
    const { batch } = plan
    if (batch.isInReorgThreshold && batch.checkpointIds.length > 0) {
      const unit = "checkpoints"
      yield* tx.bulk(unit, Statements.insertCheckpoints(tx.schema), [
        batch.checkpointIds.map((id) => id.toString()),
        batch.checkpointChainIds.map(String),
        batch.checkpointBlockNumbers.map(String),
        tx.values(unit, batch.checkpointBlockHashes),
        batch.checkpointEventsProcessed.map(String)
      ])
    }
    if (batch.progress.length > 0) {
      yield* tx.step("chains", Statements.updateProgress(tx.schema), [
        Columns.arrayParam(batch.progress.map((p) => String(p.chainId))),
        Columns.arrayParam(batch.progress.map((p) => String(p.progressBlock))),
        Columns.arrayParam(batch.progress.map((p) => String(p.sourceBlock))),
        Columns.arrayParam(batch.progress.map((p) => String(p.eventsProcessed))),
        Columns.arrayParam(batch.progress.map((p) => (p.firstEventBlock === undefined ? null : String(p.firstEventBlock))))
      ])
    }
    if (batch.registrations.length > 0) {
      const unit = "addresses"
      const registrations = tx.values(unit, batch.registrations)
      yield* tx.bulk(unit, Statements.insertAddresses(tx.schema), [
        registrations.map((r) => String(r.chainId)),
        registrations.map((r) => r.contractName),
        registrations.map((r) => r.address),
        registrations.map((r) => String(r.blockNumber)),
        registrations.map((r) => String(r.logIndex)),
        registrations.map((r) => r.checkpointId.toString())
      ])
    }
    yield* tx.step("state", Statements.updateCommitted(tx.schema), [plan.committedCheckpointId.toString()])
  })

/** 6. Chain metadata, when the plan carries it (dirty). */
const writeChainMetadata = (tx: Tx, meta: ReadonlyArray<Storage.ChainMeta>) =>
  meta.length === 0 ? Effect.void : tx.step("chains", Statements.updateChainMeta(tx.schema), chainMetaParams(meta))

/** One history row per (id, checkpoint): the last change of an id within a checkpoint is its step. */
const dedupeHistory = (changes: ReadonlyArray<Change.Change<unknown>>): Array<Change.Change<unknown>> => {
  const byKey = new Map<string, Change.Change<unknown>>()
  for (const change of changes) byKey.set(`${change.checkpointId}:${change.entityId}`, change)
  return byKey.size === changes.length ? [...changes] : [...byKey.values()]
}

/** Raw event rows, column by column, in the order of `Statements.insertRawEvents`. */
const rawEventColumns = (items: ReadonlyArray<Event.Event>, checkpointIds: ReadonlyArray<bigint>): Array<Array<string | null>> => {
  const n = items.length
  const [eventId, chainId, eventName, contractName, blockNumber, logIndex, srcAddress, blockHash, blockTimestamp, blockFields, transactionFields, params, checkpointId] =
    Array.from({ length: 13 }, () => new Array<string | null>(n)) as [Array<string | null>, ...Array<Array<string | null>>] & { length: 13 }
  for (let i = 0; i < n; i++) {
    const e = items[i]!
    eventId[i] = Event.id(e)
    chainId![i] = String(e.chainId)
    eventName![i] = e.eventName
    contractName![i] = e.contractName
    blockNumber![i] = String(e.blockNumber)
    logIndex![i] = String(e.logIndex)
    srcAddress![i] = e.srcAddress
    blockHash![i] = e.blockHash
    blockTimestamp![i] = String(e.blockTimestamp)
    blockFields![i] = Columns.stringifyJson(e.block)
    transactionFields![i] = Columns.stringifyJson(e.transaction)
    params![i] = Columns.stringifyJson(e.params)
    checkpointId![i] = checkpointIds[i]?.toString() ?? null
  }
  return [eventId, chainId!, eventName!, contractName!, blockNumber!, logIndex!, srcAddress!, blockHash!, blockTimestamp!, blockFields!, transactionFields!, params!, checkpointId!]
}

const chainMetaParams = (meta: ReadonlyArray<Storage.ChainMeta>): ReadonlyArray<unknown> => [
  Columns.arrayParam(meta.map((m) => String(m.chainId))),
  Columns.arrayParam(meta.map((m) => String(m.sourceBlock))),
  Columns.arrayParam(meta.map((m) => String(m.bufferBlock))),
  Columns.arrayParam(meta.map((m) => (m.firstEventBlock === undefined ? null : String(m.firstEventBlock)))),
  Columns.arrayParam(meta.map((m) => (m.readyAt === undefined ? null : m.readyAt.toISOString())))
]

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const defaultReorgWindow = 200
const maxStatementChars = 32 * 1024 * 1024
const resetHint = "Run `chainstore db reset` to drop the stored tables and index from the start."

interface StateRow {
  readonly schema_version: number
  readonly entities_hash: string
  readonly entities: unknown
  readonly build: Build.Build | null
  readonly committed: string
}

interface AddressRow {
  readonly chain_id: string
  readonly contract_name: string
  readonly address: string
  readonly block_number: string
  readonly log_index: number
  readonly checkpoint_id: string
}

/** A row of chainstore_chains as `selectChains` reads it (numbers as text). */
export interface ChainRow {
  readonly chain_id: string
  readonly start_block: string
  readonly end_block: string | null
  readonly progress_block: string
  readonly source_block: string
  readonly events_processed: string
  readonly first_event_block: string | null
  readonly ready_at: Date | null
  readonly reorg_window: number
}

export const decodeChain = (row: ChainRow): Storage.ChainState => ({
  chainId: Number(row.chain_id),
  startBlock: Number(row.start_block),
  endBlock: row.end_block === null ? undefined : Number(row.end_block),
  progressBlock: Number(row.progress_block),
  sourceBlock: Number(row.source_block),
  eventsProcessed: Number(row.events_processed),
  firstEventBlock: row.first_event_block === null ? undefined : Number(row.first_event_block),
  readyAt: row.ready_at ?? undefined,
  reorgWindow: row.reorg_window
})

/** The advisory lock key of a schema: 64 bits of a hash, so different schemas of one database do not contend. */
const advisoryKey = (schema: string): string =>
  BigInt.asIntN(64, BigInt(`0x${createHash("sha256").update(`chainstore:${schema}`).digest("hex").slice(0, 16)}`)).toString()

const storageError = (operation: string, message: string, cause?: unknown) =>
  new Errors.StorageError({ operation, message, isRetryable: false, ...(cause === undefined ? {} : { cause }) })

/** SQLSTATEs worth re-running a whole transaction for: the server went away or a concurrent one won. */
const retryableStates = new Set(["57P01", "57P02", "57P03", "40001", "40P01"])

const sqlState = (error: SqlError.SqlError): string | undefined => {
  const cause: unknown = error.reason.cause
  if (typeof cause !== "object" || cause === null || !("code" in cause)) return undefined
  return typeof cause.code === "string" ? cause.code : undefined
}

const fromSqlError = (operation: string, error: SqlError.SqlError, unit?: string): Errors.StorageError => {
  const code = sqlState(error)
  const detail = describe(error.reason.cause) || error.reason.message || error.message
  return new Errors.StorageError({
    operation,
    message: redact(`${unit === undefined ? "" : `${unit}: `}${error.reason._tag}: ${detail}${code === undefined ? "" : ` (SQLSTATE ${code})`}`),
    isRetryable: error.isRetryable || (code !== undefined && (retryableStates.has(code) || code.startsWith("08"))),
    cause: error
  })
}

/** Postgres refuses NUL in text (22021) and in jsonb escapes (22P05), and JSON escapes of lone surrogates (22P02). */
const isTextError = (error: SqlError.SqlError): boolean => {
  const code = sqlState(error)
  const message = describe(error.reason.cause)
  const detail = String((error.reason.cause as { readonly detail?: unknown } | undefined)?.detail ?? "")
  return (code === "22021" && message.includes("0x00")) ||
    (code === "22P05" && /unsupported Unicode escape sequence|\\u0000/.test(message)) ||
    (code === "22P02" && /surrogate/.test(detail))
}

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Hides passwords of connection strings and key=value settings that an error message may quote. */
const redact = (message: string): string =>
  message.replace(/(\w+:\/\/[^:/@\s]*:)[^@\s]*@/g, "$1***@").replace(/(password\s*=\s*)\S+/gi, "$1***")
