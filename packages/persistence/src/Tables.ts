/**
 * Tables: the layout an indexer gets in one Postgres schema — entity tables, their history tables, effect
 * cache tables and chainstore's own tables — plus the fingerprint of the entity definitions that guards a
 * schema against being resumed by a different indexer. Pure: no services, no I/O.
 */
import { createHash } from "node:crypto"
import { Result } from "effect"
import type { Indexer } from "@chainstore/core"
import * as Columns from "./Columns.js"

/** Bumped when chainstore's own table layout changes; a stored schema of another version is refused. */
export const schemaVersion = 1

export const historyPrefix = "chainstore_history_"
export const effectPrefix = "chainstore_effect_"

export const state = "chainstore_state"
export const chains = "chainstore_chains"
export const checkpoints = "chainstore_checkpoints"
export const rawEvents = "chainstore_raw_events"
export const addresses = "chainstore_addresses"

export interface EntityTable extends Columns.Table {
  readonly history: string
}

export interface EffectTable {
  readonly effect: string
  readonly name: string
  readonly reorgSensitive: boolean
}

export interface Layout {
  readonly schema: string
  readonly entities: ReadonlyArray<EntityTable>
  readonly effects: ReadonlyArray<EffectTable>
  readonly rawEvents: boolean
}

/** What the fingerprint covers: per entity table, its columns (name, SQL type, nullable), sorted. */
export type Definitions = ReadonlyArray<{
  readonly table: string
  readonly columns: ReadonlyArray<readonly [name: string, type: string, nullable: boolean]>
}>

/**
 * The layout of an indexer in `schema`, or a message naming the first identifier that cannot be used: not
 * `[A-Za-z_][A-Za-z0-9_]*`, longer than 63 bytes once prefixed, or colliding with another once snake_cased.
 */
export const make = (indexer: Indexer.Indexer, schema: string): Result.Result<Layout, string> => {
  const schemaProblem = checkSchema(schema)
  if (schemaProblem !== undefined) return Result.fail(schemaProblem)
  const entities: Array<EntityTable> = []
  const names = new Map<string, string>()
  for (const entity of indexer.entities) {
    const table = Columns.fromEntity(entity)
    if (Result.isFailure(table)) return Result.fail(table.failure)
    const history = historyPrefix + table.success.name
    if (history.length > Columns.maxIdentifierBytes) {
      return Result.fail(`entity name "${entity.name}" is too long: table "${history}" would pass ${Columns.maxIdentifierBytes} bytes`)
    }
    const clash = names.get(table.success.name)
    if (clash !== undefined) return Result.fail(`entities "${clash}" and "${entity.name}" both map to table "${table.success.name}"`)
    names.set(table.success.name, entity.name)
    entities.push({ ...table.success, history })
  }
  const effects: Array<EffectTable> = []
  const effectNames = new Map<string, string>()
  for (const effect of indexer.effects) {
    if (!Columns.identifierPattern.test(effect.name)) return Result.fail(`effect name "${effect.name}" is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)`)
    const name = effectPrefix + Columns.snakeCase(effect.name)
    if (name.length > Columns.maxIdentifierBytes) {
      return Result.fail(`effect name "${effect.name}" is too long: table "${name}" would pass ${Columns.maxIdentifierBytes} bytes`)
    }
    const clash = effectNames.get(name)
    if (clash !== undefined) return Result.fail(`effects "${clash}" and "${effect.name}" both map to table "${name}"`)
    effectNames.set(name, effect.name)
    effects.push({ effect: effect.name, name, reorgSensitive: effect.reorgSensitive })
  }
  return Result.succeed({ schema, entities, effects, rawEvents: indexer.rawEvents })
}

/** Why a schema name cannot be used, or undefined when it can. */
export const checkSchema = (schema: string): string | undefined =>
  !Columns.identifierPattern.test(schema)
    ? `schema name "${schema}" is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)`
    : schema.length > Columns.maxIdentifierBytes
    ? `schema name "${schema}" is longer than ${Columns.maxIdentifierBytes} bytes`
    : undefined

export const definitions = (layout: Layout): Definitions =>
  layout.entities
    .map((t) => ({
      table: t.name,
      columns: t.columns
        .map((c) => [c.name, Columns.sqlType(c.kind), c.nullable] as const)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    }))
    .sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0))

/** A short stable fingerprint of the definitions. */
export const fingerprint = (defs: Definitions): string => createHash("sha256").update(JSON.stringify(defs)).digest("hex").slice(0, 32)

/** Human-readable differences between stored and current definitions, one line each. */
export const diff = (stored: Definitions, current: Definitions): ReadonlyArray<string> => {
  const out: Array<string> = []
  const before = new Map(stored.map((t) => [t.table, t]))
  const after = new Map(current.map((t) => [t.table, t]))
  for (const [table] of before) if (!after.has(table)) out.push(`table "${table}" is stored but no entity defines it any more`)
  for (const [table, now] of after) {
    const was = before.get(table)
    if (was === undefined) {
      out.push(`table "${table}" is defined but not stored`)
      continue
    }
    const wasColumns = new Map(was.columns.map((c) => [c[0], c]))
    const nowColumns = new Map(now.columns.map((c) => [c[0], c]))
    for (const [name] of wasColumns) if (!nowColumns.has(name)) out.push(`column "${table}"."${name}" was removed`)
    for (const [name, [, type, nullable]] of nowColumns) {
      const old = wasColumns.get(name)
      if (old === undefined) out.push(`column "${table}"."${name}" was added`)
      else if (old[1] !== type) out.push(`column "${table}"."${name}" changed type from ${old[1]} to ${type}`)
      else if (old[2] !== nullable) out.push(`column "${table}"."${name}" changed from ${old[2] ? "optional" : "required"} to ${nullable ? "optional" : "required"}`)
    }
  }
  return out
}

/** Every table of the layout, chainstore's own included. */
export const allTables = (layout: Layout): ReadonlyArray<string> => [
  ...layout.entities.flatMap((t) => [t.name, t.history]),
  ...layout.effects.map((e) => e.name),
  state,
  chains,
  checkpoints,
  rawEvents,
  addresses
]

/** An index name that fits 63 bytes: readable when it can be, hashed when it cannot. */
export const indexName = (table: string, column: string): string => {
  const name = `${table}_${column}_idx`
  return name.length <= Columns.maxIdentifierBytes
    ? name
    : `chainstore_idx_${createHash("sha256").update(`${table}.${column}`).digest("hex").slice(0, 24)}`
}
