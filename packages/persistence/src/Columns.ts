/**
 * Columns: how an entity's fields map to SQL columns, and how values cross between the in-memory entity (the
 * schema's Type: bigint, Date, nested objects…) and SQL text. Pure: no services, no I/O.
 *
 * Values travel as text: each column of a bulk write is one text array parameter cast server-side
 * (`$1::numeric[]`) and expanded by `unnest`, so a write binds one parameter per column whatever the row count.
 */
import { Result, Schema, type SchemaAST } from "effect"
import type { Entity } from "@chainstore/core"

/** The SQL column kinds chainstore stores. */
export type Kind = "text" | "numeric" | "integer" | "bigint" | "double" | "boolean" | "timestamptz" | "jsonb"

export interface Column {
  /** The entity field. */
  readonly field: string
  /** The snake_case column name. */
  readonly name: string
  readonly kind: Kind
  readonly nullable: boolean
  /** What a SQL NULL becomes: a `null` field, an `undefined` field, or no key at all (optional keys). */
  readonly absent: "null" | "undefined" | "omit"
  /** A non-null field value as SQL text. */
  readonly encode: (value: unknown) => string
  /** A non-null SQL value (as the driver returns it) back to the field value. */
  readonly decode: (raw: unknown) => unknown
}

export interface Table {
  readonly entity: string
  /** The snake_case table name. */
  readonly name: string
  /** `id` first, then the other fields in declaration order. */
  readonly columns: ReadonlyArray<Column>
  /** Column names with a declared index. */
  readonly indexes: ReadonlyArray<string>
}

/** Postgres limits identifiers to 63 bytes; longer ones are silently truncated, so they are refused. */
export const maxIdentifierBytes = 63

/** Letters, digits and underscores, not starting with a digit (the same rule as core's Indexer). */
export const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]*$/

/** `TokenInfo` → `token_info`, `tokenID` → `token_id`, `NFTOwner` → `nft_owner`. */
export const snakeCase = (name: string): string =>
  name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2").toLowerCase()

/** A double-quoted SQL identifier. Callers validate names first; quoting still makes any name inert. */
export const quote = (identifier: string): string => `"${identifier.replace(/"/g, "\"\"")}"`

/** The SQL type of a column kind. */
export const sqlType = (kind: Kind): string => sqlTypes[kind]

/** The type in a column definition: text compares by code point (`COLLATE "C"`), as JavaScript compares strings. */
export const columnType = (kind: Kind): string => (kind === "text" ? `text COLLATE "C"` : sqlTypes[kind])

/** The cast of a whole column sent as one array literal. */
export const arrayCast = (kind: Kind): string => arrayCasts[kind]

const sqlTypes: Record<Kind, string> = {
  text: "text",
  numeric: "numeric(78,0)",
  integer: "integer",
  bigint: "bigint",
  double: "double precision",
  boolean: "boolean",
  timestamptz: "timestamptz",
  jsonb: "jsonb"
}

const arrayCasts: Record<Kind, string> = {
  text: "text[]",
  numeric: "numeric[]",
  integer: "int4[]",
  bigint: "int8[]",
  double: "float8[]",
  boolean: "bool[]",
  timestamptz: "timestamptz[]",
  jsonb: "jsonb[]"
}

/**
 * The table of an entity: columns typed from the schema's AST. Fails with a message naming the entity and
 * field when a name is not a usable identifier, two names collide once snake_cased, or `id` is not a string.
 */
export const fromEntity = (entity: Entity.Any): Result.Result<Table, string> => {
  if (!identifierPattern.test(entity.name)) return Result.fail(`entity name "${entity.name}" is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)`)
  const name = snakeCase(entity.name)
  if (name.startsWith("chainstore_")) return Result.fail(`entity name "${entity.name}" uses the reserved prefix chainstore_`)
  const ast = entity.schema.ast
  if (ast._tag !== "Objects") return Result.fail(`entity "${entity.name}" has no struct schema`)
  const columns: Array<Column> = []
  const seen = new Map<string, string>()
  for (const property of ast.propertySignatures) {
    const field = String(property.name)
    if (!identifierPattern.test(field)) return Result.fail(`field "${entity.name}.${field}" is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)`)
    const column = snakeCase(field)
    if (column.startsWith("chainstore_")) return Result.fail(`field "${entity.name}.${field}" uses the reserved prefix chainstore_`)
    if (column.length > maxIdentifierBytes) return Result.fail(`field "${entity.name}.${field}" is longer than ${maxIdentifierBytes} bytes`)
    const clash = seen.get(column)
    if (clash !== undefined) return Result.fail(`fields "${entity.name}.${clash}" and "${entity.name}.${field}" both map to column "${column}"`)
    seen.set(column, field)
    const schema = (entity.fields as unknown as Record<string, Schema.Top>)[field]!
    columns.push(makeColumn(field, column, property.type, schema))
  }
  const id = columns.find((c) => c.field === "id")
  if (id === undefined || id.kind !== "text" || id.nullable) return Result.fail(`entity "${entity.name}" needs a required string id field`)
  const indexes: Array<string> = []
  for (const field of entity.indexes) {
    const column = columns.find((c) => c.field === field)
    if (column === undefined) return Result.fail(`index "${entity.name}.${field}" names no field`)
    indexes.push(column.name)
  }
  return Result.succeed({ entity: entity.name, name, columns: [id, ...columns.filter((c) => c !== id)], indexes })
}

