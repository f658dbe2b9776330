/**
 * ApiServer: the query API for the CLI's HTTP server. The API package (GraphQL, GraphiQL) is loaded only when the
 * HTTP port is on, so runs without it start as fast as before. Built into the caller's scope: it lives as long as
 * the run (or `serve`). An indexer the API cannot serve is a warning in `run` (indexing goes on), an error in `serve`.
 */
import { Context, Effect, Layer } from "effect"
import type { Indexer, Processor } from "@chainstore/core"
import type { GraphqlHttp } from "@chainstore/api"

export interface Options {
  readonly schema: string
  /** The processor's live progress, for `_meta`. */
  readonly progress: Effect.Effect<ReadonlyArray<Processor.ChainReport>>
}

export type Api = GraphqlHttp.GraphqlHttp["Service"]

/** The API's HTTP app in `run`: commits come from this process's writer; undefined (with a warning) when it cannot serve the indexer. */
export const build = (indexer: Indexer.Indexer, options: Options) =>
  Effect.gen(function*() {
    const { Api, CommitSignal, GraphqlHttp } = yield* Effect.promise(() => import("@chainstore/api"))
    const layer = Api.layer(indexer, { schema: options.schema, progress: options.progress }).pipe(Layer.provide(CommitSignal.layerPersistenceCycle))
    const built = yield* Effect.result(Layer.build(layer))
    if (built._tag === "Failure") {
      yield* Effect.logWarning(`The query API is off: ${built.failure.message}`)
      return undefined
    }
    return Context.get(built.success, GraphqlHttp.GraphqlHttp) satisfies Api
  })

/** The API's HTTP app for `serve`: read-only over a database another process writes. */
export const buildServe = (indexer: Indexer.Indexer, options: { readonly schema: string; readonly pollInterval?: number | undefined }) =>
  Effect.gen(function*() {
    const { Api, CommitSignal, GraphqlHttp, Reader } = yield* Effect.promise(() => import("@chainstore/api"))
    yield* Reader.verifyStored(indexer, options.schema)
    // `serve` starts its connections with the statement timeout (serve.ts): no SET per request.
    const layer = Api.layer(indexer, { schema: options.schema, connectionStatementTimeout: true }).pipe(
      Layer.provide(CommitSignal.layerPolling({ schema: options.schema, ...(options.pollInterval === undefined ? {} : { interval: options.pollInterval }) }))
    )
    const context = yield* Layer.build(layer)
    return Context.get(context, GraphqlHttp.GraphqlHttp) satisfies Api
  })
