/** Shared test fixtures: entity definitions, write plans built by hand, backends, and a statement-counting client. */
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient, type SqlConnection } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Batch, Change, Entity, type Event, ExternalEffect, Indexer, Source, Storage } from "@chainstore/core"
import { PgStorage } from "@chainstore/persistence"

export const postgresUrl = Redacted.make(process.env.CHAINSTORE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test")

// ---------------------------------------------------------------------------------------------------------------
// Definitions

export const AllTypes = Entity.make("AllTypes", {
  id: Schema.String,
  text: Schema.String,
  big: Schema.BigInt,
  int: Schema.Int,
  small: Schema.Int.check(Schema.isBetween({ minimum: -1000, maximum: 1000 })),
  num: Schema.Number,
  flag: Schema.Boolean,
  at: Schema.Date,
  tags: Schema.Array(Schema.String),
  nested: Schema.Struct({
    amount: Schema.BigInt,
    when: Schema.Date,
    items: Schema.Array(Schema.Struct({ k: Schema.String, v: Schema.Number }))
  }),
  plain: Schema.Struct({ name: Schema.String, values: Schema.Array(Schema.Int) }),
  anything: Schema.Unknown,
  maybeBig: Schema.NullOr(Schema.BigInt),
  note: Schema.optional(Schema.String),
  kind: Schema.Literals(["a", "b"])
})
export type AllTypes = Entity.Type<typeof AllTypes>

export const Account = Entity.make("Account", {
  id: Schema.String,
  owner: Schema.String,
  balance: Schema.BigInt,
  transfers: Schema.Int
}, { indexes: ["owner", "balance"] })
export type Account = Entity.Type<typeof Account>

export const price = ExternalEffect.make({
  name: "price",
  input: Schema.Struct({ token: Schema.String }),
  output: Schema.Struct({ usd: Schema.Number, source: Schema.String }),
  run: () => Effect.succeed({ usd: 1, source: "test" })
})

export const headBlock = ExternalEffect.make({
  name: "headBlock",
  input: Schema.Struct({ chain: Schema.Number }),
  output: Schema.Struct({ number: Schema.Number }),
  reorgSensitive: true,
  run: () => Effect.succeed({ number: 1 })
})

const source = Source.memory([]).source

export const makeIndexer = (options: { readonly entities?: ReadonlyArray<Entity.Any>; readonly rawEvents?: boolean } = {}) =>
  Indexer.make({
    entities: options.entities ?? [AllTypes, Account],
    effects: [price, headBlock],
    chains: [
      { id: 1, source, startBlock: 100, contracts: [] },
      { id: 10, source, startBlock: 5, endBlock: 1_000, reorgWindow: 50, contracts: [] }
    ],
    handlers: {},
    rawEvents: options.rawEvents ?? true
  })

export const indexer = makeIndexer()

// ---------------------------------------------------------------------------------------------------------------
// Values

export const allTypes = (id: string, overrides: Partial<AllTypes> = {}): AllTypes => ({
  id,
  text: `text of ${id}`,
  big: 123n,
  int: -42,
  small: 7,
  num: 1.5,
  flag: true,
  at: new Date("2024-05-06T07:08:09.123Z"),
  tags: ["x", "y"],
  nested: { amount: 10n ** 30n, when: new Date(0), items: [{ k: "a", v: 1 }] },
  plain: { name: "n", values: [1, 2, 3] },
  anything: { deep: [1, "two", { three: null }] },
  maybeBig: null,
  kind: "a",
  ...overrides
})

/** A Set change of an entity value at a checkpoint. */
export const set = <A extends { readonly id: string }>(entity: A, checkpoint: bigint) => Change.set<unknown>(entity.id, entity, checkpoint)

export const account = (id: string, balance: bigint, owner = "alice", transfers = 1): Account => ({ id, owner, balance, transfers })

// ---------------------------------------------------------------------------------------------------------------
// Write plans

export interface CheckpointSpec {
  readonly id: bigint
  readonly chainId?: number
  readonly block: number
  readonly hash?: string
  readonly events?: number
}

export interface PlanSpec {
  readonly entities?: Readonly<Record<string, ReadonlyArray<Change.Change<unknown>>>>
  readonly effects?: Readonly<Record<string, ReadonlyArray<Storage.EffectRow>>>
  readonly checkpoints?: ReadonlyArray<CheckpointSpec>
  readonly items?: ReadonlyArray<Event.Event>
  readonly progress?: ReadonlyArray<Batch.ChainProgress>
  readonly registrations?: ReadonlyArray<Batch.Registration>
  readonly inThreshold?: boolean
  readonly rollback?: Storage.Rollback
  readonly chainMeta?: ReadonlyArray<Storage.ChainMeta>
  /** Defaults to the last checkpoint id. */
  readonly committed?: bigint
}

export const blockHash = (block: number) => `0x${block.toString(16).padStart(64, "0")}`

export const plan = (spec: PlanSpec): Storage.WritePlan => {
  const checkpoints = spec.checkpoints ?? []
  const batch: Batch.Batch = {
    ...Batch.empty,
    items: spec.items ?? [],
    checkpointIds: checkpoints.map((c) => c.id),
    checkpointChainIds: checkpoints.map((c) => c.chainId ?? 1),
    checkpointBlockNumbers: checkpoints.map((c) => c.block),
    checkpointBlockHashes: checkpoints.map((c) => c.hash ?? blockHash(c.block)),
    checkpointEventsProcessed: checkpoints.map((c) => c.events ?? 0),
    isInReorgThreshold: spec.inThreshold ?? false,
    progress: spec.progress ?? [],
    registrations: spec.registrations ?? []
  }
  return {
    rollback: spec.rollback,
    batch,
    entities: Object.entries(spec.entities ?? {}).map(([entity, changes]) => ({ entity, changes })),
    effects: Object.entries(spec.effects ?? {}).map(([effect, rows]) => ({ effect, rows })),
    chainMeta: spec.chainMeta,
    committedCheckpointId: spec.committed ?? checkpoints[checkpoints.length - 1]?.id ?? 0n
  }
}

export const event = (block: number, logIndex: number, params: Readonly<Record<string, unknown>>): Event.Event => ({
  chainId: 1,
  contractName: "Token",
  eventName: "Transfer",
  srcAddress: "0x00000000000000000000000000000000000000aa",
  blockNumber: block,
  blockHash: blockHash(block),
  blockTimestamp: 1_700_000_000 + block,
  logIndex,
  transactionHash: `0x${"ab".repeat(32)}`,
  params,
  block: { number: block, hash: blockHash(block) as `0x${string}`, timestamp: 1_700_000_000 + block },
  transaction: { hash: `0x${"ab".repeat(32)}` },
  log: {}
})

// ---------------------------------------------------------------------------------------------------------------
// Backends

/** A storage implementation under test: a fresh layer per schema name, and the schema's removal after a test. */
export interface Backend<R> {
  readonly name: string
  readonly kind: "memory" | "postgres" | "embedded"
  readonly storage: (schema: string) => Layer.Layer<Storage.Storage, never, R>
  readonly drop: (schema: string) => Effect.Effect<void, never, R>
}

let schemaCounter = 0
/** A schema name unique to this test file run. */
export const freshSchema = () => `cs_test_${process.pid}_${Date.now().toString(36)}_${++schemaCounter}`

export const memoryBackend: Backend<never> = {
  name: "memory",
  kind: "memory",
  storage: () => Layer.fresh(Storage.layerMemory),
  drop: () => Effect.void
}

export const sqlBackend = (kind: "postgres" | "embedded"): Backend<SqlClient.SqlClient> => ({
  name: kind,
  kind,
  storage: (schema) => PgStorage.layer({ schema }),
  drop: (schema) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    }).pipe(Effect.ignore)
})

