/**
 * StoreState: everything the Store holds, as pure data and functions taking `self` first — the entity and effect
 * tables, the processed and committed frontiers, the queue of processed-but-unwritten batches (drained as runs
 * that share isInReorgThreshold), the snapshot of a write, chain metadata and a staged rollback. No services:
 * the Store service is a thin holder of one of these, and tests drive it directly.
 */
import * as Batch from "../Batch.js"
import * as Change from "../Change.js"
import type * as ExternalEffect from "../ExternalEffect.js"
import type { Indexer } from "../Indexer.js"
import type { ChainMeta, EffectRow, ResumeState, Rollback, RollbackDiff, WritePlan } from "../Storage.js"
import * as InMemoryTable from "./InMemoryTable.js"

export interface EffectTable {
  readonly def: ExternalEffect.Any
  readonly table: InMemoryTable.InMemoryTable<unknown>
}

export interface Counts {
  readonly entityChanges: number
  readonly effectEntries: number
  readonly queuedItems: number
  readonly total: number
}

export interface StoreState {
  /** Durably written up to here; eviction keys off it. */
  committed: bigint
  /** Handlers ran up to here; new checkpoint ids continue from it. */
  processed: bigint
  /** Superseded steps stamped from here on are dropped (see `beginBatch`). */
  dropFrom: bigint | undefined
  readonly queue: Array<Batch.Batch>
  queuedItems: number
  rollback: Rollback | undefined
  /** The write taken and not yet committed (still set after a failed write: that commit never comes). */
  writing: WritePlan | undefined
  /** Chain progress as of the rollback target: written with the rollback, so a crash after it resumes there. */
  rollbackProgress: ReadonlyArray<Batch.ChainProgress>
  readonly entities: ReadonlyMap<string, InMemoryTable.InMemoryTable<unknown>>
  readonly effects: ReadonlyMap<string, EffectTable>
  /** Tables whose every stored row is in memory: a miss there is a miss in storage (see `isComplete`). */
  readonly complete: Set<string>
  readonly chainMeta: Map<number, ChainMeta>
  chainMetaDirty: boolean
  readonly committedBlocks: Map<number, number>
  /** What the entities touched at `undo.checkpointId` held before it, so that checkpoint's changes can be undone. */
  readonly undo: Undo
}

/** Parallel arrays, one entry per id first touched at the checkpoint (no allocation per entry on the hot path). */
interface Undo {
  checkpointId: bigint
  readonly tables: Array<InMemoryTable.InMemoryTable<unknown>>
  readonly ids: Array<string>
  readonly prev: Array<Change.Change<unknown> | undefined>
}

export const make = (indexer: Indexer, resume: ResumeState): StoreState => {
  const entities = new Map<string, InMemoryTable.InMemoryTable<unknown>>()
  for (const entity of indexer.entities) entities.set(entity.name, InMemoryTable.make())
  const effects = new Map<string, EffectTable>()
  for (const def of indexer.effects) effects.set(def.name, { def, table: InMemoryTable.make() })
  return {
    committed: resume.committedCheckpointId,
    processed: resume.committedCheckpointId,
    dropFrom: undefined,
    queue: [],
    queuedItems: 0,
    rollback: undefined,
    writing: undefined,
    rollbackProgress: [],
    entities,
    effects,
    // Nothing was ever committed: storage is empty, so memory starts out complete.
    complete: new Set(resume.committedCheckpointId === 0n ? [...entities.keys(), ...effects.keys()] : []),
    chainMeta: new Map(),
    chainMetaDirty: false,
    committedBlocks: new Map(resume.chains.map((c) => [c.chainId, c.progressBlock])),
    undo: { checkpointId: -1n, tables: [], ids: [], prev: [] }
  }
}

export const entityTable = (self: StoreState, name: string): InMemoryTable.InMemoryTable<unknown> => {
  const table = self.entities.get(name)
  if (table === undefined) throw new Error(`unknown entity ${name}`) // unreachable: names come from the validated indexer
  return table
}

export const effectTable = (self: StoreState, name: string): EffectTable => {
  const table = self.effects.get(name)
  if (table === undefined) throw new Error(`unknown effect ${name}`) // unreachable: ctx.effect checks first
  return table
}

