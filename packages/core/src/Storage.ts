/**
 * Storage: the port to durable state (design.md §2–3), and an in-memory implementation for tests that can be
 * told to hold or fail writes. The Postgres/PGlite implementation lives in @chainstore/persistence.
 */
import { Context, Effect, Layer, Schedule } from "effect"
import { ChainstoreConfig } from "./Config.js"
import type * as Batch from "./Batch.js"
import type { Operator } from "./Entity.js"
import type { BuildChangedError, StorageError } from "./Errors.js"
import type { Indexer } from "./Indexer.js"
import * as InMemory from "./internal/MemoryStorage.js"
import type { ChainMeta, EffectRow, ResumeState, RollbackDiff, Status, WritePlan } from "./internal/StorageData.js"
import type { Block } from "./Source.js"

// The data types live in a leaf module: the in-memory implementation needs them, and importing them from here would be a cycle.
export type { ChainMeta, ChainState, EffectRow, ResumeState, Rollback, RollbackDiff, Status, WritePlan } from "./internal/StorageData.js"

export class Storage extends Context.Service<Storage, {
  /**
   * Creates or checks the tables for an indexer and returns what was committed before. Tables written by another
   * build than `indexer.build` (when set) fail with BuildChangedError; tables without a build take this one.
   */
  readonly initialize: (indexer: Indexer) => Effect.Effect<ResumeState, StorageError | BuildChangedError>
  readonly loadByIds: (entity: string, ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<unknown>, StorageError>
  readonly loadByField: (
    entity: string,
    field: string,
    op: Operator,
    value: unknown
  ) => Effect.Effect<ReadonlyArray<unknown>, StorageError>
  /** Stored outputs as JSON; the caller decodes them with the effect's current output schema. */
  readonly loadEffectEntries: (
    effect: string,
    keys: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<{ readonly key: string; readonly output: unknown }>, StorageError>
  readonly writeBatch: (plan: WritePlan) => Effect.Effect<void, StorageError>
  readonly writeChainMeta: (meta: ReadonlyArray<ChainMeta>) => Effect.Effect<void, StorageError>
  /** The last checkpoint of `chainId` at or below `blockNumber` (the reorg's common ancestor), or 0. */
  readonly rollbackTarget: (chainId: number, blockNumber: number) => Effect.Effect<bigint, StorageError>
  readonly readRollbackDiff: (targetCheckpointId: bigint) => Effect.Effect<RollbackDiff, StorageError>
  readonly storedBlockHashes: (chainId: number, fromBlock: number) => Effect.Effect<ReadonlyArray<Block>, StorageError>
  /** Contract addresses handlers registered on a chain, as committed (oldest first). */
  readonly loadAddresses: (chainId: number) => Effect.Effect<ReadonlyArray<Batch.Registration>, StorageError>
  /**
   * Deletes what no rollback can need any more: history rows at or below the safe checkpoint except each id's
   * newest one there, and checkpoints below it (the safe checkpoint itself stays: it can be a rollback target).
   */
  readonly pruneHistory: (safeCheckpointId: bigint) => Effect.Effect<void, StorageError>
  readonly status: Effect.Effect<Status, StorageError>
  /** Drops every table of the indexer. */
  readonly reset: Effect.Effect<void, StorageError>
}>()("chainstore/Storage") {}

/**
 * The storage in context with every operation re-run on retryable errors (connection lost, admin shutdown,
 * serialization failure) with bounded, jittered exponential backoff. Safe for writes too: a failed transaction
 * wrote nothing.
 */
export const layerRetrying: Layer.Layer<Storage, never, Storage> = Layer.effect(
  Storage,
  Effect.gen(function*() {
    const storage = yield* Storage
    const { storageAttempts, storageRetryBase } = yield* ChainstoreConfig
    const retrying = <A, E extends StorageError | BuildChangedError>(what: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      effect.pipe(
        Effect.tapError((e) => (e._tag === "StorageError" && e.isRetryable ? Effect.logWarning(`Storage ${what} failed (${e.message}); trying again`) : Effect.void)),
        Effect.retry({
          schedule: Schedule.exponential(storageRetryBase).pipe(Schedule.jittered),
          times: Math.max(0, storageAttempts - 1),
          while: (e: E) => e._tag === "StorageError" && e.isRetryable
        })
      )
    return Storage.of({
      initialize: (indexer) => retrying("initialize", storage.initialize(indexer)),
      loadByIds: (entity, ids) => retrying("loadByIds", storage.loadByIds(entity, ids)),
      loadByField: (entity, field, op, value) => retrying("loadByField", storage.loadByField(entity, field, op, value)),
      loadEffectEntries: (effect, keys) => retrying("loadEffectEntries", storage.loadEffectEntries(effect, keys)),
      writeBatch: (plan) => retrying("writeBatch", storage.writeBatch(plan)),
      writeChainMeta: (meta) => retrying("writeChainMeta", storage.writeChainMeta(meta)),
      rollbackTarget: (chainId, block) => retrying("rollbackTarget", storage.rollbackTarget(chainId, block)),
      readRollbackDiff: (target) => retrying("readRollbackDiff", storage.readRollbackDiff(target)),
      storedBlockHashes: (chainId, from) => retrying("storedBlockHashes", storage.storedBlockHashes(chainId, from)),
      loadAddresses: (chainId) => retrying("loadAddresses", storage.loadAddresses(chainId)),
      pruneHistory: (safe) => retrying("pruneHistory", storage.pruneHistory(safe)),
      status: retrying("status", storage.status),
      reset: retrying("reset", storage.reset)
    })
  })
)

// ---------------------------------------------------------------------------------------------------------------
// In-memory storage (implementation in internal/MemoryStorage.ts)

/** Test controls of the in-memory storage. */
export class MemoryStorage extends Context.Service<MemoryStorage, {
  /** Writes wait until `release` (a write in flight stays in flight). */
  readonly hold: Effect.Effect<void>
  readonly release: Effect.Effect<void>
  /** Every later write fails with this error (undefined: writes succeed again). */
  readonly failWrites: (error: StorageError | undefined) => Effect.Effect<void>
  /** Writes attempted so far, in order, and how many are running now (at most one, by design). */
  readonly writes: Effect.Effect<ReadonlyArray<WritePlan>>
  /** Waits until at least `n` writes have started. */
  readonly awaitWrites: (n: number) => Effect.Effect<void>
  readonly writesInFlight: Effect.Effect<number>
  readonly maxWritesInFlight: Effect.Effect<number>
  /** Calls per storage operation, e.g. `loadByIds:Account`. */
  readonly calls: Effect.Effect<ReadonlyMap<string, number>>
  /** A committed entity table's rows by id. */
  readonly rows: (entity: string) => Effect.Effect<ReadonlyMap<string, unknown>>
  readonly effectRows: (effect: string) => Effect.Effect<ReadonlyMap<string, EffectRow>>
  /** History steps of an entity as written: id, checkpoint, value (undefined for a delete). */
  readonly history: (entity: string) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly checkpointId: bigint; readonly value: unknown }>>
}>()("chainstore/MemoryStorage") {}

/** Storage held in memory (for tests and users' handler tests), with its test controls. */
export const layerMemory: Layer.Layer<Storage | MemoryStorage> = Layer.effectContext(
  Effect.map(InMemory.make, ({ control, storage }) =>
    Context.make(Storage, Storage.of(storage)).pipe(Context.add(MemoryStorage, MemoryStorage.of(control))))
)
