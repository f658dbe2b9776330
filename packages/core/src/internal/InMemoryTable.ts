/**
 * InMemoryTable: the in-memory state of one entity table (or one effect's outputs). Pure data, no services.
 *
 * Per id the latest change; superseded uncommitted changes are kept aside because history needs every step.
 * Entries loaded from the database are stamped with checkpoint 0, so they always count as committed and are
 * never written back. Lookup indexes on fields are built lazily and dropped with every eviction.
 */
import * as Change from "../Change.js"
import * as Checkpoint from "../Checkpoint.js"
import type { Operator } from "../Entity.js"

interface LookupIndex {
  readonly field: string
  readonly op: Operator
  readonly value: unknown
  readonly ids: Set<string>
}

export interface InMemoryTable<A> {
  readonly latest: Map<string, Change.Change<A>>
  previous: Array<Change.Change<A>>
  /** Ids whose latest change was set since it was last snapshotted: a snapshot reads these, not the table. */
  readonly dirty: Set<string>
  readonly indexes: Map<string, LookupIndex>
}

export const make = <A>(): InMemoryTable<A> => ({ latest: new Map(), previous: [], dirty: new Set(), indexes: new Map() })

/** Entries held: latest changes plus superseded ones kept for history. */
export const changesCount = <A>(self: InMemoryTable<A>): number => self.latest.size + self.previous.length

export const get = <A>(self: InMemoryTable<A>, id: string): Change.Change<A> | undefined => self.latest.get(id)

/**
 * Records a change and returns the one it supersedes. A superseded change that is not yet committed is kept, since a
 * write still needs it (for history, or as the latest of an earlier write run) — unless stamped at or above `dropFrom`.
 */
export const set = <A>(self: InMemoryTable<A>, change: Change.Change<A>, committed: bigint, dropFrom?: bigint): Change.Change<A> | undefined => {
  const prev = self.latest.get(change.entityId)
  if (
    prev !== undefined && prev.checkpointId > committed && prev.checkpointId < change.checkpointId &&
    (dropFrom === undefined || prev.checkpointId < dropFrom)
  ) {
    self.previous.push(prev)
  }
  self.latest.set(change.entityId, change)
  self.dirty.add(change.entityId)
  if (self.indexes.size > 0) updateIndexes(self, change)
  return prev
}

/**
 * Puts back `prev` as an id's latest change (undefined: the id leaves memory), undoing the changes made since; a
 * superseded step kept for history that becomes the latest again leaves the kept steps.
 */
export const restore = <A>(self: InMemoryTable<A>, id: string, prev: Change.Change<A> | undefined): void => {
  if (prev === undefined) {
    self.latest.delete(id)
    // A lookup built since may have skipped this id's stored row (memory had it): build lookups anew.
    self.indexes.clear()
    return
  }
  const kept = self.previous.lastIndexOf(prev)
  if (kept >= 0) self.previous.splice(kept, 1)
  self.latest.set(id, prev)
  self.dirty.add(id)
  if (self.indexes.size > 0) updateIndexes(self, prev)
}

/** Records what the database holds for an id (undefined: known absent), unless memory already has it. */
export const initFromDb = <A>(self: InMemoryTable<A>, id: string, value: A | undefined): void => {
  if (self.latest.has(id)) return
  const change = value === undefined ? Change.del<A>(id, Checkpoint.loadedFromDb) : Change.set(id, value, Checkpoint.loadedFromDb)
  self.latest.set(id, change)
  if (self.indexes.size > 0) updateIndexes(self, change)
}

/**
 * The changes with committed < checkpoint ≤ upTo, oldest steps first. Superseded steps are taken out (the write
 * owns them now); latest entries stay readable until evicted. Steps at or below `committed` were written already.
 */
export const snapshotChanges = <A>(self: InMemoryTable<A>, committed: bigint, upTo: bigint): Array<Change.Change<A>> => {
  const out: Array<Change.Change<A>> = []
  if (self.previous.length > 0) {
    const kept: Array<Change.Change<A>> = []
    for (const change of self.previous) {
      if (change.checkpointId > upTo) kept.push(change)
      else if (change.checkpointId > committed) out.push(change)
    }
    self.previous = kept
  }
  for (const id of self.dirty) {
    const change = self.latest.get(id)
    if (change === undefined || change.checkpointId <= committed) self.dirty.delete(id)
    else if (change.checkpointId <= upTo) {
      out.push(change)
      self.dirty.delete(id)
    }
  }
  return out
}

/** Evicts committed entries (db-loaded ones too unless kept); returns how many went. Lookup indexes are dropped. */
export const dropCommitted = <A>(self: InMemoryTable<A>, committed: bigint, keepLoadedFromDb: boolean): number => {
  let dropped = 0
  for (const [id, change] of self.latest) {
    if (change.checkpointId > committed) continue
    if (keepLoadedFromDb && change.checkpointId === Checkpoint.loadedFromDb) continue
    self.latest.delete(id)
    dropped++
  }
  self.indexes.clear()
  return dropped
}

/** Drops every entry stamped after `checkpointId` (a rollback), superseded steps included. */
export const dropAfter = <A>(self: InMemoryTable<A>, checkpointId: bigint): void => {
  for (const [id, change] of self.latest) if (change.checkpointId > checkpointId) self.latest.delete(id)
  self.previous = self.previous.filter((change) => change.checkpointId <= checkpointId)
  self.indexes.clear()
}

/** Ids whose latest value matches, if the lookup was indexed already (else undefined). */
export const lookup = <A>(self: InMemoryTable<A>, field: string, op: Operator, value: unknown): ReadonlyArray<string> | undefined => {
  const index = self.indexes.get(lookupKey(field, op, value))
  return index === undefined ? undefined : [...index.ids]
}

/** Builds the lookup index from the entries in memory; the caller has loaded the database's matches first. */
export const addLookup = <A>(self: InMemoryTable<A>, field: string, op: Operator, value: unknown): ReadonlyArray<string> => {
  const index: LookupIndex = { field, op, value, ids: new Set() }
  for (const change of self.latest.values()) {
    if (change._tag === "Set" && matches(change.entity, index)) index.ids.add(change.entityId)
  }
  self.indexes.set(lookupKey(field, op, value), index)
  return [...index.ids]
}

const updateIndexes = <A>(self: InMemoryTable<A>, change: Change.Change<A>): void => {
  for (const index of self.indexes.values()) {
    if (change._tag === "Set" && matches(change.entity, index)) index.ids.add(change.entityId)
    else index.ids.delete(change.entityId)
  }
}

const matches = (entity: unknown, index: LookupIndex): boolean => {
  const actual = comparable((entity as Record<string, unknown>)[index.field])
  const expected = comparable(index.value)
  switch (index.op) {
    case "eq":
      return actual === expected
    case "gt":
      return actual !== undefined && expected !== undefined && actual > expected
    case "lt":
      return actual !== undefined && expected !== undefined && actual < expected
  }
}

type Comparable = string | number | bigint | boolean | undefined

const comparable = (value: unknown): Comparable =>
  value instanceof Date ? value.getTime() :
  typeof value === "string" || typeof value === "number" || typeof value === "bigint" || typeof value === "boolean" ? value :
  value === null || value === undefined ? undefined : JSON.stringify(value)

const lookupKey = (field: string, op: Operator, value: unknown): string => {
  const v = comparable(value)
  return `${field}\u0000${op}\u0000${typeof v}:${String(v)}`
}
