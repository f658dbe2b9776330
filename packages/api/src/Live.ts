/**
 * Live: live queries. A subscription operation (its root field is one of Query's, mirrored on Subscription) is
 * answered as that query now, and again after every commit that wrote an entity the operation reads (`_meta`
 * reads them all); a result equal to the last one sent is not sent again. Commits that arrive while a result is
 * being computed collapse into one re-run. Each run is an ordinary query: one snapshot, the same limits.
 */
import { Context, Effect, Layer, Metric, Stream } from "effect"
import {
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  getNamedType,
  getOperationAST,
  type GraphQLSchema,
  Kind,
  OperationTypeNode,
  TypeInfo,
  visit,
  visitWithTypeInfo
} from "graphql"
import * as ApiMetrics from "./ApiMetrics.js"
import { type Commit, CommitSignal } from "./CommitSignal.js"
import { Executor } from "./Executor.js"
import { Reader } from "./Reader.js"

export class Live extends Context.Service<Live, {
  /** The results of a subscription operation, as they change; ends when the consumer stops. */
  readonly results: (args: ExecutionArgs) => Stream.Stream<ExecutionResult>
}>()("chainstore/api/Live") {}

export const make = Effect.gen(function*() {
  const executor = yield* Executor
  const signal = yield* CommitSignal
  const reader = yield* Reader
  const entityNames = new Set(reader.catalog.entities.map((e) => e.name))

  const results = (args: ExecutionArgs): Stream.Stream<ExecutionResult> =>
    Stream.unwrap(Effect.gen(function*() {
      // Subscribe before the first run, so no commit falls between them.
      const commits = yield* signal.subscribe
      yield* Effect.acquireRelease(Metric.modify(ApiMetrics.liveQueries, 1), () => Metric.modify(ApiMetrics.liveQueries, -1))
      const query = asQuery(args.document, args.operationName)
      const reads = readsOf(executor.schema, query, entityNames)
      const relevant = (commit: Commit) => reads === "all" || commit.entities === undefined || commit.entities.some((e) => reads.has(e))
      let last: string | undefined
      return Stream.concat(Stream.succeed<unknown>(undefined), commits.pipe(Stream.filter(relevant))).pipe(
        Stream.buffer({ capacity: 1, strategy: "sliding" }),
        Stream.mapEffect(() => executor.execute({ ...args, document: query })),
        Stream.filter((result) => {
          const json = JSON.stringify(result)
          if (json === last) return false
          last = json
          return true
        })
      )
    })).pipe(Stream.withSpan("Live.results"))

  return Live.of({ results })
})

export const layer: Layer.Layer<Live, never, Executor | CommitSignal | Reader> = Layer.effect(Live, make)

/** The document with the chosen subscription operation turned into a query (Query and Subscription have the same fields). */
const asQuery = (document: DocumentNode, operationName: string | null | undefined): DocumentNode => {
  const operation = getOperationAST(document, operationName)
  return {
    ...document,
    definitions: document.definitions.map((d) => (d === operation && d.kind === Kind.OPERATION_DEFINITION ? { ...d, operation: OperationTypeNode.QUERY } : d))
  }
}

/** The entities an operation reads (through nested fields and fragments), or "all" when it reads `_meta`. */
const readsOf = (schema: GraphQLSchema, document: DocumentNode, entities: ReadonlySet<string>): ReadonlySet<string> | "all" => {
  const typeInfo = new TypeInfo(schema)
  const reads = new Set<string>()
  let all = false
  visit(document, visitWithTypeInfo(typeInfo, {
    Field() {
      const type = typeInfo.getType()
      if (type === null || type === undefined) return
      const name = getNamedType(type).name
      if (name === "Meta" || name === "ChainMeta") all = true
      const entity = name.endsWith("Page") && entities.has(name.slice(0, -4)) ? name.slice(0, -4) : name
      if (entities.has(entity)) reads.add(entity)
    }
  }))
  return all ? "all" : reads
}
