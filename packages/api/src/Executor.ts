/**
 * Executor: runs one GraphQL operation against the generated schema — parse (token-limited), validate (the
 * spec's rules plus the depth and complexity limits) and execute inside one snapshot (`Reader`) within the
 * request timeout. Both HTTP transports and live queries go through it. Results never carry stacks or SQL.
 */
import { Context, Duration, Effect, Layer, Metric } from "effect"
import {
  type DocumentNode,
  execute,
  type ExecutionArgs,
  type ExecutionResult,
  GraphQLError,
  type GraphQLSchema,
  parse,
  type Source,
  specifiedRules,
  validate,
  type ValidationRule
} from "graphql"
import * as ApiMetrics from "./ApiMetrics.js"
import * as GraphqlSchema from "./GraphqlSchema.js"
import * as Limits from "./Limits.js"
import { Reader } from "./Reader.js"

export interface Options {
  readonly limits?: Partial<GraphqlSchema.Limits> | undefined
  readonly maxDepth?: number | undefined
  readonly maxComplexity?: number | undefined
  /** Longest a request may take (default 10 s); a slower one gets a TIMEOUT error. */
  readonly requestTimeout?: Duration.Input | undefined
  /** Most lexical tokens a document may have (default 10,000). */
  readonly maxTokens?: number | undefined
}

export class Executor extends Context.Service<Executor, {
  readonly schema: GraphQLSchema
  /** Parses with the token limit; the documents of recent query texts are reused. */
  readonly parse: (source: string | Source) => DocumentNode
  /** The rules that depend on the request's variables (the complexity estimate reads `first` from them). */
  readonly variableRules: (variables?: Readonly<Record<string, unknown>> | null) => ReadonlyArray<ValidationRule>
  /**
   * Validates with the spec's rules and the depth limit (cached per document), then `rules` (the variable-dependent
   * ones) when the document passed.
   */
  readonly validateWith: (document: DocumentNode, rules: ReadonlyArray<ValidationRule>) => ReadonlyArray<GraphQLError>
  readonly validate: (document: DocumentNode, variables?: Readonly<Record<string, unknown>> | null) => ReadonlyArray<GraphQLError>
  /** Executes a validated operation in one snapshot; never fails: errors are in the result. */
  readonly execute: (args: ExecutionArgs) => Effect.Effect<ExecutionResult>
}>()("chainstore/api/Executor") {}

export const make = Effect.fn("Executor.make")(function*(options: Options = {}) {
  const reader = yield* Reader
  const limits: GraphqlSchema.Limits = { ...GraphqlSchema.defaultLimits, ...options.limits }
  const schema = GraphqlSchema.make(reader.catalog, limits)
  const pageFields = new Set(reader.catalog.entities.flatMap((e) => [e.list, ...e.derived.map((d) => d.name)]))
  const limitOptions: Limits.Options = {
    maxDepth: options.maxDepth ?? Limits.defaults.maxDepth,
    maxComplexity: options.maxComplexity ?? Limits.defaults.maxComplexity,
    defaultFirst: limits.defaultFirst,
    pageFields
  }
  const timeout = options.requestTimeout ?? Duration.seconds(10)
  const maxTokens = options.maxTokens ?? 10_000

  const staticRules: ReadonlyArray<ValidationRule> = [...specifiedRules, Limits.depthLimit(limitOptions)]
  const variableRules = (variables?: Readonly<Record<string, unknown>> | null): ReadonlyArray<ValidationRule> => [
    Limits.complexityLimit(limitOptions, variables)
  ]
  // Clients send the same few query texts again and again: parse and validate each once.
  const documents = new Map<string, DocumentNode>()
  const validated = new WeakMap<DocumentNode, ReadonlyArray<GraphQLError>>()
  const parseCached = (source: string | Source): DocumentNode => {
    const text = typeof source === "string" ? source : source.body
    const cached = documents.get(text)
    if (cached !== undefined) return cached
    const document = parse(source, { maxTokens })
    if (text.length <= maxCachedQueryLength) {
      if (documents.size >= maxCachedDocuments) documents.delete(documents.keys().next().value!)
      documents.set(text, document)
    }
    return document
  }
  const validateWith = (document: DocumentNode, rules: ReadonlyArray<ValidationRule>): ReadonlyArray<GraphQLError> => {
    let errors = validated.get(document)
    if (errors === undefined) {
      errors = validate(schema, document, staticRules)
      validated.set(document, errors)
    }
    return errors.length > 0 || rules.length === 0 ? errors : validate(schema, document, rules)
  }

  const run = (args: ExecutionArgs): Effect.Effect<ExecutionResult> =>
    reader.read((session) => Promise.resolve(execute({ ...args, schema, contextValue: session }))).pipe(
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () => Effect.succeed<ExecutionResult>({
          data: null,
          errors: [new GraphQLError(`The request took longer than ${Duration.toMillis(timeout)} ms and was canceled.`, { extensions: { code: "TIMEOUT" } })]
        })
      }),
      Effect.catchTag("ReadError", (error) =>
        Effect.gen(function*() {
          if (error.code === "INTERNAL") yield* Effect.logWarning("GraphQL request failed", error.cause)
          return { data: null, errors: [new GraphQLError(error.public, { extensions: { code: error.code } })] } satisfies ExecutionResult
        })),
      Effect.tap(Metric.update(ApiMetrics.requests, 1)),
      Effect.timed,
      Effect.flatMap(([duration, result]) => Effect.as(Metric.update(ApiMetrics.requestDuration, Duration.toMillis(duration)), result)),
      Effect.withSpan("Executor.execute", { attributes: { operation: args.operationName ?? "" } })
    )

  return Executor.of({
    schema,
    parse: parseCached,
    variableRules,
    validateWith,
    validate: (document, variables) => validateWith(document, variableRules(variables)),
    execute: run
  })
})

const maxCachedDocuments = 500
const maxCachedQueryLength = 20_000

export const layer = (options: Options = {}): Layer.Layer<Executor, never, Reader> => Layer.effect(Executor, make(options))
