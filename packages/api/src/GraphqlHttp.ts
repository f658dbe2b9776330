/**
 * GraphqlHttp: the API's HTTP endpoint, `<path>` (default `/graphql`), as an Effect HTTP app.
 * - GraphQL over HTTP (`graphql-http`, spec-compliant: GET and POST, `application/graphql-response+json` with 4xx
 *   for request errors, `application/json` for legacy clients);
 * - GraphQL over Server-Sent Events (`graphql-sse`, both connection modes) for live queries (subscriptions);
 * - GraphiQL for a browser (`GET` accepting HTML without a query), and its assets under `<path>/graphiql/`.
 * Every operation goes through `Executor` (limits, one snapshot, timeout). Errors a client sees never carry a
 * stack or SQL; unexpected ones are logged and answered as "internal error".
 */
import { Context, Effect, Layer, Stream } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { type ExecutionArgs, type ExecutionResult, GraphQLError } from "graphql"
import { createHandler as createHttpHandler, type Request as HttpRequest } from "graphql-http"
import { createHandler as createSseHandler, type Request as SseRequest } from "graphql-sse"
import * as GraphiQL from "./GraphiQL.js"
import { Executor } from "./Executor.js"
import { Live } from "./Live.js"
import { Reader } from "./Reader.js"

export interface Options {
  /** Where the API answers (default `/graphql`). */
  readonly path?: string | undefined
  /** Largest request body accepted (default 1 MiB). */
  readonly maxBodyBytes?: number | undefined
}

export class GraphqlHttp extends Context.Service<GraphqlHttp, {
  readonly path: string
  /** Whether a request path belongs to the API (`path` itself or under it). */
  readonly handles: (pathname: string) => boolean
  /** Answers a request for `path` or under it. */
  readonly app: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
}>()("chainstore/api/GraphqlHttp") {}

export const make = Effect.fn("GraphqlHttp.make")(function*(options: Options = {}) {
  const executor = yield* Executor
  const live = yield* Live
  const reader = yield* Reader
  const context = yield* Effect.context<never>()
  const runPromise = Effect.runPromiseWith(context)
  const path = (options.path ?? "/graphql").replace(/\/+$/, "") || "/graphql"
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024
  const asset = GraphiQL.loader()
  const page = GraphiQL.page(path, defaultQuery(reader))

  const execute = (args: ExecutionArgs): Promise<ExecutionResult> => runPromise(executor.execute(args))

  const httpHandler = createHttpHandler<HttpServerRequest.HttpServerRequest>({
    schema: executor.schema,
    parse: executor.parse,
    // graphql-http validates with these rules through `validate`: the static ones are cached per document there.
    validationRules: (_req, args) => executor.variableRules(args.variableValues),
    validate: (_schema, document, rules) => executor.validateWith(document, rules ?? []) as Array<GraphQLError>,
    execute,
    formatError: mask
  })

  const sseHandler = createSseHandler<HttpServerRequest.HttpServerRequest>({
    schema: executor.schema,
    validate: (schema, document) => {
      void schema
      return executor.validate(document).map(mask) as Array<GraphQLError>
    },
    onSubscribe: (_req, params) => {
      // graphql-sse parses with the default parser: check the token limit first.
      try {
        executor.parse(params.query)
      } catch (error) {
        return { errors: [mask(error instanceof GraphQLError ? error : new GraphQLError(String(error)))] } satisfies ExecutionResult
      }
      return undefined
    },
    execute,
    subscribe: (args) => closable(Stream.toAsyncIterableWith(live.results(args), context)),
    onNext: (_ctx, _req, result) => ("errors" in result && result.errors !== undefined ? { ...result, errors: result.errors.map(mask) } : result)
  })

  const app = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, "http://localhost")
    if (url.pathname.startsWith(`${path}/graphiql/`)) {
      const found = yield* asset(url.pathname.slice(path.length + "/graphiql/".length))
      return found === undefined
        ? HttpServerResponse.text("not found\n", { status: 404 })
        : HttpServerResponse.uint8Array(found.body, { contentType: found.contentType, headers: { "cache-control": "public, max-age=3600" } })
    }
    if (url.pathname !== path) return HttpServerResponse.text("not found\n", { status: 404 })
    const accept = request.headers.accept ?? ""
    if (request.method === "GET" && !url.searchParams.has("query") && accept.includes("text/html")) {
      return HttpServerResponse.html(page)
    }
    const length = Number(request.headers["content-length"] ?? "0")
    if (Number.isFinite(length) && length > maxBodyBytes) {
      return yield* jsonError(413, `The request body is larger than ${maxBodyBytes} bytes.`)
    }
    const isSse = accept.includes("text/event-stream") || request.method === "PUT" || request.method === "DELETE" ||
      request.headers["x-graphql-event-stream-token"] !== undefined || url.searchParams.has("token")
    const body = () => runPromise(request.text.pipe(Effect.map((text) => (text.length > maxBodyBytes ? "" : text)), Effect.orElseSucceed(() => "")))
    if (isSse) {
      const sseRequest: SseRequest<HttpServerRequest.HttpServerRequest, undefined> = {
        method: request.method,
        url: request.url,
        headers: { get: (key) => request.headers[key.toLowerCase()] ?? null },
        body,
        raw: request,
        context: undefined
      }
      const [payload, init] = yield* Effect.promise(() => sseHandler(sseRequest))
      const { "content-type": contentType, ...headers } = init.headers ?? {}
      const options = { status: init.status, statusText: init.statusText, headers, ...(contentType === undefined ? {} : { contentType }) }
      if (payload === null || typeof payload === "string") return HttpServerResponse.text(payload ?? "", options)
      return HttpServerResponse.stream(Stream.fromAsyncIterable(payload, (error) => error).pipe(Stream.encodeText), {
        ...options,
        headers: { ...headers, "cache-control": "no-cache", "x-accel-buffering": "no" }
      })
    }
    const httpRequest: HttpRequest<HttpServerRequest.HttpServerRequest, undefined> = {
      method: request.method,
      url: request.url,
      headers: request.headers,
      body,
      raw: request,
      context: undefined
    }
    const [payload, init] = yield* Effect.promise(() => httpHandler(httpRequest))
    const { "content-type": contentType, ...headers } = init.headers ?? {}
    return HttpServerResponse.text(payload ?? "", { status: init.status, statusText: init.statusText, headers, ...(contentType === undefined ? {} : { contentType }) })
  }).pipe(
    Effect.catchCause((cause) =>
      Effect.andThen(Effect.logError("GraphQL HTTP request failed", cause), jsonError(500, "internal error")))
  )

  return GraphqlHttp.of({
    path,
    handles: (pathname) => pathname === path || pathname.startsWith(`${path}/`),
    app
  })
})

