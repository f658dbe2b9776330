/**
 * ReadSql: the text and parameters of every statement the API reads with. Identifiers come from the Catalog
 * (validated entity definitions) and are quoted; every value a client sent is a `$n` parameter with a cast.
 *
 * Time-travel: an entity table as of checkpoint T is its current rows whose id has no history after T, plus, for
 * the ids with history after T, their newest history row at or before T when that row is a SET (none: the
 * entity did not exist at T). History is written for every write inside the reorg threshold (PgStorage step 1),
 * so this is exact for any T whose later writes all kept history — what `Reader` checks before using it.
 * Pure: no services, no I/O.
 */
import { Columns, Tables } from "@chainstore/persistence"
import type * as Catalog from "./Catalog.js"

export interface Statement {
  readonly text: string
  readonly params: ReadonlyArray<unknown>
}

export type Operator = "eq" | "not" | "in" | "not_in" | "gt" | "gte" | "lt" | "lte" | "contains" | "starts_with"

/** A `where` argument as data. Values are already parsed by the field's scalar. */
export type Filter =
  | { readonly _tag: "And"; readonly filters: ReadonlyArray<Filter> }
  | { readonly _tag: "Or"; readonly filters: ReadonlyArray<Filter> }
  | { readonly _tag: "Compare"; readonly field: Catalog.Field; readonly op: Operator; readonly value: unknown }

export type Direction = "asc" | "desc"

/** Where a page starts: after the row whose sort value (as SQL text; null for NULL) and id these are. */
export interface After {
  readonly value: string | null
  readonly id: string
}

export interface Page {
  readonly entity: Catalog.EntityInfo
  readonly where: Filter | undefined
  readonly orderBy: Catalog.Field
  readonly direction: Direction
  /** Rows asked for; the statement reads one more to tell whether a next page exists. */
  readonly first: number
  readonly after: After | undefined
  /** Read as of this checkpoint (time-travel); undefined: the committed state. */
  readonly at: bigint | undefined
}

/** Column aliases the API adds to rows; entity columns never start with `chainstore_`. */
export const cursorColumn = "chainstore_cursor"
export const parentColumn = "chainstore_parent"

class Params {
  readonly values: Array<unknown> = []
  add(value: unknown, cast: string): string {
    this.values.push(value)
    return `$${this.values.length}::${cast}`
  }
}

const q = Columns.quote
const qualified = (schema: string, table: string) => `${q(schema)}.${q(table)}`
const scalarCast = (kind: Columns.Kind) => Columns.arrayCast(kind).slice(0, -2)
const col = (field: Catalog.Field) => `r.${q(field.column.name)}`
const columnList = (info: Catalog.EntityInfo, alias: string) => info.table.columns.map((c) => `${alias}.${q(c.name)}`).join(", ")

/** The rows of an entity table, now or as of checkpoint `at`, as a FROM item aliased `r`. */
const relation = (schema: string, info: Catalog.EntityInfo, at: bigint | undefined, params: Params): string => {
  if (at === undefined) return `${qualified(schema, info.table.name)} AS r`
  const t = params.add(at.toString(), "int8")
  const table = qualified(schema, info.table.name)
  const history = qualified(schema, info.table.history)
  return `(SELECT ${columnList(info, "c")} FROM ${table} AS c
  WHERE NOT EXISTS (SELECT 1 FROM ${history} AS l WHERE l."id" = c."id" AND l."chainstore_checkpoint_id" > ${t})
UNION ALL
SELECT ${columnList(info, "s")} FROM (
  SELECT DISTINCT ON (h."id") ${columnList(info, "h")}, h."chainstore_change" FROM ${history} AS h
  WHERE h."chainstore_checkpoint_id" <= ${t}
    AND EXISTS (SELECT 1 FROM ${history} AS l WHERE l."id" = h."id" AND l."chainstore_checkpoint_id" > ${t})
  ORDER BY h."id", h."chainstore_checkpoint_id" DESC
) AS s WHERE s."chainstore_change" = 'SET') AS r`
}

/** A filter value as the SQL text of its parameter. */
const text = (value: unknown): string =>
  typeof value === "boolean" ? (value ? "t" : "f") : typeof value === "number" ? String(value) : String(value)

