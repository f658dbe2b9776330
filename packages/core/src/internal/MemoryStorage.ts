/**
 * The in-memory Storage (tests and users' handler tests): committed state in plain maps, each write applied as
 * the design.md §3 steps, mirroring PgStorage's, on a copy that becomes the state only when all succeed. Its test
 * controls hold or fail writes and expose what was written; `Storage.layerMemory` serves both as services.
 */
import { Deferred, Effect } from "effect"
import type * as Batch from "../Batch.js"
import { type Build, changedError } from "../Build.js"
import * as Change from "../Change.js"
import * as Checkpoint from "../Checkpoint.js"
import type { Operator } from "../Entity.js"
import { StorageError } from "../Errors.js"
import type { Indexer } from "../Indexer.js"
import type { ChainMeta, ChainState, EffectRow, ResumeState, RollbackDiff, WritePlan } from "./StorageData.js"

interface HistoryRow {
  readonly id: string
  readonly checkpointId: bigint
  /** Undefined for a delete. */
  readonly value: unknown
}

/** What is committed: one transaction's worth replaces it whole. */
interface State {
  committed: bigint
  entities: Map<string, Map<string, unknown>>
  history: Map<string, Array<HistoryRow>>
  effects: Map<string, Map<string, EffectRow>>
  checkpoints: Array<Checkpoint.Checkpoint>
  chains: Map<number, ChainState>
  addresses: Array<Batch.Registration>
  build: Build | undefined
}

/** The storage's mutable cell, owned by one layer: the state plus what the test controls track. */
interface Memory {
  state: State
  reorgSensitive: ReadonlySet<string>
  gate: Deferred.Deferred<void> | undefined
  failure: StorageError | undefined
  readonly writes: Array<WritePlan>
  readonly writeWaiters: Array<{ readonly n: number; readonly deferred: Deferred.Deferred<void> }>
  inFlight: number
  maxInFlight: number
  readonly calls: Map<string, number>
}

/** The storage and its test controls over one fresh state (typed by the `Storage` and `MemoryStorage` services). */
export const make = Effect.sync(() => {
  const memory: Memory = {
    state: empty(),
    reorgSensitive: new Set(),
    gate: undefined,
    failure: undefined,
    writes: [],
    writeWaiters: [],
    inFlight: 0,
    maxInFlight: 0,
    calls: new Map()
  }
  return { storage: storage(memory), control: control(memory) }
})

