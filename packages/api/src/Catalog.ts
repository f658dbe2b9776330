/**
 * Catalog: the indexer's entities as the API serves them — per entity its table (the layout PgStorage writes),
 * its GraphQL names, each field's scalar, and the references between entities in both directions. Every SQL
 * identifier the API uses comes from here, so from the validated entity definitions. Pure: no services, no I/O.
 */
import { Result, type SchemaAST } from "effect"
import type { Entity, Indexer } from "@chainstore/core"
import { type Columns, Tables } from "@chainstore/persistence"

/** The GraphQL scalar of a field. */
export type Scalar = "ID" | "String" | "Address" | "Hash" | "BigInt" | "Int" | "Int8" | "Float" | "Boolean" | "Timestamp" | "JSON"

export interface Field {
  /** The entity field, also the GraphQL field name. */
  readonly name: string
  readonly column: Columns.Column
  readonly scalar: Scalar
  /** The entity whose id this field holds (a reference), if any. */
  readonly references: string | undefined
}

/** A reverse list: on the referenced entity, the entities whose `field` holds its id. */
export interface Derived {
  /** The GraphQL field name on the referenced entity, e.g. `transfersByFrom`. */
  readonly name: string
  /** The referencing entity. */
  readonly entity: string
  /** Its field holding the id. */
  readonly field: string
}

export interface EntityInfo {
  readonly name: string
  readonly table: Tables.EntityTable
  readonly fields: ReadonlyArray<Field>
  /** The query field reading one entity by id, e.g. `account`. */
  readonly single: string
  /** The query field reading a page of entities, e.g. `accounts`. */
  readonly list: string
  readonly derived: ReadonlyArray<Derived>
}

export interface Catalog {
  /** The Postgres schema holding the tables. */
  readonly schema: string
  readonly entities: ReadonlyArray<EntityInfo>
  readonly chains: ReadonlyArray<{ readonly id: number; readonly reorgWindow: number }>
}

/** Type names the API generates itself: an entity may not take them. */
export const reservedTypeNames = [
  "Query", "Subscription", "Mutation", "PageInfo", "Meta", "ChainMeta", "BlockInput", "OrderDirection",
  "BigInt", "Int8", "Address", "Hash", "Timestamp", "JSON", "ID", "String", "Int", "Float", "Boolean"
]

const reservedSuffixes = ["Page", "Where", "OrderBy"]

/** The catalog of an indexer whose tables live in `schema`, or a message naming what cannot be served. */
export const make = (indexer: Indexer.Indexer, schema: string): Result.Result<Catalog, string> => {
  const layout = Tables.make(indexer, schema)
  if (Result.isFailure(layout)) return Result.fail(layout.failure)
  const names = new Set(indexer.entities.map((e) => e.name))
  const rootFields = new Map<string, string>([["_meta", "the _meta field"]])
  const infos: Array<EntityInfo> = []
  for (const entity of indexer.entities) {
    const table = layout.success.entities.find((t) => t.entity === entity.name)!
    if (entity.name.startsWith("__")) return Result.fail(`entity name "${entity.name}" starts with "__", which GraphQL reserves`)
    if (reservedTypeNames.includes(entity.name)) return Result.fail(`entity name "${entity.name}" is a type name the query API uses itself`)
    for (const suffix of reservedSuffixes) {
      if (entity.name.endsWith(suffix) && names.has(entity.name.slice(0, -suffix.length))) {
        return Result.fail(`entity name "${entity.name}" collides with the ${suffix} type of entity "${entity.name.slice(0, -suffix.length)}"`)
      }
    }
    const references = (entity.references ?? {}) as Readonly<Record<string, string | undefined>>
    const fields: Array<Field> = []
    for (const column of table.columns) {
      if (column.field.startsWith("__")) return Result.fail(`field "${entity.name}.${column.field}" starts with "__", which GraphQL reserves`)
      const target = references[column.field]
      if (target !== undefined && column.kind !== "text") return Result.fail(`reference "${entity.name}.${column.field}" must be a string field holding "${target}" ids`)
      fields.push({ name: column.field, column, scalar: scalarOf(entity, column), references: target })
    }
    const single = lowerFirst(entity.name)
    const list = plural(single)
    for (const field of [single, list === single ? `${single}List` : list]) {
      const clash = rootFields.get(field)
      if (clash !== undefined) return Result.fail(`entity "${entity.name}" needs the query field "${field}", already taken by ${clash}`)
      rootFields.set(field, `entity "${entity.name}"`)
    }
    infos.push({ name: entity.name, table, fields, single, list: list === single ? `${single}List` : list, derived: [] })
  }
  // Reverse lists on the referenced entities: `<plural of the referencing entity>By<Field>`.
  const withDerived = infos.map((info) => {
    const derived: Array<Derived> = []
    for (const other of infos) {
      for (const field of other.fields) {
        if (field.references !== info.name) continue
        derived.push({ name: `${other.list}By${upperFirst(field.name)}`, entity: other.name, field: field.name })
      }
    }
    return { ...info, derived }
  })
  for (const info of withDerived) {
    const taken = new Set(info.fields.map((f) => f.name))
    for (const f of info.fields) {
      if (f.references === undefined) continue
      if (taken.has(rawIdField(f))) return Result.fail(`entity "${info.name}" has a field "${rawIdField(f)}", the name of the raw id of its reference ${f.name}`)
      taken.add(rawIdField(f))
    }
    for (const d of info.derived) {
      if (taken.has(d.name)) return Result.fail(`entity "${info.name}" has a field "${d.name}", the name of its reverse list of ${d.entity}.${d.field}`)
      taken.add(d.name)
    }
  }
  return Result.succeed({
    schema,
    entities: withDerived,
    chains: indexer.chains.map((c) => ({ id: c.id, reorgWindow: c.reorgWindow ?? 200 }))
  })
}

