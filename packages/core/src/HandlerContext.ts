/**
 * HandlerContext: what a handler's `ctx` offers — typed operations on each entity of the indexer, effect calls
 * through the cache, contract reads, logging and factory registrations. Types only; the runtime builds the contexts.
 */
import type { Effect } from "effect"
import type * as Entity from "./Entity.js"
import type { EffectCallError, EntityValidationError, HandlerError, StorageError } from "./Errors.js"
import type * as ExternalEffect from "./ExternalEffect.js"
import type * as ReadContract from "./ReadContract.js"

export interface EntityOps<A> {
  /** The entity, from memory or else storage; undefined when it does not exist. */
  readonly get: (id: string) => Effect.Effect<A | undefined, StorageError>
  readonly set: (entity: A) => Effect.Effect<void, EntityValidationError>
  readonly deleteUnsafe: (id: string) => Effect.Effect<void>
  /** Entities whose indexed `field` compares to `value` (memory and storage together). */
  readonly getWhere: <K extends keyof A & string>(field: K, op: Entity.Operator, value: A[K]) => Effect.Effect<ReadonlyArray<A>, StorageError>
}

export type Context<Ents extends ReadonlyArray<Entity.Any>> = {
  readonly [E in Ents[number] as E["name"]]: EntityOps<Entity.Type<E>>
} & {
  /** Calls a declared effect through the cache. */
  readonly effect: <I, O, E>(effect: ExternalEffect.ExternalEffect<string, I, O, E>, input: I) => Effect.Effect<O, EffectCallError>
  /**
   * Reads a contract (viem's `{ address, abi, functionName, args }`, typed by the ABI) at the block being handled,
   * or at `blockNumber`: cached, persisted, batched into Multicall3 calls by the preload pass.
   */
  readonly readContract: ReadContract.Read
  /** Logs with the event's chain, block and log index attached. */
  readonly log: (message: string) => Effect.Effect<void>
  /**
   * Registers a contract address (the factory pattern): its events are indexed from this event's block on,
   * on this chain. `contractName` names a contract of the chain's config.
   */
  readonly addContract: (contractName: string, address: string) => Effect.Effect<void, HandlerError>
}

/** Names a handler context already uses; an entity may not take them. */
export const reservedNames: ReadonlyArray<string> = ["effect", "log", "addContract", "readContract"]

