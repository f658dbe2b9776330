/**
 * Storage: the port to durable state (design.md §2–3), and an in-memory implementation for tests that can be
 * told to hold or fail writes. The Postgres/PGlite implementation lives in @chainstore/persistence.
 */
import { Context, Deferred, Effect, Layer, Schedule, Schema } from "effect"
import { ChainstoreConfig } from "./Config.js"
import type * as Batch from "./Batch.js"
import type * as Change from "./Change.js"
import * as Checkpoint from "./Checkpoint.js"
import { StorageError } from "./Errors.js"
import type { Indexer } from "./Indexer.js"
import type { Operator } from "./InMemoryTable.js"
import type { Block } from "./Source.js"

export interface ChainState {
  readonly chainId: number
  readonly startBlock: number
  readonly endBlock: number | undefined
  /** Last block fully processed and committed; startBlock − 1 before any. */
  readonly progressBlock: number
  readonly sourceBlock: number
  readonly eventsProcessed: number
  readonly firstEventBlock: number | undefined
  readonly readyAt: Date | undefined
  readonly reorgWindow: number
}

export interface ResumeState {
  readonly committedCheckpointId: bigint
  readonly chains: ReadonlyArray<ChainState>
}

export interface EffectRow {
  readonly key: string
  readonly output: Schema.Json
  readonly checkpointId: bigint
}

export interface Rollback {
  readonly targetCheckpointId: bigint
  /** Checkpoint stamping the diff's changes: entity tables only, never history. */
  readonly diffCheckpointId: bigint
}

export interface ChainMeta {
  readonly chainId: number
  readonly sourceBlock: number
  readonly bufferBlock: number
  readonly firstEventBlock: number | undefined
  readonly readyAt: Date | undefined
}

/** Everything one write makes durable, in one transaction. */
export interface WritePlan {
  readonly rollback: Rollback | undefined
  /** The drained run of batches, merged: items, checkpoints, progress, registrations, isInReorgThreshold. */
  readonly batch: Batch.Batch
  /** Per entity, every step with committed < checkpoint ≤ the run's last (oldest first). */
  readonly entities: ReadonlyArray<{ readonly entity: string; readonly changes: ReadonlyArray<Change.Change<unknown>> }>
  readonly effects: ReadonlyArray<{ readonly effect: string; readonly rows: ReadonlyArray<EffectRow> }>
  readonly chainMeta: ReadonlyArray<ChainMeta> | undefined
  /** The committed frontier after this write. */
  readonly committedCheckpointId: bigint
}

export interface RollbackDiff {
  /** Per entity: restored rows (Set) and rows created after the target (Delete); checkpoint ids unset (0). */
  readonly entities: ReadonlyArray<{ readonly entity: string; readonly changes: ReadonlyArray<Change.Change<unknown>> }>
  /** Per chain with checkpoints after the target: progress as of the target. */
  readonly chains: ReadonlyArray<{ readonly chainId: number; readonly progressBlock: number; readonly eventsProcessedDiff: number }>
}

export interface Status {
  readonly committedCheckpointId: bigint
  readonly chains: ReadonlyArray<ChainState>
  readonly entityCounts: ReadonlyArray<{ readonly entity: string; readonly rows: number }>
  readonly effectCounts: ReadonlyArray<{ readonly effect: string; readonly rows: number }>
}

