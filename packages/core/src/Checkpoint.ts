/**
 * Checkpoints: the global, ever-growing ids that stamp every change with the (chain, block) that made it.
 */

/** One checkpoint per (chain, block) with events, plus one per hash-only block inside a reorg window. */
export interface Checkpoint {
  readonly id: bigint
  readonly chainId: number
  readonly blockNumber: number
  readonly blockHash: string
  readonly eventsProcessed: number
}

/** Entries loaded from the database carry this id: below every real id, so they always count as committed. */
export const loadedFromDb = 0n

/** The committed frontier of a database nothing was ever written to. */
export const initial = 0n
