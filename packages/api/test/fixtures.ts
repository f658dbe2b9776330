/** Test fixtures: an ERC20 indexer over the simulated chain with references, runs into fresh Postgres schemas, and the API over them. */
import { Context, Duration, Effect, Layer, Redacted, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { type ExecutionResult, parse } from "graphql"
import { Config, Entity, Indexer, Runtime, SimChain } from "@chainstore/core"
import { Embedded, PgStorage } from "@chainstore/persistence"
import { Api, CommitSignal, Executor } from "@chainstore/api"

export const postgresUrl = Redacted.make(process.env.CHAINSTORE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test")
export const postgres = Embedded.layerPostgres({ url: postgresUrl, maxConnections: 4 })

export const Account = Entity.make("Account", { id: Entity.Address, balance: Schema.BigInt })
export const Transfer = Entity.make("Transfer", {
  id: Schema.String,
  from: Entity.Address,
  to: Entity.Address,
  value: Schema.BigInt,
  block: Schema.Int
}, { references: { from: "Account", to: "Account" } })

/** An ERC20 indexer on the simulated chain `sim`, with the given reorg window and end block. */
export const erc20 = (sim: Partial<SimChain.Params>, options: { readonly reorgWindow?: number; readonly endBlock?: number } = {}) =>
  Indexer.make({
    entities: [Account, Transfer],
    chains: [{
      id: 1337,
      source: SimChain.source({ ...SimChain.defaults, ...sim }),
      startBlock: 1,
      ...(options.reorgWindow === undefined ? {} : { reorgWindow: options.reorgWindow }),
      ...(options.endBlock === undefined ? {} : { endBlock: options.endBlock }),
      contracts: [{ name: "ERC20", abi: SimChain.abi, address: "0x5f5e100000000000000000000000000000000001" }]
    }],
    handlers: {
      ERC20: {
        Transfer: (event, ctx) =>
          Effect.gen(function*() {
            const { from, to, value } = event.params
            if (from !== SimChain.ZERO_ADDRESS) {
              const sender = yield* ctx.Account.get(from)
              yield* ctx.Account.set({ id: from, balance: (sender?.balance ?? 0n) - value })
            }
            const receiver = yield* ctx.Account.get(to)
            yield* ctx.Account.set({ id: to, balance: (receiver?.balance ?? 0n) + value })
            yield* ctx.Transfer.set({ id: `${event.blockNumber}-${event.logIndex}`, from, to, value, block: event.blockNumber })
          })
      }
    }
  })

export const freshSchema = () => `cs_api_${Math.random().toString(36).slice(2, 10)}`

/** Indexes `indexer` into `schema` (small batches, history pruned as often as possible). */
export const index = (indexer: Indexer.Indexer, schema: string) =>
  Runtime.run(indexer).pipe(
    Effect.provide(PgStorage.layer({ schema })),
    Effect.provide(Config.layer({ batchSize: 20, pruneInterval: Duration.zero }))
  )

export const drop = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  }).pipe(Effect.ignore)

/** The API's services over `schema` (no commit signal), built in the current scope. */
export const api = (indexer: Indexer.Indexer, schema: string, options: Executor.Options = {}) =>
  Layer.build(Api.layer(indexer, { schema, ...options }).pipe(Layer.provide(CommitSignal.layerNone)))

/** The API's executor over `schema`, built in the current scope. */
export const executor = (indexer: Indexer.Indexer, schema: string, options: Executor.Options = {}) =>
  Effect.map(api(indexer, schema, options), (context) => Context.get(context, Executor.Executor))

/** Runs a query; its result as plain JSON (what a client receives). */
export const run = (exec: Executor.Executor["Service"], query: string, variables?: Record<string, unknown>) =>
  Effect.map(
    exec.execute({ schema: exec.schema, document: parse(query), ...(variables === undefined ? {} : { variableValues: variables }) }),
    (result: ExecutionResult) => JSON.parse(JSON.stringify(result)) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> }
  )
