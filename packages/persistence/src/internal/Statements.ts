/**
 * The SQL text of every statement PgStorage runs. Identifiers are always quoted; values are always `$n`
 * parameters, bulk ones as one text array per column cast with `$n::type[]` and expanded by `unnest`.
 */
import { arrayCast, type Column, columnType, type Kind, quote } from "../Columns.js"
import * as Tables from "../Tables.js"

const qualified = (schema: string, table: string): string => `${quote(schema)}.${quote(table)}`

const unnest = (casts: ReadonlyArray<string>, offset = 0): string =>
  `unnest(${casts.map((cast, i) => `$${i + 1 + offset}::${cast}`).join(", ")})`

const columnList = (columns: ReadonlyArray<Column>): string => columns.map((c) => quote(c.name)).join(", ")

/** The scalar cast of one value compared against a column. */
export const scalarCast = (kind: Kind): string => arrayCast(kind).slice(0, -2)

// ---------------------------------------------------------------------------------------------------------------
// Schema

export const createSchema = (schema: string): string => `CREATE SCHEMA IF NOT EXISTS ${quote(schema)}`

export const createState = (schema: string): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, Tables.state)} (
  "id" integer PRIMARY KEY CHECK ("id" = 1),
  "schema_version" integer NOT NULL,
  "entities_hash" text NOT NULL,
  "entities" jsonb NOT NULL,
  "committed_checkpoint_id" bigint NOT NULL,
  "build" jsonb)`

/** The build column, for state tables made before builds were recorded. */
export const addBuildColumn = (schema: string): string =>
  `ALTER TABLE ${qualified(schema, Tables.state)} ADD COLUMN IF NOT EXISTS "build" jsonb`

export const updateBuild = (schema: string): string =>
  `UPDATE ${qualified(schema, Tables.state)} SET "build" = $1::jsonb WHERE "id" = 1`

export const createChains = (schema: string): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, Tables.chains)} (
  "chain_id" bigint PRIMARY KEY,
  "start_block" bigint NOT NULL,
  "end_block" bigint,
  "progress_block" bigint NOT NULL,
  "source_block" bigint NOT NULL,
  "buffer_block" bigint NOT NULL,
  "first_event_block" bigint,
  "events_processed" bigint NOT NULL,
  "ready_at" timestamptz,
  "reorg_window" integer NOT NULL)`

export const createCheckpoints = (schema: string): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, Tables.checkpoints)} (
  "id" bigint PRIMARY KEY,
  "chain_id" bigint NOT NULL,
  "block_number" bigint NOT NULL,
  "block_hash" text NOT NULL,
  "events_processed" integer NOT NULL)`

export const createCheckpointsIndex = (schema: string): string =>
  `CREATE INDEX IF NOT EXISTS ${quote(Tables.indexName(Tables.checkpoints, "chain_id_block_number"))} ON ${qualified(schema, Tables.checkpoints)} ("chain_id", "block_number")`

export const createRawEvents = (schema: string): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, Tables.rawEvents)} (
  "event_id" text PRIMARY KEY,
  "chain_id" bigint NOT NULL,
  "event_name" text NOT NULL,
  "contract_name" text NOT NULL,
  "block_number" bigint NOT NULL,
  "log_index" integer NOT NULL,
  "src_address" text NOT NULL,
  "block_hash" text NOT NULL,
  "block_timestamp" bigint NOT NULL,
  "block_fields" jsonb NOT NULL,
  "transaction_fields" jsonb NOT NULL,
  "params" jsonb NOT NULL,
  "checkpoint_id" bigint NOT NULL)`

export const createRawEventsIndex = (schema: string): string =>
  `CREATE INDEX IF NOT EXISTS ${quote(Tables.indexName(Tables.rawEvents, "checkpoint_id"))} ON ${qualified(schema, Tables.rawEvents)} ("checkpoint_id")`

export const createAddresses = (schema: string): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, Tables.addresses)} (
  "chain_id" bigint NOT NULL,
  "contract_name" text NOT NULL,
  "address" text NOT NULL,
  "block_number" bigint NOT NULL,
  "log_index" integer NOT NULL,
  "checkpoint_id" bigint NOT NULL)`

export const createAddressesIndex = (schema: string): string =>
  `CREATE INDEX IF NOT EXISTS ${quote(Tables.indexName(Tables.addresses, "chain_id_checkpoint_id"))} ON ${qualified(schema, Tables.addresses)} ("chain_id", "checkpoint_id")`

export const insertAddresses = (schema: string): string =>
  `INSERT INTO ${qualified(schema, Tables.addresses)} ("chain_id", "contract_name", "address", "block_number", "log_index", "checkpoint_id")
