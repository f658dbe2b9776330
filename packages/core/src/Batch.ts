/**
 * Batch: processed items (events, and block handlers' blocks) in checkpoint order with parallel checkpoint arrays (checkpoint i owns the next
 * `eventsProcessed[i]` items), per-chain progress, and whether any chain is inside its reorg window.
 */
import type { Event, Item } from "./Event.js"

export interface ChainProgress {
  readonly chainId: number
  /** Every block up to and including this one is processed. */
  readonly progressBlock: number
  /** The source's head as last seen. */
  readonly sourceBlock: number
  /** Events processed on this chain since its start block, this batch included. */
  readonly eventsProcessed: number
  readonly firstEventBlock: number | undefined
}

/** A contract address a handler registered (the factory pattern), stamped like a change. */
export interface Registration {
  readonly chainId: number
  readonly contractName: string
  /** Lowercase 0x address. */
  readonly address: string
  readonly blockNumber: number
  readonly logIndex: number
  readonly checkpointId: bigint
}

export interface Batch {
  readonly items: ReadonlyArray<Item>
  readonly checkpointIds: ReadonlyArray<bigint>
  readonly checkpointChainIds: ReadonlyArray<number>
  readonly checkpointBlockNumbers: ReadonlyArray<number>
  readonly checkpointBlockHashes: ReadonlyArray<string>
  readonly checkpointEventsProcessed: ReadonlyArray<number>
  /** True when any chain in the batch is within its reorg window of the head: history is saved for the write. */
  readonly isInReorgThreshold: boolean
  readonly progress: ReadonlyArray<ChainProgress>
  readonly registrations: ReadonlyArray<Registration>
}

export const empty: Batch = {
  items: [],
  checkpointIds: [],
  checkpointChainIds: [],
  checkpointBlockNumbers: [],
  checkpointBlockHashes: [],
  checkpointEventsProcessed: [],
  isInReorgThreshold: false,
  progress: [],
  registrations: []
}

/** The last checkpoint id of the batch, if it has any. */
export const lastCheckpointId = (batch: Batch): bigint | undefined => batch.checkpointIds[batch.checkpointIds.length - 1]

/** Items and parallel checkpoint arrays under construction (a batch being assembled or merged). */
export interface Checkpoints {
  readonly items: Array<Item>
  readonly checkpointIds: Array<bigint>
  readonly checkpointChainIds: Array<number>
  readonly checkpointBlockNumbers: Array<number>
  readonly checkpointBlockHashes: Array<string>
  readonly checkpointEventsProcessed: Array<number>
}

export const checkpoints = (): Checkpoints => ({
  items: [],
  checkpointIds: [],
  checkpointChainIds: [],
  checkpointBlockNumbers: [],
  checkpointBlockHashes: [],
  checkpointEventsProcessed: []
})

/** Appends one checkpoint and the items it owns. */
export const addCheckpoint = (
  self: Checkpoints,
  id: bigint,
  chainId: number,
  blockNumber: number,
  blockHash: string,
  items: ReadonlyArray<Item>
): void => {
  self.checkpointIds.push(id)
  self.checkpointChainIds.push(chainId)
  self.checkpointBlockNumbers.push(blockNumber)
  self.checkpointBlockHashes.push(blockHash)
  self.checkpointEventsProcessed.push(items.length)
  for (const item of items) self.items.push(item)
}

/** Concatenates batches in order into one; later progress of a chain replaces earlier. */
export const merge = (batches: ReadonlyArray<Batch>): Batch => {
  if (batches.length === 1) return batches[0]!
  const out = checkpoints()
  const progress = new Map<number, ChainProgress>()
  const registrations: Array<Registration> = []
  for (const batch of batches) {
    for (const r of batch.registrations) registrations.push(r)
    for (const item of batch.items) out.items.push(item)
    for (let i = 0; i < batch.checkpointIds.length; i++) {
      out.checkpointIds.push(batch.checkpointIds[i]!)
      out.checkpointChainIds.push(batch.checkpointChainIds[i]!)
      out.checkpointBlockNumbers.push(batch.checkpointBlockNumbers[i]!)
      out.checkpointBlockHashes.push(batch.checkpointBlockHashes[i]!)
      out.checkpointEventsProcessed.push(batch.checkpointEventsProcessed[i]!)
    }
    for (const p of batch.progress) progress.set(p.chainId, p)
  }
  return {
    ...out,
    isInReorgThreshold: batches[0]?.isInReorgThreshold ?? false,
    progress: [...progress.values()],
    registrations
  }
}

/** The checkpoint id of each item, expanded from the parallel arrays. */
export const itemCheckpointIds = (batch: Batch): Array<bigint> => {
  const out: Array<bigint> = []
  for (let i = 0; i < batch.checkpointIds.length; i++) {
    const n = batch.checkpointEventsProcessed[i]!
    for (let j = 0; j < n; j++) out.push(batch.checkpointIds[i]!)
  }
  return out
}

/**
 * Merges `events` into the block (checkpoint) of item `at`, in log order with the block's items from `from` on;
 * the item arrays and the per-checkpoint counts grow in place.
 */
export const mergeIntoBlock = (
  items: Array<Item>,
  itemCheckpointIds: Array<bigint>,
  checkpointEventsProcessed: Array<number>,
  at: number,
  from: number,
  events: ReadonlyArray<Event>
): void => {
  let checkpoint = 0
  let blockEnd = checkpointEventsProcessed[0] ?? 0
  while (blockEnd <= at) blockEnd += checkpointEventsProcessed[++checkpoint]!
  const merged = [...items.slice(from, blockEnd), ...events].sort((a, b) => a.logIndex - b.logIndex)
  replaceRange(items, from, blockEnd - from, merged)
  replaceRange(itemCheckpointIds, from, 0, events.map(() => itemCheckpointIds[at]!))
  checkpointEventsProcessed[checkpoint] = checkpointEventsProcessed[checkpoint]! + events.length
}

/** `splice(from, count, ...insert)` without spreading `insert` into arguments (a RangeError past ~100k). */
const replaceRange = <A>(self: Array<A>, from: number, count: number, insert: ReadonlyArray<A>): void => {
  const tail = self.slice(from + count)
  self.length = from
  for (const x of insert) self.push(x)
  for (const x of tail) self.push(x)
}