const makeColumn = (field: string, name: string, ast: SchemaAST.AST, schema: Schema.Top): Column => {
  const members = ast._tag === "Union" ? ast.types : [ast]
  const present = members.filter((m) => m._tag !== "Null" && m._tag !== "Undefined")
  const hasNull = members.some((m) => m._tag === "Null")
  const hasUndefined = members.some((m) => m._tag === "Undefined")
  const optional = ast.context?.isOptional === true
  // Unknown and Any admit null too: their column is nullable and reads NULL back as null.
  const opaque = present.some(isOpaque)
  const nullable = optional || hasNull || hasUndefined || opaque
  const absent = hasNull || opaque ? "null" : optional ? "omit" : "undefined"
  const kind = unify(present.map(scalarKind))
  return { field, name, kind, nullable, absent, ...(kind === "jsonb" ? jsonCodec(present, schema) : scalarCodecs[kind]) }
}

/** One kind for all members of a union: the same kind, the widest number kind, else JSON. */
const unify = (kinds: ReadonlyArray<Kind>): Kind => {
  const distinct = new Set(kinds)
  if (distinct.size === 1) return kinds[0]!
  if (distinct.size > 0 && [...distinct].every((k) => k === "integer" || k === "bigint" || k === "double")) {
    return distinct.has("double") ? "double" : "bigint"
  }
  return "jsonb"
}

/** The column kind of one non-null member of a field's type. */
const scalarKind = (ast: SchemaAST.AST): Kind => {
  switch (ast._tag) {
    case "String":
    case "TemplateLiteral":
      return "text"
    case "BigInt":
      return "numeric"
    case "Boolean":
      return "boolean"
    case "Number":
      return numberKind(ast)
    case "Literal":
      return typeof ast.literal === "string" ? "text" :
        typeof ast.literal === "bigint" ? "numeric" :
        typeof ast.literal === "boolean" ? "boolean" :
        Number.isSafeInteger(ast.literal) ? "bigint" : "double"
    case "Enum":
      return ast.enums.every(([, v]) => typeof v === "string") ? "text" : "double"
    case "Declaration":
      return isDateDeclaration(ast) ? "timestamptz" : "jsonb"
    default:
      return "jsonb"
  }
}

const isDateDeclaration = (ast: SchemaAST.Declaration): boolean => {
  const representation = ast.annotations?.representation as { readonly id?: unknown } | undefined
  return representation?.id === "effect/schema/Date"
}

/** Integers (Schema.Int) get an integer column: int4 when the checks bound them to 32 bits, else int8. */
const numberKind = (ast: SchemaAST.AST): Kind => {
  const { isInt, max, min } = numberChecks(ast)
  if (!isInt) return "double"
  return min >= -2147483648 && max <= 2147483647 ? "integer" : "bigint"
}

const numberChecks = (ast: SchemaAST.AST) => {
  let isInt = false
  let isFinite = false
  let min = -Infinity
  let max = Infinity
  const visit = (checks: ReadonlyArray<SchemaAST.Check<never>>) => {
    for (const check of checks) {
      if (check._tag === "FilterGroup") {
        visit(check.checks)
        continue
      }
      const representation = check.annotations?.representation as { readonly id?: unknown; readonly payload?: unknown } | undefined
      if (representation?.id === "effect/schema/isInt") isInt = true
      if (representation?.id === "effect/schema/isFinite") isFinite = true
      if (representation?.id === "effect/schema/isBetween") {
        const payload = representation.payload as { readonly minimum?: unknown; readonly maximum?: unknown }
        if (typeof payload.minimum === "number") min = Math.max(min, payload.minimum)
        if (typeof payload.maximum === "number") max = Math.min(max, payload.maximum)
      }
    }
  }
  visit(ast.checks ?? [])
  return { isInt, isFinite: isFinite || isInt, min, max }
}

type Codec = Pick<Column, "encode" | "decode">

const scalarCodecs: Record<Exclude<Kind, "jsonb">, Codec> = {
  text: { encode: (v) => v as string, decode: (raw) => raw },
  numeric: { encode: (v) => (v as bigint).toString(), decode: (raw) => BigInt(raw as string) },
  integer: { encode: (v) => String(v), decode: (raw) => Number(raw) },
  bigint: { encode: (v) => String(v), decode: (raw) => Number(raw) },
  double: { encode: (v) => String(v), decode: (raw) => Number(raw) },
  boolean: { encode: (v) => (v ? "t" : "f"), decode: (raw) => raw === true || raw === "t" },
  timestamptz: {
    encode: (v) => (v as Date).toISOString(),
    decode: (raw) => (raw instanceof Date ? raw : new Date(raw as string))
  }
}

