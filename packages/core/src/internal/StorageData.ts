/**
 * The data the Storage port exchanges (design.md §2–3): resume state, write plans, rollback diffs, status.
 * Public through `Storage`; kept here so the in-memory implementation can use them without importing the port.
 */
import type { Schema } from "effect"
import type * as Batch from "../Batch.js"
import type * as Change from "../Change.js"

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
