/**
 * GraphqlSchema: the GraphQL schema generated from the catalog, with its resolvers. Per entity: a query by id,
 * a list query (`where`, `orderBy`, `orderDirection`, `first`/`after` cursor pagination in a stable order, `pageInfo`,
 * `totalCount`), nested objects for reference fields (and `<field>Id`, the id as stored) and reverse lists for the
 * entities referring to it; `_meta`
 * for freshness; `block: { number }` on every root field for time-travel. The Subscription type mirrors Query:
 * subscribing to a field is a live query of it (`Live`).
 *
 * Resolvers read through the request's `Session` (one snapshot); nested reads are batched per request with
 * DataLoader (one statement per level and field, never one per parent).
 */
import DataLoader from "dataloader"
import {
  GraphQLBoolean,
  GraphQLEnumType,
  GraphQLError,
  type GraphQLFieldConfig,
  type GraphQLFieldConfigArgumentMap,
  GraphQLFloat,
  GraphQLID,
  type GraphQLInputFieldConfig,
  GraphQLInputObjectType,
  type GraphQLInputType,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLScalarType,
  GraphQLSchema,
  GraphQLString
} from "graphql"
import * as Catalog from "./Catalog.js"
import * as ReadSql from "./ReadSql.js"
import type { BlockInput, Row, Session } from "./Reader.js"
import * as Scalars from "./Scalars.js"

export interface Limits {
  /** Page size when `first` is not given. */
  readonly defaultFirst: number
  /** Largest `first` accepted. */
  readonly maxFirst: number
  /** Most values an `_in` / `_not_in` list and most conditions a `where` may hold. */
  readonly maxFilterValues: number
}

export const defaultLimits: Limits = { defaultFirst: 100, maxFirst: 1000, maxFilterValues: 1000 }

/** An entity row and the checkpoint it was read at (nested reads use the same one). */
interface Node {
  readonly entity: Catalog.EntityInfo
  readonly row: Row
  readonly at: bigint | undefined
}

interface PageSource {
  readonly nodes: ReadonlyArray<Node>
  readonly pageInfo: {
    readonly hasNextPage: boolean
    readonly hasPreviousPage: boolean
    readonly startCursor: string | null
    readonly endCursor: string | null
  }
  readonly totalCount: () => Promise<number>
}

interface ListArgs {
  readonly where?: Readonly<Record<string, unknown>> | null
  readonly orderBy?: string | null
  readonly orderDirection?: ReadSql.Direction | null
  readonly first?: number | null
  readonly after?: string | null
  readonly block?: BlockInput | null
}

const fail = (message: string, code = "BAD_USER_INPUT"): never => {
  throw new GraphQLError(message, { extensions: { code } })
}