export const layer = (options: Options = {}): Layer.Layer<GraphqlHttp, never, Executor | Live | Reader> => Layer.effect(GraphqlHttp, make(options))

/**
 * An async iterable as graphql-sse wants one to end it: a generator-shaped object whose `return` reaches the
 * stream at once (a real async generator would queue `return` behind a `next` waiting for the next commit).
 */
interface Closable<A> extends AsyncIterableIterator<A> {
  readonly return: () => Promise<IteratorReturnResult<void>>
  readonly throw: () => Promise<IteratorReturnResult<void>>
}

const closable = <A>(iterable: AsyncIterable<A>): Closable<A> => {
  const iterator = iterable[Symbol.asyncIterator]()
  const done: IteratorReturnResult<void> = { done: true, value: undefined }
  const generator: Closable<A> = {
    next: () => iterator.next(),
    return: async () => {
      await iterator.return?.()
      return done
    },
    throw: async () => {
      await iterator.return?.()
      return done
    },
    [Symbol.asyncIterator]: () => generator
  }
  return generator
}

const jsonError = (status: number, message: string) =>
  Effect.succeed(HttpServerResponse.text(JSON.stringify({ errors: [{ message }] }), { status, contentType: "application/json; charset=utf-8" }))

/**
 * What a client may see of an error: GraphQL errors as they are (parse, validation, and resolver errors made on
 * purpose carry a code); an unexpected exception inside a resolver as "internal error".
 */
const mask = (error: Readonly<GraphQLError | Error>): GraphQLError => {
  // Plain errors come from the transport libraries' request checks (bad JSON, missing query): their words are for clients.
  if (!(error instanceof GraphQLError)) return new GraphQLError(error.message)
  const original = error.originalError
  if (original === undefined || original === null || original instanceof GraphQLError || error.extensions?.code !== undefined) return error
  return new GraphQLError("internal error", { nodes: error.nodes ?? null, path: error.path ?? null, extensions: { code: "INTERNAL" } })
}

/** The query GraphiQL opens with: freshness, and the first page of the first entity. */
const defaultQuery = (reader: Reader["Service"]): string => {
  const entity = reader.catalog.entities[0]
  const fields = entity === undefined ? [] : entity.fields.filter((f) => f.references === undefined).slice(0, 6).map((f) => f.name)
  return `# chainstore GraphQL API: press the run button (or Ctrl-Enter).
{
  _meta {
    chains { chainId committedBlock headBlock ready }
  }${entity === undefined ? "" : `
  ${entity.list}(first: 10) {
    nodes { ${fields.join(" ")} }
    pageInfo { hasNextPage endCursor }
    totalCount
  }`}
}
`
}
