/**
 * Store: the in-memory state between handlers and storage — entity and effect tables, the processed and
 * committed frontiers, the queue of processed-but-unwritten batches, chain metadata and a staged rollback.
 *
 * Per-event operations are plain synchronous methods (the hot path); everything else is an Effect.
 */
import { Context, Effect, Layer } from "effect"
import * as Batch from "./Batch.js"
import * as Change from "./Change.js"
import type { StorageError } from "./Errors.js"
import type * as ExternalEffect from "./ExternalEffect.js"
import type { Indexer } from "./Indexer.js"
import * as InMemoryTable from "./InMemoryTable.js"
import { Storage } from "./Storage.js"
import type { ChainMeta, ChainState, EffectRow, RollbackDiff, WritePlan } from "./Storage.js"

export interface Counts {
  readonly entityChanges: number
  readonly effectEntries: number
  readonly queuedItems: number
  readonly total: number
}

export class Store extends Context.Service<Store, {
  readonly indexer: Indexer
  /** Chain state as committed when the run started. */
  readonly resumedChains: ReadonlyArray<ChainState>

  // Frontiers
  readonly committed: () => bigint
  readonly processed: () => bigint
  readonly hasFailedWrite: () => boolean
  readonly markWriteFailed: () => void

  /**
   * A batch's handlers are about to run. Outside the reorg window its superseded steps need no history, and the
   * batch is written whole in one write, so steps it supersedes itself are dropped, not kept.
   */
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
  readonly lookup: (entity: string, field: string, op: InMemoryTable.Operator, value: unknown) => ReadonlyArray<string> | undefined
  readonly addLookup: (entity: string, field: string, op: InMemoryTable.Operator, value: unknown) => ReadonlyArray<string>

  // Effect outputs (hot path)
  readonly effect: (name: string) => ExternalEffect.Any
  readonly getEffectOutput: (effect: string, key: string) => Change.Change<unknown> | undefined
  readonly setEffectOutput: (effect: string, key: string, output: unknown, checkpointId: bigint) => void
  readonly initEffectFromDb: (effect: string, key: string, output: unknown) => void