/** The schema of a catalog: resolvers expect a `Session` as the context value. */
export const make = (catalog: Catalog.Catalog, limits: Limits = defaultLimits): GraphQLSchema => {
  const objects = new Map<string, GraphQLObjectType<Node, Session>>()
  const pages = new Map<string, GraphQLObjectType<PageSource, Session>>()
  const wheres = new Map<string, GraphQLInputObjectType>()
  const orderBys = new Map<string, GraphQLEnumType>()
  /** Per entity: `where` key → field and operator. */
  const filterKeys = new Map<string, Map<string, { readonly field: Catalog.Field; readonly op: ReadSql.Operator }>>()
  const byName = new Map(catalog.entities.map((e) => [e.name, e]))

  const orderDirection = new GraphQLEnumType({
    name: "OrderDirection",
    values: { asc: { value: "asc" }, desc: { value: "desc" } }
  })
  const pageInfo = new GraphQLObjectType({
    name: "PageInfo",
    fields: {
      hasNextPage: { type: new GraphQLNonNull(GraphQLBoolean) },
      hasPreviousPage: { type: new GraphQLNonNull(GraphQLBoolean), description: "Whether the page started after a cursor." },
      startCursor: { type: GraphQLString },
      endCursor: { type: GraphQLString, description: "Pass as `after` for the next page." }
    }
  })
  const blockInput = new GraphQLInputObjectType({
    name: "BlockInput",
    description: "Answer as of the end of this block (time-travel), inside the chain's reorg window.",
    fields: {
      number: { type: new GraphQLNonNull(GraphQLInt) },
      chainId: { type: GraphQLInt, description: "Required when the indexer has several chains." }
    }
  })
  const chainMeta = new GraphQLObjectType({
    name: "ChainMeta",
    fields: {
      chainId: { type: new GraphQLNonNull(GraphQLInt) },
      startBlock: { type: new GraphQLNonNull(GraphQLInt) },
      endBlock: { type: GraphQLInt },
      processedBlock: { type: new GraphQLNonNull(GraphQLInt), description: "Handlers ran up to this block (may not be written yet)." },
      committedBlock: { type: new GraphQLNonNull(GraphQLInt), description: "Durably written up to this block: the data this answer reflects." },
      headBlock: { type: new GraphQLNonNull(GraphQLInt), description: "The chain head as last seen by the indexer." },
      ready: { type: new GraphQLNonNull(GraphQLBoolean), description: "The indexer has reached the head (or end block) at least once." },
      readyAt: { type: Scalars.TimestampScalar },
      eventsProcessed: { type: new GraphQLNonNull(Scalars.Int8Scalar) },
      historyFromBlock: { type: GraphQLInt, description: "The first block `block: { number }` can answer for." }
    }
  })
  const meta = new GraphQLObjectType({
    name: "Meta",
    fields: {
      committedCheckpointId: { type: new GraphQLNonNull(Scalars.BigIntScalar) },
      chains: { type: new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(chainMeta))) }
    }
  })

  const scalarType = (field: Catalog.Field): GraphQLScalarType => scalarTypes[field.scalar]

  // -------------------------------------------------------------------------------------------------------------
  // Reads

  const loadById = (session: Session, entity: Catalog.EntityInfo, at: bigint | undefined) =>
    session.memo(`byId:${entity.name}:${at ?? ""}`, () =>
      new DataLoader<string, Row | undefined>(async (ids) => {
        const rows = await session.query(ReadSql.byIds(catalog.schema, entity, ids, at))
        const found = new Map(rows.map((r) => [r.id as string, r]))
        return ids.map((id) => found.get(id))
      }, { maxBatchSize: limits.maxFilterValues }))

  const pageSpec = (entity: Catalog.EntityInfo, args: ListArgs, at: bigint | undefined): ReadSql.Page => {
    const first = args.first ?? limits.defaultFirst
    if (!Number.isSafeInteger(first) || first < 0) fail("first must be a non-negative integer")
    if (first > limits.maxFirst) fail(`first must be at most ${limits.maxFirst}`)
    const orderBy = entity.fields.find((f) => f.name === (args.orderBy ?? "id")) ?? fail(`cannot order by ${String(args.orderBy)}`)
    const direction = args.orderDirection ?? "asc"
    return {
      entity,
      where: args.where === null || args.where === undefined ? undefined : toFilter(entity, args.where, { count: 0 }),
      orderBy,
      direction,
      first,
      after: args.after === null || args.after === undefined ? undefined : decodeCursor(args.after, orderBy, direction),
      at
    }
  }

  const toPageSource = (spec: ReadSql.Page, rows: ReadonlyArray<Row>, totalCount: () => Promise<number>): PageSource => {
    const nodes = rows.slice(0, spec.first).map((row): Node => ({ entity: spec.entity, row, at: spec.at }))
    const first = nodes[0]
    const last = nodes[nodes.length - 1]
    return {
      nodes,
      pageInfo: {
        hasNextPage: rows.length > spec.first,
        hasPreviousPage: spec.after !== undefined,
        startCursor: first === undefined ? null : encodeCursor(spec, first.row),
        endCursor: last === undefined ? null : encodeCursor(spec, last.row)
      },
      totalCount
    }
  }

  const listPage = async (session: Session, entity: Catalog.EntityInfo, args: ListArgs): Promise<PageSource> => {
    const at = await session.checkpointAt(args.block)
    const spec = pageSpec(entity, args, at)
    const rows = await session.query(ReadSql.page(catalog.schema, spec))
    let count: Promise<number> | undefined
    return toPageSource(spec, rows, () =>
      (count ??= session.query<{ count: unknown }>(ReadSql.count(catalog.schema, entity, spec.where, at)).then((r) => Number(r[0]?.count ?? 0))))
  }

  const derivedPage = (session: Session, parent: Node, derived: Catalog.Derived, args: ListArgs): Promise<PageSource> => {
    const child = byName.get(derived.entity)!
    const field = child.fields.find((f) => f.name === derived.field)!
    const spec = pageSpec(child, args, parent.at)
    const key = `derived:${parent.entity.name}.${derived.name}:${parent.at ?? ""}:${JSON.stringify([args.where, args.orderBy, args.orderDirection, args.first, args.after])}`
    const pagesLoader = session.memo(`${key}:pages`, () =>
      new DataLoader<string, ReadonlyArray<Row>>(async (parents) => {
        const rows = await session.query(ReadSql.pagesByParent(catalog.schema, spec, field, parents))
        const grouped = new Map<string, Array<Row>>()
        for (const row of rows) {
          const id = row[ReadSql.parentColumn] as string
          const list = grouped.get(id)
          if (list === undefined) grouped.set(id, [row])
          else list.push(row)
        }
        return parents.map((p) => grouped.get(p) ?? [])
      }, { maxBatchSize: limits.maxFilterValues }))
    const countLoader = session.memo(`${key}:count`, () =>
      new DataLoader<string, number>(async (parents) => {
        const rows = await session.query(ReadSql.countsByParent(catalog.schema, child, field, parents, spec.where, spec.at))
        const counts = new Map(rows.map((r) => [r[ReadSql.parentColumn] as string, Number(r.count)]))
        return parents.map((p) => counts.get(p) ?? 0)
      }, { maxBatchSize: limits.maxFilterValues }))
    const parentId = parent.row.id as string
    return pagesLoader.load(parentId).then((rows) => toPageSource(spec, rows, () => countLoader.load(parentId)))
  }

  // -------------------------------------------------------------------------------------------------------------
  // Filters

  const toFilter = (entity: Catalog.EntityInfo, input: Readonly<Record<string, unknown>>, budget: { count: number }): ReadSql.Filter => {
    const keys = filterKeys.get(entity.name)!
    const filters: Array<ReadSql.Filter> = []
    for (const [key, value] of Object.entries(input)) {
      if (++budget.count > limits.maxFilterValues) fail(`a where argument may hold at most ${limits.maxFilterValues} conditions`)
      if (key === "and" || key === "or") {
        if (value === null || value === undefined) continue
        const parts = (value as ReadonlyArray<Readonly<Record<string, unknown>>>).map((v) => toFilter(entity, v, budget))
        filters.push({ _tag: key === "and" ? "And" : "Or", filters: parts })
        continue
      }
      const spec = keys.get(key) ?? fail(`unknown filter ${key}`)
      if (value === null && spec.op !== "eq" && spec.op !== "not") fail(`${key} cannot be null`)
      if ((spec.op === "in" || spec.op === "not_in") && (value as ReadonlyArray<unknown>).length > limits.maxFilterValues) {
        fail(`${key} may list at most ${limits.maxFilterValues} values`)
      }
      filters.push({ _tag: "Compare", field: spec.field, op: spec.op, value })
    }
    return { _tag: "And", filters }
  }

  const whereType = (entity: Catalog.EntityInfo): GraphQLInputObjectType => {
    const keys = new Map<string, { readonly field: Catalog.Field; readonly op: ReadSql.Operator }>()
    filterKeys.set(entity.name, keys)
    const type: GraphQLInputObjectType = new GraphQLInputObjectType({
      name: `${entity.name}Where`,
      description: `Conditions on ${entity.name} (all must hold); and/or combine nested conditions.`,
      fields: () => {
        const fields: Record<string, GraphQLInputFieldConfig> = {}
        for (const field of entity.fields) {
          if (field.scalar === "JSON") continue
          const scalar: GraphQLInputType = scalarType(field)
          const textual = field.scalar === "String" || field.scalar === "ID" || field.scalar === "Address" || field.scalar === "Hash"
          const ops: Array<ReadSql.Operator> = field.scalar === "Boolean"
            ? ["eq", "not", "in", "not_in"]
            : ["eq", "not", "in", "not_in", "gt", "gte", "lt", "lte", ...(textual ? ["contains", "starts_with"] as const : [])]
          for (const op of ops) {
            const key = op === "eq" ? field.name : `${field.name}_${op}`
            keys.set(key, { field, op })
            // Substring filters take any text (a prefix of an address is no address).
            fields[key] = {
              type: op === "in" || op === "not_in" ? new GraphQLList(new GraphQLNonNull(scalar)) : op === "contains" || op === "starts_with" ? GraphQLString : scalar
            }
          }
        }
        fields.and = { type: new GraphQLList(new GraphQLNonNull(type)) }
        fields.or = { type: new GraphQLList(new GraphQLNonNull(type)) }
        return fields
      }
    })
    return type
  }

  const orderByType = (entity: Catalog.EntityInfo): GraphQLEnumType =>
    new GraphQLEnumType({
      name: `${entity.name}OrderBy`,
      values: Object.fromEntries(entity.fields.filter((f) => f.scalar !== "JSON" && !["true", "false", "null"].includes(f.name)).map((f) => [f.name, { value: f.name }]))
    })

  const listArgs = (entity: Catalog.EntityInfo, withBlock: boolean): GraphQLFieldConfigArgumentMap => ({
    where: { type: wheres.get(entity.name)! },
    orderBy: { type: orderBys.get(entity.name)!, description: "Sort key (default id); id breaks ties, so the order is stable." },
    orderDirection: { type: orderDirection, defaultValue: "asc" },
    first: { type: GraphQLInt, description: `Page size (default ${limits.defaultFirst}, at most ${limits.maxFirst}).` },
    after: { type: GraphQLString, description: "The endCursor of the previous page." },
    ...(withBlock ? { block: { type: blockInput } } : {})
  })

  // -------------------------------------------------------------------------------------------------------------
  // Types

  for (const entity of catalog.entities) {
    wheres.set(entity.name, whereType(entity))
    orderBys.set(entity.name, orderByType(entity))
  }
  for (const entity of catalog.entities) {
    objects.set(entity.name, new GraphQLObjectType<Node, Session>({
      name: entity.name,
      fields: () => {
        const fields: Record<string, GraphQLFieldConfig<Node, Session, ListArgs>> = {}
        for (const field of entity.fields) {
          if (field.references !== undefined) {
            const target = byName.get(field.references)!
            const raw = scalarType(field)
            fields[Catalog.rawIdField(field)] = {
              type: field.column.nullable ? raw : new GraphQLNonNull(raw),
              description: `The id ${field.name} holds, as stored (also when no ${target.name} has it).`,
              resolve: (node) => output(field, node.row[field.column.name])
            }
            fields[field.name] = {
              type: objects.get(target.name)!,
              description: `The ${target.name} whose id this field holds.`,
              resolve: async (node, _args, session) => {
                const id = node.row[field.column.name]
                if (typeof id !== "string") return null
                const row = await loadById(session, target, node.at).load(id)
                return row === undefined ? null : { entity: target, row, at: node.at }
              }
            }
            continue
          }
          const type = scalarType(field)
          fields[field.name] = {
            type: field.column.nullable ? type : new GraphQLNonNull(type),
            resolve: (node) => output(field, node.row[field.column.name])
          }
        }
        for (const derived of entity.derived) {
          fields[derived.name] = {
            type: new GraphQLNonNull(pages.get(derived.entity)!),
            description: `The ${derived.entity} entities whose ${derived.field} is this ${entity.name}.`,
            args: listArgs(byName.get(derived.entity)!, false),
            resolve: (node, args, session) => derivedPage(session, node, derived, args)
          }
        }
        return fields
      }
    }))
    pages.set(entity.name, new GraphQLObjectType<PageSource, Session>({
      name: `${entity.name}Page`,
      fields: () => ({
        nodes: { type: new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(objects.get(entity.name)!))) },
        pageInfo: { type: new GraphQLNonNull(pageInfo) },
        totalCount: { type: new GraphQLNonNull(GraphQLInt), description: "Rows matching `where`, all pages together.", resolve: (page) => page.totalCount() }
      })
    }))
  }

  const rootFields = (): Record<string, GraphQLFieldConfig<unknown, Session, ListArgs & { readonly id?: string }>> => {
    const fields: Record<string, GraphQLFieldConfig<unknown, Session, ListArgs & { readonly id?: string }>> = {}
    for (const entity of catalog.entities) {
      fields[entity.single] = {
        type: objects.get(entity.name)!,
        args: { id: { type: new GraphQLNonNull(GraphQLID) }, block: { type: blockInput } },
        resolve: async (_root, args, session) => {
          const at = await session.checkpointAt(args.block)
          const row = await loadById(session, entity, at).load(args.id!)
          return row === undefined ? null : { entity, row, at }
        }
      }
      fields[entity.list] = {
        type: new GraphQLNonNull(pages.get(entity.name)!),
        args: listArgs(entity, true),
        resolve: (_root, args, session) => listPage(session, entity, args)
      }
    }
    fields._meta = {
      type: new GraphQLNonNull(meta),
      description: "How fresh the data is: per chain the processed, committed and head blocks.",
      resolve: (_root, _args, session) => session.meta()
    }
    return fields
  }

  return new GraphQLSchema({
    query: new GraphQLObjectType({ name: "Query", fields: rootFields }),
    subscription: new GraphQLObjectType({
      name: "Subscription",
      description: "Live queries: each field answers as its Query twin, again after every commit that changed what it reads.",
      fields: rootFields
    })
  })
}