/**
 * JSON columns: types made only of JSON values (strings, finite numbers, booleans, null, arrays and structs of
 * them) go through JSON.stringify as they are; anything else (bigint, Date, NaN…) through the field schema's
 * JSON codec, so it decodes back to the same Type. Unknown values stringify bigints as decimal strings.
 */
const jsonCodec = (members: ReadonlyArray<SchemaAST.AST>, schema: Schema.Top): Codec => {
  if (members.every(isPlainJson)) return { encode: (v) => JSON.stringify(v), decode: (raw) => raw }
  if (members.every(isOpaque)) return { encode: stringifyJson, decode: (raw) => raw }
  const codec = Schema.toCodecJson(schema as Schema.Codec<unknown, unknown>)
  const encode = Schema.encodeSync(codec)
  const decode = Schema.decodeUnknownSync(codec)
  return { encode: (v) => JSON.stringify(encode(v)), decode }
}

const isOpaque = (ast: SchemaAST.AST): boolean => ast._tag === "Unknown" || ast._tag === "Any" || ast._tag === "ObjectKeyword"

const isPlainJson = (ast: SchemaAST.AST): boolean => {
  if (ast.encoding !== undefined) return false
  switch (ast._tag) {
    case "String":
    case "Boolean":
    case "Null":
    case "TemplateLiteral":
      return true
    case "Number":
      return numberChecks(ast).isFinite
    case "Literal":
      return typeof ast.literal !== "bigint" && (typeof ast.literal !== "number" || Number.isFinite(ast.literal))
    case "Arrays":
      return ast.elements.every(isPlainJson) && ast.rest.every(isPlainJson)
    case "Objects":
      // JSON.stringify drops undefined properties, which is how an optional key reads back.
      return ast.indexSignatures.length === 0 && ast.propertySignatures.every((p) =>
        p.type.context?.isOptional === true && p.type._tag === "Union"
          ? p.type.types.every((t) => t._tag === "Undefined" || isPlainJson(t))
          : isPlainJson(p.type)
      )
    case "Union":
      return ast.types.every(isPlainJson)
    default:
      return false
  }
}

/** JSON text of any value; bigints become decimal strings. */
export const stringifyJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) ?? "null"

/** Field values of the entity rows, column by column, as SQL text (null for SQL NULL). */
export const encodeColumns = (columns: ReadonlyArray<Column>, rows: ReadonlyArray<unknown>): Array<Array<string | null>> => {
  const out: Array<Array<string | null>> = columns.map(() => new Array<string | null>(rows.length))
  for (let c = 0; c < columns.length; c++) {
    const column = columns[c]!
    const values = out[c]!
    for (let r = 0; r < rows.length; r++) {
      const v = (rows[r] as Record<string, unknown>)[column.field]
      values[r] = v === null || v === undefined ? null : column.encode(v)
    }
  }
  return out
}

/** A row as returned by the driver back to the entity value. */
export const decodeRow = (columns: ReadonlyArray<Column>, row: Readonly<Record<string, unknown>>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const column of columns) {
    const raw = row[column.name]
    if (raw === null || raw === undefined) {
      if (column.absent === "null") out[column.field] = null
      else if (column.absent === "undefined") out[column.field] = undefined
    } else {
      out[column.field] = column.decode(raw)
    }
  }
  return out
}

/** Row ranges `[from, to)` whose text fits `budget` characters each; a larger single row gets its own range. */
export const chunkRanges = (
  columns: ReadonlyArray<ReadonlyArray<string | null>>,
  budget: number
): Array<readonly [from: number, to: number]> => {
  const rows = columns[0]?.length ?? 0
  const out: Array<readonly [number, number]> = []
  let from = 0
  let size = 0
  for (let r = 0; r < rows; r++) {
    let rowSize = 0
    for (const column of columns) rowSize += (column[r]?.length ?? 4) + 3
    if (size + rowSize > budget && r > from) {
      out.push([from, r])
      from = r
      size = 0
    }
    size += rowSize
  }
  if (rows > from) out.push([from, rows])
  return out
}

/**
 * A bulk column as a statement parameter: its values as a text array, cast server-side to the column type.
 * A column of nulls only is sent as NULL (the driver cannot type an array of nulls); `unnest` pads it back.
 */
export const arrayParam = (values: ReadonlyArray<string | null>): ReadonlyArray<string | null> | null => {
  for (let i = 0; i < values.length; i++) if (values[i] !== null) return values
  return values.length === 0 ? values : null
}

/**
 * The value with text Postgres refuses made acceptable, recursively through arrays and objects: NUL characters
 * removed, lone surrogates replaced by U+FFFD.
 */
export const cleanText = (value: unknown): unknown => {
  if (typeof value === "string") return value.replace(/\u0000/g, "").replace(loneSurrogate, "\ufffd")
  if (Array.isArray(value)) return value.map(cleanText)
  if (value !== null && typeof value === "object" && isPlainObject(value)) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[cleanText(k) as string] = cleanText(v)
    return out
  }
  return value
}

/** A UTF-16 surrogate without its pair: JSON escapes it, and Postgres refuses the escape. */
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

const isPlainObject = (value: object): boolean => {
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