/**
 * A batch's handlers are about to run. Outside the reorg window its superseded steps need no history, and the
 * batch is written whole in one write, so steps it supersedes itself are dropped, not kept.
 */
export const beginBatch = (self: StoreState, batch: Batch.Batch): void => {
  self.dropFrom = batch.isInReorgThreshold ? undefined : batch.checkpointIds[0]
}

export const setEntity = (self: StoreState, entity: string, change: Change.Change<unknown>): void => {
  const table = entityTable(self, entity)
  const prev = InMemoryTable.set(table, change, self.committed, self.dropFrom)
  // First touch of this id at this checkpoint: remember what it held.
  if (prev === undefined || prev.checkpointId !== change.checkpointId) {
    const undo = self.undo
    if (undo.checkpointId !== change.checkpointId) {
      undo.checkpointId = change.checkpointId
      undo.tables.length = undo.ids.length = undo.prev.length = 0
    }
    undo.tables.push(table)
    undo.ids.push(change.entityId)
    undo.prev.push(prev)
  }
}

/**
 * Undoes the entity changes of the checkpoint being processed (the last one that changed entities), so its block
 * can be handled again from its start; effect outputs stay, they are still valid.
 */
export const undoCheckpoint = (self: StoreState, checkpointId: bigint): void => {
  const undo = self.undo
  if (undo.checkpointId !== checkpointId) return
  for (let i = undo.ids.length - 1; i >= 0; i--) InMemoryTable.restore(undo.tables[i]!, undo.ids[i]!, undo.prev[i])
  undo.tables.length = undo.ids.length = undo.prev.length = 0
}

export const setEffectOutput = (self: StoreState, effect: string, key: string, output: unknown, checkpointId: bigint): void => {
  InMemoryTable.set(effectTable(self, effect).table, Change.set(key, output, checkpointId), self.committed)
}

/** Appends a processed batch and advances the processed frontier. */
export const enqueue = (self: StoreState, batch: Batch.Batch): void => {
  self.queue.push(batch)
  self.queuedItems += batch.items.length
  const last = Batch.lastCheckpointId(batch)
  if (last !== undefined && last > self.processed) self.processed = last
}

/** Batches queued or a rollback staged: work a write of its own must make durable (chain metadata aside). */
export const hasPendingBatches = (self: StoreState): boolean => self.queue.length > 0 || self.rollback !== undefined

/** Takes the leading run of queued batches that share isInReorgThreshold, merged; the rest stay queued. */
export const drainRun = (self: StoreState): Batch.Batch | undefined => {
  if (self.queue.length === 0) return undefined
  const inThreshold = self.queue[0]!.isInReorgThreshold
  let n = 0
  while (n < self.queue.length && self.queue[n]!.isInReorgThreshold === inThreshold) n++
  const run = self.queue.splice(0, n)
  for (const b of run) self.queuedItems -= b.items.length
  return Batch.merge(run)
}

/**
 * The next write: the staged rollback (if any) and the leading run of batches, with the entity and effect changes
 * stamped committed < checkpoint ≤ the run's last checkpoint (later ones stay for the next write; every entry stays
 * readable). Undefined when only chain metadata is pending.
 */
export const takeWrite = (self: StoreState): WritePlan | undefined => {
  const staged = self.rollback
  const run = drainRun(self)
  if (run === undefined && staged === undefined) return undefined
  const batch = staged === undefined ? run! :
    Batch.merge([{ ...Batch.empty, isInReorgThreshold: run?.isInReorgThreshold ?? true, progress: self.rollbackProgress }, ...(run === undefined ? [] : [run])])
  self.rollback = undefined
  self.rollbackProgress = []
  let upTo = Batch.lastCheckpointId(batch) ?? self.committed
  if (staged !== undefined && staged.diffCheckpointId > upTo) upTo = staged.diffCheckpointId
  self.writing = {
    rollback: staged,
    batch,
    entities: snapshotEntities(self, upTo),
    effects: snapshotEffects(self, upTo),
    chainMeta: takeChainMeta(self),
    committedCheckpointId: upTo
  }
  return self.writing
}

const snapshotEntities = (self: StoreState, upTo: bigint): WritePlan["entities"] => {
  const out: Array<WritePlan["entities"][number]> = []
  for (const [entity, table] of self.entities) {
    const changes = InMemoryTable.snapshotChanges(table, self.committed, upTo)
    if (changes.length > 0) out.push({ entity, changes })
  }
  return out
}

