/**
 * Store: the in-memory state between handlers and storage — entity and effect tables, the processed and
 * committed frontiers, the queue of processed-but-unwritten batches, chain metadata and a staged rollback.
 * A thin holder of the pure `StoreState`, initialised from what storage has committed.
 *
 * Per-event operations are plain synchronous methods (the hot path).
 */
import { Context, Effect, Layer } from "effect"
import type * as Batch from "./Batch.js"
import type * as Change from "./Change.js"
import type { Operator } from "./Entity.js"
import type { BuildChangedError, StorageError } from "./Errors.js"
import type * as ExternalEffect from "./ExternalEffect.js"
import type { Indexer } from "./Indexer.js"
import * as InMemoryTable from "./internal/InMemoryTable.js"
import * as State from "./internal/StoreState.js"
import { Storage } from "./Storage.js"
import type { ChainMeta, ChainState, RollbackDiff, WritePlan } from "./Storage.js"

export type Counts = State.Counts

export class Store extends Context.Service<Store, {
  readonly indexer: Indexer
  /** Chain state as committed when the run started. */
  readonly resumedChains: ReadonlyArray<ChainState>

  // Frontiers
  readonly committed: () => bigint
  readonly processed: () => bigint

  /** A batch's handlers are about to run (outside the reorg window, steps it supersedes itself are dropped). */
  readonly beginBatch: (batch: Batch.Batch) => void

  /**
   * Memory holds every stored row of this table (or effect): true from a fresh database until its first eviction
   * or rollback. Then an id missing from memory is missing from storage too, and no read is needed.
   */
  readonly isComplete: (table: string) => boolean

  // Entities (hot path)
  readonly getEntity: (entity: string, id: string) => Change.Change<unknown> | undefined
  readonly setEntity: (entity: string, change: Change.Change<unknown>) => void
  readonly initEntityFromDb: (entity: string, id: string, value: unknown) => void
  /** Undoes the entity changes of the checkpoint being processed (its block is handled again). */
  readonly undoCheckpoint: (checkpointId: bigint) => void
  readonly lookup: (entity: string, field: string, op: Operator, value: unknown) => ReadonlyArray<string> | undefined
  readonly addLookup: (entity: string, field: string, op: Operator, value: unknown) => ReadonlyArray<string>

  // Effect outputs (hot path)
  readonly effect: (name: string) => ExternalEffect.Any
  readonly getEffectOutput: (effect: string, key: string) => Change.Change<unknown> | undefined
  readonly setEffectOutput: (effect: string, key: string, output: unknown, checkpointId: bigint) => void
  readonly initEffectFromDb: (effect: string, key: string, output: unknown) => void

  // Queue and writes
  /** Appends a processed batch and advances the processed frontier. */
  readonly enqueue: (batch: Batch.Batch) => void
  readonly queuedBatches: () => number
  /** Batches queued or a rollback staged. */
  readonly hasPendingBatches: () => boolean
  /** A write was taken and is not committed yet. */
  readonly writeInFlight: () => boolean
  /** Dirty chain metadata waits for a write. */
  readonly hasDirtyChainMeta: () => boolean
  /** The next write (staged rollback + leading run of batches + their changes); undefined when none is pending. */
  readonly takeWrite: () => WritePlan | undefined
  /** Takes dirty chain metadata for a standalone write. */
  readonly takeChainMeta: () => ReadonlyArray<ChainMeta> | undefined
  /** Advances the committed frontier after `plan` was written. */
  readonly commit: (plan: WritePlan) => void
  /** Per chain, the last block durably written. */
  readonly committedBlocks: () => ReadonlyMap<number, number>
  readonly setChainMeta: (meta: ReadonlyArray<ChainMeta>) => void

  // Capacity
  readonly counts: () => Counts
  /** Evicts committed entries (db-loaded ones too unless kept); returns how many went. */
  readonly dropCommitted: (keepLoadedFromDb: boolean) => number

  // Rollback
  /**
   * Drops entries after the target, stages the diff stamped committed+1 and resets the processed frontier
   * to it. Call with nothing queued and no write in flight (after a flush).
   */
  readonly stageRollback: (targetCheckpointId: bigint, diff: RollbackDiff, progress: ReadonlyArray<Batch.ChainProgress>) => void
}>()("chainstore/Store") {}

export const make = Effect.fn("Store.make")(function*(indexer: Indexer) {
  const storage = yield* Storage
  const resume = yield* storage.initialize(indexer)
  const state = State.make(indexer, resume)
  return Store.of({
    indexer,
    resumedChains: resume.chains,
    committed: () => state.committed,
    processed: () => state.processed,
    beginBatch: (batch) => State.beginBatch(state, batch),
    isComplete: (table) => state.complete.has(table),

    getEntity: (entity, id) => InMemoryTable.get(State.entityTable(state, entity), id),
    setEntity: (entity, change) => State.setEntity(state, entity, change),
    initEntityFromDb: (entity, id, value) => InMemoryTable.initFromDb(State.entityTable(state, entity), id, value),
    undoCheckpoint: (checkpointId) => State.undoCheckpoint(state, checkpointId),
    lookup: (entity, field, op, value) => InMemoryTable.lookup(State.entityTable(state, entity), field, op, value),
    addLookup: (entity, field, op, value) => InMemoryTable.addLookup(State.entityTable(state, entity), field, op, value),

    effect: (name) => State.effectTable(state, name).def,
    getEffectOutput: (effect, key) => InMemoryTable.get(State.effectTable(state, effect).table, key),
    setEffectOutput: (effect, key, output, checkpointId) => State.setEffectOutput(state, effect, key, output, checkpointId),
    initEffectFromDb: (effect, key, output) => InMemoryTable.initFromDb(State.effectTable(state, effect).table, key, output),

    enqueue: (batch) => State.enqueue(state, batch),
    queuedBatches: () => state.queue.length,
    hasPendingBatches: () => State.hasPendingBatches(state),
    writeInFlight: () => state.writing !== undefined,
    hasDirtyChainMeta: () => state.chainMetaDirty,
    takeWrite: () => State.takeWrite(state),
    takeChainMeta: () => State.takeChainMeta(state),
    commit: (plan) => State.commit(state, plan),
    committedBlocks: () => state.committedBlocks,
    setChainMeta: (meta) => State.setChainMeta(state, meta),

    counts: () => State.counts(state),
    dropCommitted: (keepLoadedFromDb) => State.dropCommitted(state, keepLoadedFromDb),
    stageRollback: (target, diff, progress) => State.stageRollback(state, target, diff, progress)
  })
})

/** The store for an indexer, initialised from what storage has committed. */
export const layer = (indexer: Indexer): Layer.Layer<Store, StorageError | BuildChangedError, Storage> => Layer.effect(Store, make(indexer))