SELECT * FROM ${unnest(["int8[]", "text[]", "text[]", "int8[]", "int4[]", "int8[]"])}`

/** `$1` chain: its registered addresses, oldest first. */
export const selectAddresses = (schema: string): string =>
  `SELECT "chain_id"::text AS "chain_id", "contract_name", "address", "block_number"::text AS "block_number", "log_index", "checkpoint_id"::text AS "checkpoint_id"
FROM ${qualified(schema, Tables.addresses)} WHERE "chain_id" = $1::int8 ORDER BY "checkpoint_id", "block_number", "log_index"`

export const createEntity = (schema: string, table: Tables.EntityTable): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, table.name)} (\n  ${
    table.columns.map((c) =>
      c.field === "id"
        ? `${quote(c.name)} ${columnType(c.kind)} PRIMARY KEY`
        : `${quote(c.name)} ${columnType(c.kind)}${c.nullable ? "" : " NOT NULL"}`
    ).join(",\n  ")
  })`

export const createEntityIndex = (schema: string, table: Tables.EntityTable, column: string): string =>
  `CREATE INDEX IF NOT EXISTS ${quote(Tables.indexName(table.name, column))} ON ${qualified(schema, table.name)} (${quote(column)})`

export const createHistory = (schema: string, table: Tables.EntityTable): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, table.history)} (\n  ${
    table.columns.map((c) => `${quote(c.name)} ${columnType(c.kind)}${c.field === "id" ? " NOT NULL" : ""}`).join(",\n  ")
  },
  "chainstore_checkpoint_id" bigint NOT NULL,
  "chainstore_change" text NOT NULL CHECK ("chainstore_change" IN ('SET', 'DELETE')),
  PRIMARY KEY ("id", "chainstore_checkpoint_id"))`

export const createHistoryIndex = (schema: string, table: Tables.EntityTable): string =>
  `CREATE INDEX IF NOT EXISTS ${quote(Tables.indexName(table.history, "checkpoint"))} ON ${qualified(schema, table.history)} ("chainstore_checkpoint_id")`

export const createEffect = (schema: string, table: Tables.EffectTable): string =>
  `CREATE TABLE IF NOT EXISTS ${qualified(schema, table.name)} (
  "id" text COLLATE "C" PRIMARY KEY,
  "output" jsonb NOT NULL,
  "checkpoint_id" bigint NOT NULL)`

/** `$1` schema name: the chainstore tables present, so reset also finds tables of an older definition. */
export const listChainstoreTables = `SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename LIKE 'chainstore\\_%'`

export const dropTables = (schema: string, tables: ReadonlyArray<string>): string =>
  `DROP TABLE IF EXISTS ${tables.map((t) => qualified(schema, t)).join(", ")} CASCADE`

export const dropSchema = (schema: string): string => `DROP SCHEMA IF EXISTS ${quote(schema)} CASCADE`

// ---------------------------------------------------------------------------------------------------------------
// State, chains, checkpoints

/** `$1` a qualified table name: whether it exists. */
export const tableExists = `SELECT to_regclass($1) IS NOT NULL AS "exists"`

export const qualifiedName = qualified

/** Schemas with views over this schema's tables (a readers' schema `db promote` made). */
export const readersOf =
  `SELECT DISTINCT view_schema FROM information_schema.view_table_usage WHERE table_schema = $1 AND view_schema <> $1 ORDER BY 1`

export const selectState = (schema: string): string =>
  `SELECT "schema_version", "entities_hash", "entities", "build", "committed_checkpoint_id"::text AS "committed" FROM ${qualified(schema, Tables.state)} WHERE "id" = 1`

export const insertState = (schema: string): string =>
  `INSERT INTO ${qualified(schema, Tables.state)} ("id", "schema_version", "entities_hash", "entities", "committed_checkpoint_id") VALUES (1, $1::int4, $2::text, $3::jsonb, 0)`

export const updateCommitted = (schema: string): string =>
  `UPDATE ${qualified(schema, Tables.state)} SET "committed_checkpoint_id" = $1::int8 WHERE "id" = 1`

export const insertChains = (schema: string): string =>
  `INSERT INTO ${qualified(schema, Tables.chains)} ("chain_id", "start_block", "end_block", "progress_block", "source_block", "buffer_block", "first_event_block", "events_processed", "ready_at", "reorg_window")