const snapshotEffects = (self: StoreState, upTo: bigint): WritePlan["effects"] => {
  const out: Array<WritePlan["effects"][number]> = []
  for (const [name, { def, table }] of self.effects) {
    // Snapshot memory-only effects too (and drop the result): it is what releases their dirty ids.
    const changes = InMemoryTable.snapshotChanges(table, self.committed, upTo)
    if (!def.cache) continue
    const rows: Array<EffectRow> = []
    for (const change of changes) {
      if (change._tag === "Set") rows.push({ key: change.entityId, output: def.encodeOutput(change.entity), checkpointId: change.checkpointId })
    }
    if (rows.length > 0) out.push({ effect: name, rows })
  }
  return out
}

/** Takes dirty chain metadata for a write. */
export const takeChainMeta = (self: StoreState): ReadonlyArray<ChainMeta> | undefined => {
  if (!self.chainMetaDirty) return undefined
  self.chainMetaDirty = false
  return [...self.chainMeta.values()]
}

/** Records chain metadata; dirty only when something changed. */
export const setChainMeta = (self: StoreState, meta: ReadonlyArray<ChainMeta>): void => {
  for (const m of meta) {
    const prev = self.chainMeta.get(m.chainId)
    if (
      prev === undefined || prev.sourceBlock !== m.sourceBlock || prev.bufferBlock !== m.bufferBlock ||
      prev.firstEventBlock !== m.firstEventBlock || prev.readyAt?.getTime() !== m.readyAt?.getTime()
    ) {
      self.chainMeta.set(m.chainId, m)
      self.chainMetaDirty = true
    }
  }
}

/** Advances the committed frontier after a successful write of `plan`. */
export const commit = (self: StoreState, plan: WritePlan): void => {
  if (self.writing === plan) self.writing = undefined
  if (plan.committedCheckpointId > self.committed) self.committed = plan.committedCheckpointId
  for (const p of plan.batch.progress) self.committedBlocks.set(p.chainId, p.progressBlock)
}

export const counts = (self: StoreState): Counts => {
  let entityChanges = 0
  for (const table of self.entities.values()) entityChanges += InMemoryTable.changesCount(table)
  let effectEntries = 0
  for (const { table } of self.effects.values()) effectEntries += InMemoryTable.changesCount(table)
  return { entityChanges, effectEntries, queuedItems: self.queuedItems, total: entityChanges + effectEntries + self.queuedItems }
}

/** Evicts committed entries (db-loaded ones too unless kept); returns how many went. */
export const dropCommitted = (self: StoreState, keepLoadedFromDb: boolean): number => {
  let dropped = 0
  const drop = (name: string, table: InMemoryTable.InMemoryTable<unknown>) => {
    const n = InMemoryTable.dropCommitted(table, self.committed, keepLoadedFromDb)
    if (n > 0) self.complete.delete(name)
    dropped += n
  }
  for (const [name, table] of self.entities) drop(name, table)
  for (const [name, { table }] of self.effects) drop(name, table)
  return dropped
}

/**
 * Drops entries after the target (effects only when reorg-sensitive), stages the diff stamped committed+1 and
 * resets the processed frontier to it. Call with nothing queued and no write in flight.
 */
export const stageRollback = (
  self: StoreState,
  targetCheckpointId: bigint,
  diff: RollbackDiff,
  progress: ReadonlyArray<Batch.ChainProgress>
): void => {
  self.complete.clear()
  const diffCheckpointId = self.committed + 1n
  for (const table of self.entities.values()) InMemoryTable.dropAfter(table, targetCheckpointId)
  for (const { def, table } of self.effects.values()) if (def.reorgSensitive) InMemoryTable.dropAfter(table, targetCheckpointId)
  for (const { changes, entity } of diff.entities) {
    const table = self.entities.get(entity)
    if (table === undefined) continue
    for (const change of changes) {
      const stamped = change._tag === "Set" ? Change.set(change.entityId, change.entity, diffCheckpointId) : Change.del(change.entityId, diffCheckpointId)
      InMemoryTable.set(table, stamped, self.committed)
    }
  }
  self.rollback = { targetCheckpointId, diffCheckpointId }
  self.rollbackProgress = progress
  self.processed = diffCheckpointId
}
