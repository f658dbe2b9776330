/**
 * Change: one step of an entity (or effect output), stamped with the checkpoint of the item that made it.
 */

export type Change<A> = Set<A> | Delete

export interface Set<A> {
  readonly _tag: "Set"
  readonly entityId: string
  readonly entity: A
  readonly checkpointId: bigint
}

export interface Delete {
  readonly _tag: "Delete"
  readonly entityId: string
  readonly checkpointId: bigint
}

export const set = <A>(entityId: string, entity: A, checkpointId: bigint): Change<A> => ({
  _tag: "Set",
  entityId,
  entity,
  checkpointId
})

export const del = <A = never>(entityId: string, checkpointId: bigint): Change<A> => ({
  _tag: "Delete",
  entityId,
  checkpointId
})

/** The value a change leaves behind: the entity for a Set, nothing for a Delete. */
export const value = <A>(change: Change<A>): A | undefined => change._tag === "Set" ? change.entity : undefined

/**
 * The latest change per entity id, in first-seen order of ids: a change at a higher or equal checkpoint replaces
 * an earlier one (so of two at one checkpoint the later in the array wins).
 */
export const latestPerId = <A>(changes: ReadonlyArray<Change<A>>): Array<Change<A>> => {
  const latest = new Map<string, Change<A>>()
  for (const change of changes) {
    const seen = latest.get(change.entityId)
    if (seen === undefined || seen.checkpointId <= change.checkpointId) latest.set(change.entityId, change)
  }
  return [...latest.values()]
}