const condition = (filter: Filter, params: Params): string => {
  switch (filter._tag) {
    case "And":
      return filter.filters.length === 0 ? "TRUE" : `(${filter.filters.map((f) => condition(f, params)).join(" AND ")})`
    case "Or":
      return filter.filters.length === 0 ? "FALSE" : `(${filter.filters.map((f) => condition(f, params)).join(" OR ")})`
    case "Compare": {
      const column = col(filter.field)
      const cast = scalarCast(filter.field.column.kind)
      const value = filter.value
      switch (filter.op) {
        case "eq":
          return value === null ? `${column} IS NULL` : `${column} = ${params.add(text(value), cast)}`
        case "not":
          return value === null ? `${column} IS NOT NULL` : `${column} IS DISTINCT FROM ${params.add(text(value), cast)}`
        case "in":
        case "not_in": {
          const values = (value as ReadonlyArray<unknown>).map(text)
          const any = values.length === 0 ? "FALSE" : `${column} = ANY(${params.add(values, `${cast}[]`)})`
          return filter.op === "in" ? any : `(${column} IS NULL OR NOT ${any})`
        }
        case "gt":
          return `${column} > ${params.add(text(value), cast)}`
        case "gte":
          return `${column} >= ${params.add(text(value), cast)}`
        case "lt":
          return `${column} < ${params.add(text(value), cast)}`
        case "lte":
          return `${column} <= ${params.add(text(value), cast)}`
        case "contains":
          return `strpos(${column}, ${params.add(text(value), "text")}) > 0`
        case "starts_with":
          return `starts_with(${column}, ${params.add(text(value), "text")})`
      }
    }
  }
}

/** The keyset condition of a page's `after` cursor, in the order `ORDER BY col dir, id dir` reads (nulls last ascending, first descending). */
const keyset = (page: Page, params: Params): string | undefined => {
  const after = page.after
  if (after === undefined) return undefined
  const cmp = page.direction === "asc" ? ">" : "<"
  const id = params.add(after.id, "text")
  if (page.orderBy.name === "id") return `r."id" ${cmp} ${id}`
  const column = col(page.orderBy)
  const cast = scalarCast(page.orderBy.column.kind)
  if (!page.orderBy.column.nullable) {
    return `(${column}, r."id") ${cmp} (${params.add(after.value, cast)}, ${id})`
  }
  if (after.value === null) {
    return page.direction === "asc" ? `(${column} IS NULL AND r."id" > ${id})` : `((${column} IS NULL AND r."id" < ${id}) OR ${column} IS NOT NULL)`
  }
  const value = params.add(after.value, cast)
  const past = `(${column} ${cmp} ${value} OR (${column} = ${value} AND r."id" ${cmp} ${id}))`
  return page.direction === "asc" ? `(${past} OR ${column} IS NULL)` : past
}

const orderClause = (page: Page): string =>
  page.orderBy.name === "id"
    ? `r."id" ${page.direction.toUpperCase()}`
    : `${col(page.orderBy)} ${page.direction.toUpperCase()}, r."id" ${page.direction.toUpperCase()}`

const cursorSelect = (page: Page): string => `${page.orderBy.name === "id" ? `r."id"` : `${col(page.orderBy)}::text`} AS ${q(cursorColumn)}`

const whereClause = (conditions: ReadonlyArray<string | undefined>): string => {
  const present = conditions.filter((c): c is string => c !== undefined)
  return present.length === 0 ? "" : `WHERE ${present.join(" AND ")}`
}

/** One page of an entity: its rows (plus the cursor column), `first + 1` at most. */
export const page = (schema: string, p: Page): Statement => {
  const params = new Params()
  const from = relation(schema, p.entity, p.at, params)
  const where = whereClause([p.where === undefined ? undefined : condition(p.where, params), keyset(p, params)])
  const limit = params.add(String(p.first + 1), "int8")
  return {
    text: `SELECT ${columnList(p.entity, "r")}, ${cursorSelect(p)} FROM ${from} ${where} ORDER BY ${orderClause(p)} LIMIT ${limit}`,
    params: params.values
  }
}