  // Queue and writes
  /** Appends a processed batch and advances the processed frontier. */
  readonly enqueue: (batch: Batch.Batch) => void
  readonly queuedBatches: () => number
  /** A write is pending: batches queued, a rollback staged, or dirty chain metadata. */
  readonly hasPendingWrite: () => boolean
  /**
   * Drains the leading run of batches sharing isInReorgThreshold and snapshots the changes up to its last
   * checkpoint; undefined when only chain metadata is pending.
   */
  readonly takeWrite: () => WritePlan | undefined
  /** Takes dirty chain metadata for a standalone write. */
  readonly takeChainMeta: () => ReadonlyArray<ChainMeta> | undefined
  /** Advances the committed frontier after a successful write of `progress`. */
  readonly setCommitted: (checkpointId: bigint, progress: ReadonlyArray<Batch.ChainProgress>) => void
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

interface EffectTable {
  readonly def: ExternalEffect.Any
  readonly table: InMemoryTable.InMemoryTable<unknown>
}

export const make = Effect.fn("Store.make")(function*(indexer: Indexer) {
  const storage = yield* Storage
  const resume = yield* storage.initialize(indexer)
  let committed = resume.committedCheckpointId
  let processed = committed
  // Superseded steps stamped from here on are dropped (see beginBatch).
  let dropFrom: bigint | undefined
  let failed = false
  let rollback: { readonly targetCheckpointId: bigint; readonly diffCheckpointId: bigint } | undefined
  // Chain progress as of the rollback target: written with the rollback, so a crash after it resumes there.
  let rollbackProgress: ReadonlyArray<Batch.ChainProgress> = []
  const queue: Array<Batch.Batch> = []
  let queuedItems = 0
  const entities = new Map<string, InMemoryTable.InMemoryTable<unknown>>()
  for (const entity of indexer.entities) entities.set(entity.name, InMemoryTable.make())
  const effects = new Map<string, EffectTable>()
  for (const def of indexer.effects) effects.set(def.name, { def, table: InMemoryTable.make() })
  // Nothing was ever committed: storage is empty, so memory starts out complete (see isComplete).
  const complete = new Set<string>(resume.committedCheckpointId === 0n ? [...entities.keys(), ...effects.keys()] : [])
  const chainMeta = new Map<number, ChainMeta>()
  const committedBlocks = new Map(resume.chains.map((c) => [c.chainId, c.progressBlock]))
  let chainMetaDirty = false

  const entityTable = (name: string) => {
    const table = entities.get(name)
    if (table === undefined) throw new Error(`unknown entity ${name}`) // unreachable: names come from the validated indexer
    return table
  }
  const effectTable = (name: string) => {
    const table = effects.get(name)
    if (table === undefined) throw new Error(`unknown effect ${name}`) // unreachable: ctx.effect checks first
    return table
  }

  const drainRun = (): Batch.Batch | undefined => {
    if (queue.length === 0) return undefined
    const inThreshold = queue[0]!.isInReorgThreshold
    let n = 0
    while (n < queue.length && queue[n]!.isInReorgThreshold === inThreshold) n++
    const run = queue.splice(0, n)
    for (const b of run) queuedItems -= b.items.length
    return Batch.merge(run)
  }

  const takeChainMeta = () => {
    if (!chainMetaDirty) return undefined
    chainMetaDirty = false
    return [...chainMeta.values()]
  }

  return Store.of({
    indexer,
    resumedChains: resume.chains,
    committed: () => committed,
    processed: () => processed,
    hasFailedWrite: () => failed,
    markWriteFailed: () => {
      failed = true
    },

    getEntity: (entity, id) => InMemoryTable.get(entityTable(entity), id),
    isComplete: (table) => complete.has(table),
    beginBatch: (batch) => {
      dropFrom = batch.isInReorgThreshold ? undefined : batch.checkpointIds[0]
    },
    setEntity: (entity, change) => InMemoryTable.set(entityTable(entity), change, committed, dropFrom),
    initEntityFromDb: (entity, id, value) => InMemoryTable.initFromDb(entityTable(entity), id, value),
    lookup: (entity, field, op, value) => InMemoryTable.lookup(entityTable(entity), field, op, value),
    addLookup: (entity, field, op, value) => InMemoryTable.addLookup(entityTable(entity), field, op, value),

    effect: (name) => effectTable(name).def,
    getEffectOutput: (effect, key) => InMemoryTable.get(effectTable(effect).table, key),
    setEffectOutput: (effect, key, output, checkpointId) =>
      InMemoryTable.set(effectTable(effect).table, Change.set(key, output, checkpointId), committed),
    initEffectFromDb: (effect, key, output) => InMemoryTable.initFromDb(effectTable(effect).table, key, output),

    enqueue: (batch) => {
      queue.push(batch)
      queuedItems += batch.items.length
      const last = Batch.lastCheckpointId(batch)
      if (last !== undefined && last > processed) processed = last
    },
    queuedBatches: () => queue.length,
    hasPendingWrite: () => queue.length > 0 || rollback !== undefined || chainMetaDirty,
    takeWrite: () => {
      const staged = rollback
      const run = drainRun()
      if (run === undefined && staged === undefined) return undefined
      const batch = staged === undefined ? run! :
        Batch.merge([{ ...Batch.empty, isInReorgThreshold: run?.isInReorgThreshold ?? true, progress: rollbackProgress }, ...(run === undefined ? [] : [run])])
      rollback = undefined
      rollbackProgress = []
      let upTo = Batch.lastCheckpointId(batch) ?? committed
      if (staged !== undefined && staged.diffCheckpointId > upTo) upTo = staged.diffCheckpointId
      const entityChanges: Array<WritePlan["entities"][number]> = []
      for (const [entity, table] of entities) {
        const changes = InMemoryTable.snapshotChanges(table, committed, upTo)
        if (changes.length > 0) entityChanges.push({ entity, changes })
      }
      const effectRows: Array<WritePlan["effects"][number]> = []
      for (const [name, { def, table }] of effects) {
        // Snapshot memory-only effects too (and drop the result): it is what releases their dirty ids.
        const changes = InMemoryTable.snapshotChanges(table, committed, upTo)
        if (!def.cache) continue
        const rows: Array<EffectRow> = []
        for (const change of changes) {
          if (change._tag === "Set") rows.push({ key: change.entityId, output: def.encodeOutput(change.entity), checkpointId: change.checkpointId })
        }
        if (rows.length > 0) effectRows.push({ effect: name, rows })
      }
      return {
        rollback: staged,
        batch,
        entities: entityChanges,
        effects: effectRows,
        chainMeta: takeChainMeta(),
        committedCheckpointId: upTo
      }
    },
    takeChainMeta,
    setCommitted: (checkpointId, progress) => {
      if (checkpointId > committed) committed = checkpointId
      for (const p of progress) committedBlocks.set(p.chainId, p.progressBlock)
    },
    committedBlocks: () => committedBlocks,
    setChainMeta: (meta) => {
      for (const m of meta) {
        const prev = chainMeta.get(m.chainId)
        if (
          prev === undefined || prev.sourceBlock !== m.sourceBlock || prev.bufferBlock !== m.bufferBlock ||
          prev.firstEventBlock !== m.firstEventBlock || prev.readyAt?.getTime() !== m.readyAt?.getTime()
        ) {
          chainMeta.set(m.chainId, m)
          chainMetaDirty = true
        }
      }
    },

    counts: () => {
      let entityChanges = 0
      for (const table of entities.values()) entityChanges += InMemoryTable.changesCount(table)
      let effectEntries = 0
      for (const { table } of effects.values()) effectEntries += InMemoryTable.changesCount(table)
      return { entityChanges, effectEntries, queuedItems, total: entityChanges + effectEntries + queuedItems }
    },
    dropCommitted: (keepLoadedFromDb) => {
      let dropped = 0
      const drop = (name: string, table: InMemoryTable.InMemoryTable<unknown>) => {
        const n = InMemoryTable.dropCommitted(table, committed, keepLoadedFromDb)
        if (n > 0) complete.delete(name)
        dropped += n
      }
      for (const [name, table] of entities) drop(name, table)
      for (const [name, { table }] of effects) drop(name, table)
      return dropped
    },

    stageRollback: (targetCheckpointId, diff, progress) => {
      complete.clear()
      const diffCheckpointId = committed + 1n
      for (const table of entities.values()) InMemoryTable.dropAfter(table, targetCheckpointId)
      for (const { def, table } of effects.values()) if (def.reorgSensitive) InMemoryTable.dropAfter(table, targetCheckpointId)
      for (const { changes, entity } of diff.entities) {
        const table = entities.get(entity)
        if (table === undefined) continue
        for (const change of changes) {
          InMemoryTable.set(
            table,
            change._tag === "Set" ? Change.set(change.entityId, change.entity, diffCheckpointId) : Change.del(change.entityId, diffCheckpointId),
            committed
          )
        }
      }
      rollback = { targetCheckpointId, diffCheckpointId }
      rollbackProgress = progress
      processed = diffCheckpointId
    }
  })
})

/** The store for an indexer, initialised from what storage has committed. */
export const layer = (indexer: Indexer): Layer.Layer<Store, StorageError, Storage> => Layer.effect(Store, make(indexer))