SELECT u.chain_id, u.start_block, u.end_block, u.start_block - 1, 0, 0, NULL, 0, NULL, u.reorg_window
FROM ${unnest(["int8[]", "int8[]", "int8[]", "int4[]"])} AS u(chain_id, start_block, end_block, reorg_window)
ON CONFLICT ("chain_id") DO NOTHING`

export const selectChains = (schema: string): string =>
  `SELECT "chain_id"::text AS "chain_id", "start_block"::text AS "start_block", "end_block"::text AS "end_block",
  "progress_block"::text AS "progress_block", "source_block"::text AS "source_block", "events_processed"::text AS "events_processed",
  "first_event_block"::text AS "first_event_block", "ready_at", "reorg_window"
FROM ${qualified(schema, Tables.chains)} ORDER BY "chain_id"`

/** Progress of the chains a batch advanced; the first event block is set once. */
export const updateProgress = (schema: string): string =>
  `UPDATE ${qualified(schema, Tables.chains)} AS c SET
  "progress_block" = u.progress_block, "source_block" = u.source_block, "events_processed" = u.events_processed,
  "first_event_block" = COALESCE(c."first_event_block", u.first_event_block)
FROM ${unnest(["int8[]", "int8[]", "int8[]", "int8[]", "int8[]"])} AS u(chain_id, progress_block, source_block, events_processed, first_event_block)
WHERE c."chain_id" = u.chain_id`

/** Chain metadata; the first event block and the ready time are set once. */
export const updateChainMeta = (schema: string): string =>
  `UPDATE ${qualified(schema, Tables.chains)} AS c SET
  "source_block" = u.source_block, "buffer_block" = u.buffer_block,
  "first_event_block" = COALESCE(c."first_event_block", u.first_event_block), "ready_at" = COALESCE(c."ready_at", u.ready_at)
FROM ${unnest(["int8[]", "int8[]", "int8[]", "int8[]", "timestamptz[]"])} AS u(chain_id, source_block, buffer_block, first_event_block, ready_at)
WHERE c."chain_id" = u.chain_id`

export const insertCheckpoints = (schema: string): string =>
  `INSERT INTO ${qualified(schema, Tables.checkpoints)} ("id", "chain_id", "block_number", "block_hash", "events_processed")
SELECT * FROM ${unnest(["int8[]", "int8[]", "int8[]", "text[]", "int4[]"])}`

/** `$1` chain, `$2` block: the last checkpoint of the chain at or below the block, or 0. */
export const rollbackTarget = (schema: string): string =>
  `SELECT COALESCE(MAX("id"), 0)::text AS "target" FROM ${qualified(schema, Tables.checkpoints)} WHERE "chain_id" = $1::int8 AND "block_number" <= $2::int8`

/** `$1` target: per chain with later checkpoints, the block before the first of them and their event count. */
export const rollbackProgress = (schema: string): string =>
  `SELECT "chain_id"::text AS "chain_id", (MIN("block_number") - 1)::text AS "progress_block", SUM("events_processed")::text AS "events"
FROM ${qualified(schema, Tables.checkpoints)} WHERE "id" > $1::int8 GROUP BY "chain_id" ORDER BY "chain_id"`

export const storedBlockHashes = (schema: string): string =>
  `SELECT "block_number"::text AS "block_number", "block_hash" FROM ${qualified(schema, Tables.checkpoints)}
WHERE "chain_id" = $1::int8 AND "block_number" >= $2::int8 ORDER BY "id"`

/** `$1` a checkpoint id: deletes the rows of a table stamped after it (`column` holds the stamp). */
export const deleteAfter = (schema: string, table: string, column: string): string =>
  `DELETE FROM ${qualified(schema, table)} WHERE ${quote(column)} > $1::int8`

/** `$1` safe checkpoint: deletes the checkpoints below it; the safe one stays, it can be a rollback target. */
export const pruneCheckpoints = (schema: string): string =>
  `DELETE FROM ${qualified(schema, Tables.checkpoints)} WHERE "id" < $1::int8`

// ---------------------------------------------------------------------------------------------------------------
// Entities and history

/**
 * Inserts rows given column by column. Writes delete the ids first and insert: faster than ON CONFLICT DO
 * UPDATE for both new and existing rows (measured in bench/write.ts), and a delete shares the same statement.
 */
export const insertRows = (schema: string, table: Tables.EntityTable): string =>
  `INSERT INTO ${qualified(schema, table.name)} (${columnList(table.columns)})
SELECT * FROM ${unnest(table.columns.map((c) => arrayCast(c.kind)))}`

export const deleteIds = (schema: string, table: string): string =>
  `DELETE FROM ${qualified(schema, table)} WHERE "id" = ANY($1::text[])`

/**
 * History steps: the entity columns (null for a delete), then checkpoint and change. A checkpoint is written
 * once (later writes only carry later checkpoints; a rollback first deletes those after its target), so a
 * key conflict here is a bug and fails the write.
 */
export const insertHistory = (schema: string, table: Tables.EntityTable): string =>
  `INSERT INTO ${qualified(schema, table.history)} (${columnList(table.columns)}, "chainstore_checkpoint_id", "chainstore_change")