/** How many rows of an entity match a filter. */
export const count = (schema: string, entity: Catalog.EntityInfo, where: Filter | undefined, at: bigint | undefined): Statement => {
  const params = new Params()
  const from = relation(schema, entity, at, params)
  return {
    text: `SELECT count(*)::int8 AS "count" FROM ${from} ${whereClause([where === undefined ? undefined : condition(where, params)])}`,
    params: params.values
  }
}

/** Rows of an entity by id (one statement for a whole batch of ids). */
export const byIds = (schema: string, entity: Catalog.EntityInfo, ids: ReadonlyArray<string>, at: bigint | undefined): Statement => {
  const params = new Params()
  const from = relation(schema, entity, at, params)
  return {
    text: `SELECT ${columnList(entity, "r")} FROM ${from} WHERE r."id" = ANY(${params.add(ids, "text[]")})`,
    params: params.values
  }
}

/**
 * Reverse lists of many parents at once: per parent id (in `parentColumn`), the first `first + 1` rows of `p`
 * whose `field` holds it, in page order.
 */
export const pagesByParent = (schema: string, p: Page, field: Catalog.Field, parents: ReadonlyArray<string>): Statement => {
  const params = new Params()
  const from = relation(schema, p.entity, p.at, params)
  const where = whereClause([
    `${col(field)} = ANY(${params.add(parents, "text[]")})`,
    p.where === undefined ? undefined : condition(p.where, params),
    keyset(p, params)
  ])
  const limit = params.add(String(p.first + 1), "int8")
  return {
    text: `SELECT * FROM (
  SELECT ${columnList(p.entity, "r")}, ${cursorSelect(p)}, ${col(field)} AS ${q(parentColumn)},
    row_number() OVER (PARTITION BY ${col(field)} ORDER BY ${orderClause(p)}) AS "chainstore_rank"
  FROM ${from} ${where}
) AS x WHERE x."chainstore_rank" <= ${limit} ORDER BY x.${q(parentColumn)}, x."chainstore_rank"`,
    params: params.values
  }
}

/** Per parent id, how many rows of `entity` whose `field` holds it match `where`. */
export const countsByParent = (
  schema: string,
  entity: Catalog.EntityInfo,
  field: Catalog.Field,
  parents: ReadonlyArray<string>,
  where: Filter | undefined,
  at: bigint | undefined
): Statement => {
  const params = new Params()
  const from = relation(schema, entity, at, params)
  const conditions = whereClause([`${col(field)} = ANY(${params.add(parents, "text[]")})`, where === undefined ? undefined : condition(where, params)])
  return {
    text: `SELECT ${col(field)} AS ${q(parentColumn)}, count(*)::int8 AS "count" FROM ${from} ${conditions} GROUP BY ${col(field)}`,
    params: params.values
  }
}

/** Per chain: its progress, head, window and the first block its stored checkpoints (so history) cover. */
export const chains = (schema: string): Statement => ({
  text: `SELECT c."chain_id"::text AS "chain_id", c."start_block"::text AS "start_block", c."end_block"::text AS "end_block",
  c."progress_block"::text AS "progress_block", c."source_block"::text AS "source_block", c."events_processed"::text AS "events_processed",
  c."first_event_block"::text AS "first_event_block", c."ready_at", c."reorg_window",
  (SELECT min(k."block_number") FROM ${qualified(schema, Tables.checkpoints)} AS k WHERE k."chain_id" = c."chain_id")::text AS "history_from"
FROM ${qualified(schema, Tables.chains)} AS c ORDER BY c."chain_id"`,
  params: []
})

/** The committed checkpoint id. */
export const committed = (schema: string): Statement => ({
  text: `SELECT "committed_checkpoint_id"::text AS "committed" FROM ${qualified(schema, Tables.state)} WHERE "id" = 1`,
  params: []
})

/** `$1` chain, `$2` block: the last stored checkpoint of the chain at or below the block (null when none). */
export const checkpointAt = (schema: string, chainId: number, block: number): Statement => ({
  text: `SELECT max("id")::text AS "target" FROM ${qualified(schema, Tables.checkpoints)} WHERE "chain_id" = $1::int8 AND "block_number" <= $2::int8`,
  params: [String(chainId), String(block)]
})
