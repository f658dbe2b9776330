/**
 * Api: the query API of an indexer composed into one layer — Reader (snapshots) → Executor (schema, limits,
 * timeout) → Live (live queries on a CommitSignal) → GraphqlHttp (the HTTP endpoint). `chainstore run` gives it
 * the writer's commit signal and the processor's live progress; `chainstore serve` a polling signal.
 */
import { type Duration, type Effect, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import type { Indexer, Processor } from "@chainstore/core"
import type { CommitSignal } from "./CommitSignal.js"
import type { ApiDefinitionError } from "./Errors.js"
import * as Executor from "./Executor.js"
import * as GraphqlHttp from "./GraphqlHttp.js"
import * as Live from "./Live.js"
import * as Reader from "./Reader.js"

export interface Options extends Executor.Options, GraphqlHttp.Options {
  /** The Postgres schema of the indexer's tables. */
  readonly schema: string
  readonly statementTimeout?: Duration.Input | undefined
  readonly connectionStatementTimeout?: boolean | undefined
  readonly progress?: Effect.Effect<ReadonlyArray<Processor.ChainReport>> | undefined
}

export type Services = GraphqlHttp.GraphqlHttp | Live.Live | Executor.Executor | Reader.Reader

/** The API of `indexer` over the SqlClient and CommitSignal provided. */
export const layer = (
  indexer: Indexer.Indexer,
  options: Options
): Layer.Layer<Services, ApiDefinitionError, SqlClient.SqlClient | CommitSignal> =>
  GraphqlHttp.layer(options).pipe(
    Layer.provideMerge(Live.layer),
    Layer.provideMerge(Executor.layer(options)),
    Layer.provideMerge(Reader.layer(indexer, options))
  )