/** The GraphQL field holding a reference's id as stored (the reference field itself resolves to the entity). */
export const rawIdField = (field: Field): string => `${field.name}Id`

export const entity = (catalog: Catalog, name: string): EntityInfo => catalog.entities.find((e) => e.name === name)!

export const field = (info: EntityInfo, name: string): Field | undefined => info.fields.find((f) => f.name === name)

/** Whether a field can be compared and sorted (everything but JSON). */
export const isComparable = (field: Field): boolean => field.scalar !== "JSON"

const scalarOf = (entity: Entity.Any, column: Columns.Column): Scalar => {
  if (column.field === "id") return "ID"
  switch (column.kind) {
    case "text": {
      const identifier = textIdentifier(entity, column.field)
      return identifier === "Address" || identifier === "Hash" ? identifier : "String"
    }
    case "numeric":
      return "BigInt"
    case "integer":
      return "Int"
    case "bigint":
      return "Int8"
    case "double":
      return "Float"
    case "boolean":
      return "Boolean"
    case "timestamptz":
      return "Timestamp"
    case "jsonb":
      return "JSON"
  }
}

/** The identifier annotation of a string field (`Entity.Address`, `Entity.Hash`), looked up through optionality. */
const textIdentifier = (entity: Entity.Any, field: string): string | undefined => {
  const property = (entity.schema.ast as SchemaAST.Objects).propertySignatures.find((p) => String(p.name) === field)
  if (property === undefined) return undefined
  const members = property.type._tag === "Union" ? property.type.types : [property.type]
  for (const member of members) {
    const id = identifierOf(member)
    if (id !== undefined) return id
  }
  return undefined
}

const identifierOf = (ast: SchemaAST.AST): string | undefined => {
  const own = ast.annotations?.identifier
  if (typeof own === "string") return own
  const last = ast.checks?.[ast.checks.length - 1]?.annotations?.identifier
  return typeof last === "string" ? last : undefined
}

/** `Account` → `account`, `NFTOwner` → `nftOwner`. */
export const lowerFirst = (name: string): string => {
  const leading = /^[A-Z]+/.exec(name)?.[0] ?? ""
  if (leading.length <= 1) return name.charAt(0).toLowerCase() + name.slice(1)
  const keep = leading.length === name.length ? leading.length : leading.length - 1
  return name.slice(0, keep).toLowerCase() + name.slice(keep)
}

const upperFirst = (name: string): string => name.charAt(0).toUpperCase() + name.slice(1)

/** English plural of a camelCase name, enough for field names: `account` → `accounts`, `entry` → `entries`. */
export const plural = (name: string): string =>
  /[^aeiou]y$/.test(name) ? `${name.slice(0, -1)}ies` : /(s|x|z|ch|sh)$/.test(name) ? `${name}es` : `${name}s`