const scalarTypes: Record<Catalog.Scalar, GraphQLScalarType> = {
  ID: GraphQLID,
  String: GraphQLString,
  Address: Scalars.AddressScalar,
  Hash: Scalars.HashScalar,
  BigInt: Scalars.BigIntScalar,
  Int: GraphQLInt,
  Int8: Scalars.Int8Scalar,
  Float: GraphQLFloat,
  Boolean: GraphQLBoolean,
  Timestamp: Scalars.TimestampScalar,
  JSON: Scalars.JsonScalar
}

/** A column value as the driver returns it, as its GraphQL scalar serializes it. */
const output = (field: Catalog.Field, raw: unknown): unknown => {
  if (raw === null || raw === undefined) return null
  switch (field.column.kind) {
    case "numeric":
      return String(raw)
    case "integer":
    case "bigint":
    case "double":
      return Number(raw)
    case "boolean":
      return raw === true || raw === "t"
    case "timestamptz":
      return raw instanceof Date ? raw : new Date(String(raw))
    default:
      return raw
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Cursors: opaque to clients; they carry the sort key (field, direction, value as SQL text, id) of a row.

const encodeCursor = (spec: ReadSql.Page, row: Row): string => {
  const value = row[ReadSql.cursorColumn]
  return Buffer.from(JSON.stringify([spec.orderBy.name, spec.direction, value === null || value === undefined ? null : String(value), row.id])).toString("base64url")
}

const decodeCursor = (cursor: string, orderBy: Catalog.Field, direction: ReadSql.Direction): ReadSql.After => {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
  } catch {
    parsed = undefined
  }
  if (!Array.isArray(parsed) || parsed.length !== 4 || typeof parsed[3] !== "string" || (parsed[2] !== null && typeof parsed[2] !== "string")) {
    return fail("after is not a cursor of this list")
  }
  const [field, dir, value, id] = parsed as [unknown, unknown, string | null, string]
  if (field !== orderBy.name || dir !== direction) return fail("after is a cursor of another orderBy or orderDirection")
  if (value !== null && !validCursorValue(orderBy.column.kind, value)) return fail("after is not a cursor of this list")
  return { value: orderBy.name === "id" ? id : value, id }
}

const validCursorValue = (kind: string, value: string): boolean => {
  switch (kind) {
    case "numeric":
    case "integer":
    case "bigint":
      return /^-?[0-9]{1,80}$/.test(value)
    case "double":
      return /^(-?[0-9.eE+-]{1,40}|NaN|-?Infinity)$/.test(value)
    case "boolean":
      return value === "true" || value === "false"
    case "timestamptz":
      return /^[0-9][0-9 :.T+-]{9,39}$/.test(value)
    default:
      return value.length <= 10_000
  }
}