SELECT * FROM ${unnest([...table.columns.map((c) => arrayCast(c.kind)), "int8[]", "text[]"])}`

/** `$1` ids: copies the current row of ids without any history into history at checkpoint 0. */
export const backfillHistory = (schema: string, table: Tables.EntityTable): string =>
  `INSERT INTO ${qualified(schema, table.history)} (${columnList(table.columns)}, "chainstore_checkpoint_id", "chainstore_change")
SELECT ${table.columns.map((c) => `t.${quote(c.name)}`).join(", ")}, 0, 'SET' FROM ${qualified(schema, table.name)} AS t
WHERE t."id" = ANY($1::text[]) AND NOT EXISTS (SELECT 1 FROM ${qualified(schema, table.history)} AS h WHERE h."id" = t."id")`

export const selectByIds = (schema: string, table: Tables.EntityTable): string =>
  `SELECT ${columnList(table.columns)} FROM ${qualified(schema, table.name)} WHERE "id" = ANY($1::text[])`

export const selectByField = (schema: string, table: Tables.EntityTable, column: Column, op: "eq" | "gt" | "lt"): string =>
  `SELECT ${columnList(table.columns)} FROM ${qualified(schema, table.name)} WHERE ${quote(column.name)} ${
    op === "eq" ? "=" : op === "gt" ? ">" : "<"
  } $1::${scalarCast(column.kind)}`

export const selectByNull = (schema: string, table: Tables.EntityTable, column: Column): string =>
  `SELECT ${columnList(table.columns)} FROM ${qualified(schema, table.name)} WHERE ${quote(column.name)} IS NULL`

/**
 * `$1` target: for each id with history after the target, its newest history row at or before it (all
 * columns null and no change when there is none). `chainstore_diff_id` carries the id in both cases.
 */
export const rollbackDiff = (schema: string, table: Tables.EntityTable): string =>
  `SELECT t.id AS "chainstore_diff_id", b.* FROM (SELECT DISTINCT "id" FROM ${qualified(schema, table.history)} WHERE "chainstore_checkpoint_id" > $1::int8) AS t
LEFT JOIN LATERAL (
  SELECT ${columnList(table.columns)}, h."chainstore_change" FROM ${qualified(schema, table.history)} AS h
  WHERE h."id" = t."id" AND h."chainstore_checkpoint_id" <= $1::int8 ORDER BY h."chainstore_checkpoint_id" DESC LIMIT 1
) AS b ON true`

/** `$1` safe checkpoint: deletes history at or below it except each id's newest such row. */
export const pruneHistory = (schema: string, table: Tables.EntityTable): string =>
  `DELETE FROM ${qualified(schema, table.history)} AS h WHERE h."chainstore_checkpoint_id" <= $1::int8 AND EXISTS (
  SELECT 1 FROM ${qualified(schema, table.history)} AS n
  WHERE n."id" = h."id" AND n."chainstore_checkpoint_id" <= $1::int8 AND n."chainstore_checkpoint_id" > h."chainstore_checkpoint_id")`

// ---------------------------------------------------------------------------------------------------------------
// Effects and raw events

/** Effect rows; like entities, their keys are deleted first. */
export const insertEffects = (schema: string, table: Tables.EffectTable): string =>
  `INSERT INTO ${qualified(schema, table.name)} ("id", "output", "checkpoint_id")
SELECT * FROM ${unnest(["text[]", "jsonb[]", "int8[]"])}`

export const selectEffects = (schema: string, table: Tables.EffectTable): string =>
  `SELECT "id", "output" FROM ${qualified(schema, table.name)} WHERE "id" = ANY($1::text[])`

export const insertRawEvents = (schema: string): string =>
  `INSERT INTO ${qualified(schema, Tables.rawEvents)} ("event_id", "chain_id", "event_name", "contract_name", "block_number", "log_index", "src_address", "block_hash", "block_timestamp", "block_fields", "transaction_fields", "params", "checkpoint_id")
SELECT * FROM ${unnest(["text[]", "int8[]", "text[]", "text[]", "int8[]", "int4[]", "text[]", "text[]", "int8[]", "jsonb[]", "jsonb[]", "jsonb[]", "int8[]"])}`

/** Row counts of the given tables, one `(name, rows)` per table; `$n` carries the n-th name. */
export const countRows = (schema: string, tables: ReadonlyArray<string>): string =>
  tables.map((t, i) => `SELECT $${i + 1}::text AS "name", count(*)::text AS "rows" FROM ${qualified(schema, t)}`).join("\nUNION ALL\n")