// The Storage method table: long only because it lists thirteen methods, each a few lines.
const storage = (m: Memory) => {
  const count = (name: string) => m.calls.set(name, (m.calls.get(name) ?? 0) + 1)
  return {
    initialize: (indexer: Indexer) =>
      Effect.suspend(() => {
        count("initialize")
        const stored = m.state.build
        if (indexer.build !== undefined && stored !== undefined && stored.id !== indexer.build.id) return Effect.fail(changedError(stored, indexer.build))
        m.state.build = indexer.build ?? stored
        m.reorgSensitive = new Set(indexer.effects.filter((e) => e.reorgSensitive).map((e) => e.name))
        return Effect.succeed(initialize(m.state, indexer))
      }),
    loadByIds: (entity: string, ids: ReadonlyArray<string>) =>
      Effect.sync(() => {
        count(`loadByIds:${entity}`)
        const rows = tableOf(m.state, entity)
        const out: Array<unknown> = []
        for (const id of ids) {
          const row = rows.get(id)
          if (row !== undefined) out.push(row)
        }
        return out
      }),
    loadByField: (entity: string, field: string, op: Operator, value: unknown) =>
      Effect.sync(() => {
        count(`loadByField:${entity}`)
        return [...tableOf(m.state, entity).values()].filter((row) => matches(row, field, op, value))
      }),
    loadEffectEntries: (effect: string, keys: ReadonlyArray<string>) =>
      Effect.sync(() => {
        count(`loadEffectEntries:${effect}`)
        const rows = m.state.effects.get(effect)
        const out: Array<{ key: string; output: unknown }> = []
        for (const key of keys) {
          const row = rows?.get(key)
          if (row !== undefined) out.push({ key, output: row.output })
        }
        return out
      }),
    writeBatch: (plan: WritePlan) =>
      Effect.gen(function*() {
        count("writeBatch")
        m.writes.push(plan)
        for (const waiter of m.writeWaiters) if (m.writes.length >= waiter.n) Deferred.doneUnsafe(waiter.deferred, Effect.void)
        m.inFlight++
        m.maxInFlight = Math.max(m.maxInFlight, m.inFlight)
        yield* Effect.gen(function*() {
          if (m.gate !== undefined) yield* Deferred.await(m.gate)
          if (m.failure !== undefined) return yield* m.failure
          m.state = yield* Effect.try({ try: () => apply(m.state, plan, m.reorgSensitive), catch: (cause) => storageError("writeBatch", cause) })
        }).pipe(Effect.ensuring(Effect.sync(() => m.inFlight--)))
      }),
    writeChainMeta: (meta: ReadonlyArray<ChainMeta>) =>
      Effect.suspend(() => {
        count("writeChainMeta")
        if (m.failure !== undefined) return Effect.fail(m.failure)
        writeChainMetadata(m.state, meta)
        return Effect.void
      }),
    rollbackTarget: (chainId: number, blockNumber: number) =>
      Effect.sync(() =>
        m.state.checkpoints.reduce(
          (target, c) => (c.chainId === chainId && c.blockNumber <= blockNumber && c.id > target ? c.id : target),
          Checkpoint.initial
        )
      ),
    readRollbackDiff: (target: bigint) => Effect.sync(() => rollbackDiff(m.state, target)),
    storedBlockHashes: (chainId: number, fromBlock: number) =>
      Effect.sync(() =>
        m.state.checkpoints
          .filter((c) => c.chainId === chainId && c.blockNumber >= fromBlock)
          .map((c) => ({ number: c.blockNumber, hash: c.blockHash }))
      ),
    loadAddresses: (chainId: number) => Effect.sync(() => m.state.addresses.filter((a) => a.chainId === chainId)),
    pruneHistory: (safe: bigint) => Effect.sync(() => pruneHistory(m.state, safe)),
    status: Effect.sync(() => ({
      committedCheckpointId: m.state.committed,
      chains: [...m.state.chains.values()],
      entityCounts: [...m.state.entities].map(([entity, rows]) => ({ entity, rows: rows.size })),
      effectCounts: [...m.state.effects].map(([effect, rows]) => ({ effect, rows: rows.size }))
    })),
    reset: Effect.sync(() => {
      m.state = empty()
    })
  }
}

const control = (m: Memory) => ({
  hold: Effect.gen(function*() {
    if (m.gate === undefined) m.gate = yield* Deferred.make<void>()
  }),
  release: Effect.suspend(() => {
    const gate = m.gate
    m.gate = undefined
    return gate === undefined ? Effect.void : Deferred.succeed(gate, undefined).pipe(Effect.asVoid)
  }),
  failWrites: (error: StorageError | undefined) =>
    Effect.sync(() => {
      m.failure = error
    }),
  writes: Effect.sync((): ReadonlyArray<WritePlan> => [...m.writes]),
  awaitWrites: (n: number) =>
    Effect.suspend(() => {
      if (m.writes.length >= n) return Effect.void
      return Effect.flatMap(Deferred.make<void>(), (deferred) => {
        m.writeWaiters.push({ n, deferred })
        return Deferred.await(deferred)
      })
    }),
  writesInFlight: Effect.sync(() => m.inFlight),
  maxWritesInFlight: Effect.sync(() => m.maxInFlight),
  calls: Effect.sync((): ReadonlyMap<string, number> => new Map(m.calls)),
  rows: (entity: string) => Effect.sync((): ReadonlyMap<string, unknown> => new Map(tableOf(m.state, entity))),
  effectRows: (effect: string) => Effect.sync((): ReadonlyMap<string, EffectRow> => new Map(m.state.effects.get(effect) ?? [])),
  history: (entity: string) => Effect.sync((): ReadonlyArray<HistoryRow> => [...historyOf(m.state, entity)])
})

