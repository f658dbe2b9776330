/**
 * Entity definitions: a name, an Effect Schema struct with a string `id`, the indexed fields, and the fields that
 * hold another entity's id (references, which the query API resolves as nested objects and reverse lists).
 */
import { Schema, type SchemaAST } from "effect"

export type Fields = Schema.Struct.Fields & { readonly id: Schema.Codec<string, string> }

export interface Entity<Name extends string = string, F extends Fields = Fields> {
  readonly name: Name
  readonly fields: F
  readonly schema: Schema.Struct<F>
  /** Fields with a database index; `getWhere` lookups are allowed on these. */
  readonly indexes: ReadonlyArray<keyof F & string>
  /** Fields holding the id of another entity: field → that entity's name (reference fields are indexed too). */
  readonly references: { readonly [K in keyof F & string]?: string }
}

/** Comparisons `getWhere` lookups (and storage's loadByField) support on an indexed field. */
export type Operator = "eq" | "gt" | "lt"

/** The in-memory value of an entity definition's rows. */
export type Type<E extends Entity> = E["schema"]["Type"]

export interface Options<F extends Fields> {
  readonly indexes?: ReadonlyArray<keyof F & string>
  /** `{ owner: "Account" }`: the field `owner` holds an `Account` id. Checked by `Indexer.validate`. */
  readonly references?: { readonly [K in keyof F & string]?: string }
}

export const make = <const Name extends string, const F extends Fields>(
  name: Name,
  fields: F,
  options?: Options<F>
): Entity<Name, F> => ({
  name,
  fields,
  schema: Schema.Struct(fields),
  indexes: [...new Set([...(options?.indexes ?? []), ...(Object.keys(options?.references ?? {}) as Array<keyof F & string>)])],
  references: options?.references ?? {}
})

/** A lowercase 20-byte 0x address (what events carry); the query API types it as its `Address` scalar. */
export const Address = Schema.String.check(Schema.isPattern(/^0x[0-9a-f]{40}$/)).annotate({ identifier: "Address" })

/** A lowercase 32-byte 0x hash (block, transaction, topic); the query API types it as its `Hash` scalar. */
export const Hash = Schema.String.check(Schema.isPattern(/^0x[0-9a-f]{64}$/)).annotate({ identifier: "Hash" })

/** Fields holding bigints (optional ones included): stored as numeric(78,0), so bounded by ±(10^78 − 1). */
export const bigintFields = (entity: Any): ReadonlyArray<string> =>
  (entity.schema.ast as SchemaAST.Objects).propertySignatures
    .filter((p) => isBigInt(p.type))
    .map((p) => String(p.name))

const isBigInt = (ast: SchemaAST.AST): boolean =>
  ast._tag === "BigInt" || (ast._tag === "Union" && ast.types.some((t) => t._tag === "BigInt") && ast.types.every((t) => t._tag === "BigInt" || t._tag === "Undefined" || t._tag === "Null"))

/** The largest magnitude a stored bigint may have. */
export const maxBigInt = 10n ** 78n - 1n

/** Any entity, for code that handles them generically. */
export type Any = Entity<string, Fields>