/** Runs `body` against a fresh storage of `backend` (initialized with `def`), dropping its schema afterwards. */
export const withStorage = <R, A, E, R2>(
  backend: Backend<R>,
  body: (storage: Storage.Storage["Service"], schema: string) => Effect.Effect<A, E, R2>,
  def: Indexer.Indexer = indexer
) => {
  const schema = freshSchema()
  return Effect.gen(function*() {
    const storage = yield* Storage.Storage
    yield* storage.initialize(def)
    return yield* body(storage, schema)
  }).pipe(Effect.provide(backend.storage(schema)), Effect.ensuring(backend.drop(schema)))
}

export const postgresClient = PgClient.layer({ url: postgresUrl, maxConnections: 6 })

// ---------------------------------------------------------------------------------------------------------------
// Statement counting

export class StatementLog extends Context.Service<StatementLog, {
  readonly statements: Effect.Effect<ReadonlyArray<string>>
  readonly clear: Effect.Effect<void>
}>()("test/StatementLog") {}

/**
 * A SqlClient over the one in context that records every statement sent (transaction control included), so
 * tests can count round trips without server-side statistics.
 */
export const countingClient: Layer.Layer<SqlClient.SqlClient | StatementLog, never, SqlClient.SqlClient> = Layer.effectContext(
  Effect.gen(function*() {
    const inner = yield* SqlClient.SqlClient
    const log: Array<string> = []
    const wrap = (connection: SqlConnection.Connection): SqlConnection.Connection => ({
      execute: (text, params, transform) => (log.push(text), connection.execute(text, params, transform)),
      executeRaw: (text, params) => (log.push(text), connection.executeRaw(text, params)),
      executeStream: (text, params, transform) => (log.push(text), connection.executeStream(text, params, transform)),
      executeValues: (text, params) => (log.push(text), connection.executeValues(text, params)),
      executeValuesUnprepared: (text, params) => (log.push(text), connection.executeValuesUnprepared(text, params)),
      executeUnprepared: (text, params, transform) => (log.push(text), connection.executeUnprepared(text, params, transform))
    })
    const client = yield* SqlClient.make({
      acquirer: Effect.map(inner.reserve, wrap),
      compiler: PgClient.makeCompiler(),
      spanAttributes: [],
      driver: "pg"
    }).pipe(Effect.provide(Reactivity.layer), Effect.orDie)
    return Context.make(SqlClient.SqlClient, client).pipe(
      Context.add(StatementLog, StatementLog.of({
        statements: Effect.sync(() => [...log]),
        clear: Effect.sync(() => void log.splice(0))
      }))
    )
  })
)