// ---------------------------------------------------------------------------------------------------------------
// State

const empty = (): State => ({
  committed: Checkpoint.initial,
  entities: new Map(),
  history: new Map(),
  effects: new Map(),
  checkpoints: [],
  chains: new Map(),
  addresses: [],
  build: undefined
})

/** A copy a write can change freely: the maps and arrays are new, the rows in them shared (never mutated). */
const copy = (state: State): State => ({
  committed: state.committed,
  entities: new Map([...state.entities].map(([k, v]) => [k, new Map(v)])),
  history: new Map([...state.history].map(([k, v]) => [k, [...v]])),
  effects: new Map([...state.effects].map(([k, v]) => [k, new Map(v)])),
  checkpoints: [...state.checkpoints],
  chains: new Map(state.chains),
  addresses: [...state.addresses],
  build: state.build
})

const tableOf = (state: State, entity: string): Map<string, unknown> => {
  let table = state.entities.get(entity)
  if (table === undefined) state.entities.set(entity, (table = new Map()))
  return table
}

const historyOf = (state: State, entity: string): Array<HistoryRow> => {
  let history = state.history.get(entity)
  if (history === undefined) state.history.set(entity, (history = []))
  return history
}

const initialize = (state: State, indexer: Indexer): ResumeState => {
  for (const chain of indexer.chains) {
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
}

const matches = (row: unknown, field: string, op: Operator, value: unknown): boolean => {
  const v = (row as Record<string, unknown>)[field] as string | number | bigint
  const x = value as string | number | bigint
  return op === "eq" ? v === x : op === "gt" ? v > x : v < x
}

/** Per touched entity its last history step at or before the target (a delete if none), and progress as of it. */
const rollbackDiff = (state: State, target: bigint): RollbackDiff => {
  const entities: Array<{ entity: string; changes: Array<Change.Change<unknown>> }> = []
  for (const [entity, history] of state.history) {
    const touched = new Set(history.filter((h) => h.checkpointId > target).map((h) => h.id))
    const changes: Array<Change.Change<unknown>> = []
    for (const id of touched) {
      let before: HistoryRow | undefined
      for (const h of history) {
        if (h.id === id && h.checkpointId <= target && (before === undefined || h.checkpointId >= before.checkpointId)) before = h
      }
      changes.push(before?.value === undefined ? Change.del(id, 0n) : Change.set(id, before.value, 0n))
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
}

const pruneHistory = (state: State, safe: bigint): void => {
  for (const [entity, rows] of state.history) {
    // Keep, per id, the newest step at or below the safe checkpoint: a rollback to it restores from there.
    const newestSafe = new Map<string, bigint>()
    for (const r of rows) {
      if (r.checkpointId <= safe && (newestSafe.get(r.id) ?? -1n) < r.checkpointId) newestSafe.set(r.id, r.checkpointId)
    }
    state.history.set(entity, rows.filter((r) => r.checkpointId > safe || newestSafe.get(r.id) === r.checkpointId))
  }
  state.checkpoints = state.checkpoints.filter((c) => c.id >= safe)
}

const storageError = (operation: string, cause: unknown) =>
  new StorageError({ operation, message: cause instanceof Error ? cause.message : String(cause), isRetryable: false, cause })

// ---------------------------------------------------------------------------------------------------------------
// The write (design.md §3): one function per step, named as PgStorage's, run in order by `apply`

/** One entity's part of a write: the run's steps, and the staged rollback's diff (entity table only). */
interface EntityWrite {
  readonly entity: string
  readonly steps: ReadonlyArray<Change.Change<unknown>>
  readonly diff: ReadonlyArray<Change.Change<unknown>>
}

/** The state after `plan`, as one transaction: the steps change a copy, so a step that throws leaves `state` as it was. */
const apply = (state: State, plan: WritePlan, reorgSensitive: ReadonlySet<string>): State => {
  const next = copy(state)
  const entities = entityWrites(plan)
  if (plan.rollback !== undefined) applyStagedRollback(next, plan.rollback.targetCheckpointId, entities, reorgSensitive)
  if (plan.batch.isInReorgThreshold) writeHistory(next, entities)
  writeEntities(next, entities)
  // 3. Raw events are not kept in memory.
  writeEffectRows(next, plan.effects)
  writeProgress(next, plan)
  if (plan.chainMeta !== undefined) writeChainMetadata(next, plan.chainMeta)
  return next
}

/** Each entity's changes, split into the run's steps and the diff of a staged rollback (stamped with its checkpoint). */
const entityWrites = (plan: WritePlan): Array<EntityWrite> =>
  plan.entities.map(({ changes, entity }) => {
    const diffCheckpoint = plan.rollback?.diffCheckpointId
    return {
      entity,
      steps: diffCheckpoint === undefined ? changes : changes.filter((c) => c.checkpointId !== diffCheckpoint),
      diff: diffCheckpoint === undefined ? [] : changes.filter((c) => c.checkpointId === diffCheckpoint)
    }
  })

/** Leaves each id of `changes` as its latest change says: deleted, or holding the latest Set's value. */
const applyLatest = (rows: Map<string, unknown>, changes: ReadonlyArray<Change.Change<unknown>>): void => {
  for (const change of Change.latestPerId(changes)) {
    if (change._tag === "Set") rows.set(change.entityId, change.entity)
    else rows.delete(change.entityId)
  }
}

/** 0. A staged rollback: forget what came after the target, then restore the entity tables (no history). */
const applyStagedRollback = (state: State, target: bigint, entities: ReadonlyArray<EntityWrite>, reorgSensitive: ReadonlySet<string>) => {
  for (const [entity, rows] of state.history) state.history.set(entity, rows.filter((r) => r.checkpointId <= target))
  state.checkpoints = state.checkpoints.filter((c) => c.id <= target)
  state.addresses = state.addresses.filter((a) => a.checkpointId <= target)
  for (const effect of reorgSensitive) {
    const rows = state.effects.get(effect)
    if (rows !== undefined) for (const [key, row] of rows) if (row.checkpointId > target) rows.delete(key)
  }
  for (const { diff, entity } of entities) applyLatest(tableOf(state, entity), diff)
}

/** 1. History (inside the reorg threshold): the current row of ids without history at checkpoint 0, then every step. */
const writeHistory = (state: State, entities: ReadonlyArray<EntityWrite>) => {
  for (const { entity, steps } of entities) {
    const rows = tableOf(state, entity)
    const history = historyOf(state, entity)
    const withHistory = new Set(history.map((h) => h.id))
    for (const change of steps) {
      // The backfill precedes step 2, which overwrites the row it copies.
      if (!withHistory.has(change.entityId) && rows.has(change.entityId)) {
        history.push({ id: change.entityId, checkpointId: Checkpoint.initial, value: rows.get(change.entityId) })
      }
      withHistory.add(change.entityId)
      history.push({ id: change.entityId, checkpointId: change.checkpointId, value: Change.value(change) })
    }
  }
}

/** 2. Entity tables: the latest change per id. */
const writeEntities = (state: State, entities: ReadonlyArray<EntityWrite>) => {
  for (const { entity, steps } of entities) applyLatest(tableOf(state, entity), steps)
}

/** 4. Effect cache rows: per key the last row of the write. */
const writeEffectRows = (state: State, effects: WritePlan["effects"]) => {
  for (const { effect, rows } of effects) {
    let table = state.effects.get(effect)
    if (table === undefined) state.effects.set(effect, (table = new Map()))
    for (const row of rows) table.set(row.key, row)
  }
}

/** 5. Checkpoints (inside the reorg threshold), chain progress, registered addresses and the committed frontier. */
const writeProgress = (state: State, plan: WritePlan) => {
  const { batch } = plan
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
  for (const r of batch.registrations) state.addresses.push(r)
  state.committed = plan.committedCheckpointId
}

/** 6. Chain metadata (also written alone, by `writeChainMeta`); the first event block and ready time are set once. */
const writeChainMetadata = (state: State, meta: ReadonlyArray<ChainMeta>) => {
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