export class Storage extends Context.Service<Storage, {
  /** Creates or checks the tables for an indexer and returns what was committed before. */
  readonly initialize: (indexer: Indexer) => Effect.Effect<ResumeState, StorageError>
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
    const retrying = <A>(what: string, effect: Effect.Effect<A, StorageError>): Effect.Effect<A, StorageError> =>
      effect.pipe(
        Effect.tapError((e) => (e.isRetryable ? Effect.logWarning(`Storage ${what} failed (${e.message}); trying again`) : Effect.void)),
        Effect.retry({
          schedule: Schedule.exponential(storageRetryBase).pipe(Schedule.jittered),
          times: Math.max(0, storageAttempts - 1),
          while: (e: StorageError) => e.isRetryable
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
// In-memory storage

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

interface MemoryState {
  committed: bigint
  entities: Map<string, Map<string, unknown>>
  history: Map<string, Array<{ id: string; checkpointId: bigint; value: unknown }>>
  effects: Map<string, Map<string, EffectRow>>
  checkpoints: Array<Checkpoint.Checkpoint>
  chains: Map<number, ChainState>
  addresses: Array<Batch.Registration>
}

const makeMemory = Effect.gen(function*() {
  let indexer: Indexer | undefined
  let state: MemoryState = {
    committed: Checkpoint.initial,
    entities: new Map(),
    history: new Map(),
    effects: new Map(),
    checkpoints: [],
    chains: new Map(),
    addresses: []
  }
  let gate: Deferred.Deferred<void> | undefined
  let failure: StorageError | undefined
  const writes: Array<WritePlan> = []
  const writeWaiters: Array<{ readonly n: number; readonly deferred: Deferred.Deferred<void> }> = []
  let inFlight = 0
  let maxInFlight = 0
  const calls = new Map<string, number>()
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1)

  const table = (entity: string) => {
    let t = state.entities.get(entity)
    if (t === undefined) state.entities.set(entity, (t = new Map()))
    return t
  }
  const historyOf = (entity: string) => {
    let h = state.history.get(entity)
    if (h === undefined) state.history.set(entity, (h = []))
    return h
  }

  const apply = (plan: WritePlan) => {
    // Work on copies so a failure half way leaves nothing behind, as a transaction would.
    const next: MemoryState = {
      committed: state.committed,
      entities: new Map([...state.entities].map(([k, v]) => [k, new Map(v)])),
      history: new Map([...state.history].map(([k, v]) => [k, [...v]])),
      effects: new Map([...state.effects].map(([k, v]) => [k, new Map(v)])),
      checkpoints: [...state.checkpoints],
      chains: new Map(state.chains),
      addresses: [...state.addresses]
    }
    const prev = state
    state = next
    try {
      const { batch, rollback } = plan
      if (rollback !== undefined) {
        for (const [name, rows] of state.history) {
          state.history.set(name, rows.filter((r) => r.checkpointId <= rollback.targetCheckpointId))
        }
        state.checkpoints = state.checkpoints.filter((c) => c.id <= rollback.targetCheckpointId)
        state.addresses = state.addresses.filter((a) => a.checkpointId <= rollback.targetCheckpointId)
        for (const effect of indexer?.effects ?? []) {
          if (!effect.reorgSensitive) continue
          const rows = state.effects.get(effect.name)
          if (rows === undefined) continue
          for (const [key, row] of rows) if (row.checkpointId > rollback.targetCheckpointId) rows.delete(key)
        }
        // The diff lands on entity tables first, so a backfill below copies the restored rows.
        for (const { changes, entity } of plan.entities) {
          const rows = table(entity)
          for (const change of changes) {
            if (change.checkpointId !== rollback.diffCheckpointId) continue
            if (change._tag === "Set") rows.set(change.entityId, change.entity)
            else rows.delete(change.entityId)
          }
        }
      }
      for (const { changes, entity } of plan.entities) {
        const rows = table(entity)
        if (batch.isInReorgThreshold) {
          const history = historyOf(entity)
          const withHistory = new Set(history.map((h) => h.id))
          for (const change of changes) {
            if (change.checkpointId === rollback?.diffCheckpointId) continue
            if (!withHistory.has(change.entityId) && rows.has(change.entityId)) {
              history.push({ id: change.entityId, checkpointId: Checkpoint.initial, value: rows.get(change.entityId) })
            }
            withHistory.add(change.entityId)
            history.push({ id: change.entityId, checkpointId: change.checkpointId, value: change._tag === "Set" ? change.entity : undefined })
          }
        }
        const latest = new Map<string, Change.Change<unknown>>()
        for (const change of changes) {
          const seen = latest.get(change.entityId)
          if (seen === undefined || seen.checkpointId <= change.checkpointId) latest.set(change.entityId, change)
        }
        for (const change of latest.values()) {
          if (change._tag === "Set") rows.set(change.entityId, change.entity)
          else rows.delete(change.entityId)
        }
      }
      for (const r of batch.registrations) state.addresses.push(r)
      for (const { effect, rows } of plan.effects) {
        let t = state.effects.get(effect)
        if (t === undefined) state.effects.set(effect, (t = new Map()))
        for (const row of rows) t.set(row.key, row)
      }
      if (batch.isInReorgThreshold) {
        for (let i = 0; i < batch.checkpointIds.length; i++) {
          state.checkpoints.push({
            id: batch.checkpointIds[i]!,
            chainId: batch.checkpointChainIds[i]!,
            blockNumber: batch.checkpointBlockNumbers[i]!,
            blockHash: batch.checkpointBlockHashes[i]!,
            eventsProcessed: batch.checkpointEventsProcessed[i]!
          })
        }
      }
      for (const p of batch.progress) {
        const chain = state.chains.get(p.chainId)
        if (chain === undefined) continue
        state.chains.set(p.chainId, {
          ...chain,
          progressBlock: p.progressBlock,
          sourceBlock: p.sourceBlock,
          eventsProcessed: p.eventsProcessed,
          firstEventBlock: chain.firstEventBlock ?? p.firstEventBlock
        })
      }
      if (plan.chainMeta !== undefined) applyMeta(plan.chainMeta)
      state.committed = plan.committedCheckpointId
    } catch (cause) {
      state = prev
      throw cause
    }
  }

  const applyMeta = (meta: ReadonlyArray<ChainMeta>) => {
    for (const m of meta) {
      const chain = state.chains.get(m.chainId)
      if (chain === undefined) continue
      state.chains.set(m.chainId, {
        ...chain,
        sourceBlock: m.sourceBlock,
        firstEventBlock: chain.firstEventBlock ?? m.firstEventBlock,
        readyAt: chain.readyAt ?? m.readyAt
      })
    }
  }

  const storageError = (operation: string, cause: unknown) =>
    new StorageError({ operation, message: cause instanceof Error ? cause.message : String(cause), isRetryable: false, cause })

  const storage = Storage.of({
    initialize: (def) =>
      Effect.sync(() => {
        count("initialize")
        indexer = def
        for (const chain of def.chains) {
          if (state.chains.has(chain.id)) continue
          state.chains.set(chain.id, {
            chainId: chain.id,
            startBlock: chain.startBlock,
            endBlock: chain.endBlock,
            progressBlock: chain.startBlock - 1,
            sourceBlock: 0,
            eventsProcessed: 0,
            firstEventBlock: undefined,
            readyAt: undefined,
            reorgWindow: chain.reorgWindow ?? 200
          })
        }
        return { committedCheckpointId: state.committed, chains: [...state.chains.values()] }
      }),
    loadByIds: (entity, ids) =>
      Effect.sync(() => {
        count(`loadByIds:${entity}`)
        const rows = table(entity)
        const out: Array<unknown> = []
        for (const id of ids) {
          const row = rows.get(id)
          if (row !== undefined) out.push(row)
        }
        return out
      }),
    loadByField: (entity, field, op, value) =>
      Effect.sync(() => {
        count(`loadByField:${entity}`)
        const out: Array<unknown> = []
        for (const row of table(entity).values()) {
          const v = (row as Record<string, unknown>)[field] as string | number | bigint
          const x = value as string | number | bigint
          if (op === "eq" ? v === x : op === "gt" ? v > x : v < x) out.push(row)
        }
        return out
      }),
    loadEffectEntries: (effect, keys) =>
      Effect.sync(() => {
        count(`loadEffectEntries:${effect}`)
        const rows = state.effects.get(effect)
        const out: Array<{ key: string; output: unknown }> = []
        for (const key of keys) {
          const row = rows?.get(key)
          if (row !== undefined) out.push({ key, output: row.output })
        }
        return out
      }),
    writeBatch: (plan) =>
      Effect.gen(function*() {
        count("writeBatch")
        writes.push(plan)
        for (const waiter of writeWaiters) if (writes.length >= waiter.n) Deferred.doneUnsafe(waiter.deferred, Effect.void)
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        yield* Effect.gen(function*() {
          if (gate !== undefined) yield* Deferred.await(gate)
          if (failure !== undefined) return yield* failure
          yield* Effect.try({ try: () => apply(plan), catch: (cause) => storageError("writeBatch", cause) })
        }).pipe(Effect.ensuring(Effect.sync(() => inFlight--)))
      }),
    writeChainMeta: (meta) =>
      Effect.suspend(() => {
        count("writeChainMeta")
        if (failure !== undefined) return Effect.fail(failure)
        applyMeta(meta)
        return Effect.void
      }),
    rollbackTarget: (chainId, blockNumber) =>
      Effect.sync(() => {
        let target = Checkpoint.initial
        for (const c of state.checkpoints) {
          if (c.chainId === chainId && c.blockNumber <= blockNumber && c.id > target) target = c.id
        }
        return target
      }),
    readRollbackDiff: (target) =>
      Effect.sync(() => {
        const entities: Array<{ entity: string; changes: Array<Change.Change<unknown>> }> = []
        for (const [entity, history] of state.history) {
          const touched = new Set(history.filter((h) => h.checkpointId > target).map((h) => h.id))
          const changes: Array<Change.Change<unknown>> = []
          for (const id of touched) {
            let before: { value: unknown; checkpointId: bigint } | undefined
            for (const h of history) {
              if (h.id === id && h.checkpointId <= target && (before === undefined || h.checkpointId >= before.checkpointId)) before = h
            }
            changes.push(
              before?.value === undefined
                ? { _tag: "Delete", entityId: id, checkpointId: 0n }
                : { _tag: "Set", entityId: id, entity: before.value, checkpointId: 0n }
            )
          }
          if (changes.length > 0) entities.push({ entity, changes })
        }
        const chains = new Map<number, { chainId: number; progressBlock: number; eventsProcessedDiff: number }>()
        for (const c of state.checkpoints) {
          if (c.id <= target) continue
          const entry = chains.get(c.chainId) ?? { chainId: c.chainId, progressBlock: c.blockNumber - 1, eventsProcessedDiff: 0 }
          entry.progressBlock = Math.min(entry.progressBlock, c.blockNumber - 1)
          entry.eventsProcessedDiff += c.eventsProcessed
          chains.set(c.chainId, entry)
        }
        return { entities, chains: [...chains.values()] }
      }),
    storedBlockHashes: (chainId, fromBlock) =>
      Effect.sync(() =>
        state.checkpoints
          .filter((c) => c.chainId === chainId && c.blockNumber >= fromBlock)
          .map((c) => ({ number: c.blockNumber, hash: c.blockHash }))
      ),
    loadAddresses: (chainId) => Effect.sync(() => state.addresses.filter((a) => a.chainId === chainId)),
    pruneHistory: (safe) =>
      Effect.sync(() => {
        for (const [entity, rows] of state.history) {
          // Keep, per id, the newest step at or below the safe checkpoint: a rollback to it restores from there.
          const newestSafe = new Map<string, bigint>()
          for (const r of rows) {
            if (r.checkpointId <= safe && (newestSafe.get(r.id) ?? -1n) < r.checkpointId) newestSafe.set(r.id, r.checkpointId)
          }
          state.history.set(entity, rows.filter((r) => r.checkpointId > safe || newestSafe.get(r.id) === r.checkpointId))
        }
        state.checkpoints = state.checkpoints.filter((c) => c.id >= safe)
      }),
    status: Effect.sync(() => ({
      committedCheckpointId: state.committed,
      chains: [...state.chains.values()],
      entityCounts: [...state.entities].map(([entity, rows]) => ({ entity, rows: rows.size })),
      effectCounts: [...state.effects].map(([effect, rows]) => ({ effect, rows: rows.size }))
    })),
    reset: Effect.sync(() => {
      state = { committed: Checkpoint.initial, entities: new Map(), history: new Map(), effects: new Map(), checkpoints: [], chains: new Map(), addresses: [] }
    })
  })

  const control = MemoryStorage.of({
    hold: Effect.gen(function*() {
      if (gate === undefined) gate = yield* Deferred.make<void>()
    }),
    release: Effect.suspend(() => {
      const g = gate
      gate = undefined
      return g === undefined ? Effect.void : Deferred.succeed(g, undefined).pipe(Effect.asVoid)
    }),
    failWrites: (error) => Effect.sync(() => { failure = error }),
    writes: Effect.sync(() => [...writes]),
    awaitWrites: (n) =>
      Effect.suspend(() => {
        if (writes.length >= n) return Effect.void
        return Effect.flatMap(Deferred.make<void>(), (deferred) => {
          writeWaiters.push({ n, deferred })
          return Deferred.await(deferred)
        })
      }),
    writesInFlight: Effect.sync(() => inFlight),
    maxWritesInFlight: Effect.sync(() => maxInFlight),
    calls: Effect.sync(() => new Map(calls)),
    rows: (entity) => Effect.sync(() => new Map(table(entity))),
    effectRows: (effect) => Effect.sync(() => new Map(state.effects.get(effect) ?? [])),
    history: (entity) => Effect.sync(() => [...historyOf(entity)])
  })
  return Context.make(Storage, storage).pipe(Context.add(MemoryStorage, control))
})

/** Storage held in memory (for tests and users' handler tests), with its test controls. */
export const layerMemory: Layer.Layer<Storage | MemoryStorage> = Layer.effectContext(makeMemory)
