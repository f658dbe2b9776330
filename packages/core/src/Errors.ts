/**
 * Every typed error of chainstore's runtime, in one module. Retryability is data (`isRetryable`).
 */
import { Cause, Schema } from "effect"
import { describe as describeItem, isBlockItem, type Item } from "./Event.js"

/** A Storage operation failed; `isRetryable` says whether re-running the whole transaction is safe and useful. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  operation: Schema.String,
  message: Schema.String,
  isRetryable: Schema.Boolean,
  cause: Schema.optional(Schema.Defect())
}) {}

/** The background writer failed; fatal for the program. */
export class WriteFailed extends Schema.TaggedError<WriteFailed>()("WriteFailed", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

/** A user handler failed or died on one event, or a block handler on one block. */
export class HandlerError extends Schema.TaggedError<HandlerError>()("HandlerError", {
  chainId: Schema.Number,
  blockNumber: Schema.Number,
  /** The event's; absent for a block handler. */
  logIndex: Schema.optional(Schema.Number),
  transactionHash: Schema.optional(Schema.String),
  handler: Schema.String,
  cause: Schema.Defect()
}) {
  /** The error of the handler running `item` (a Cause or an error); a HandlerError already in it is kept as it is. */
  static of(item: Item, cause: unknown): HandlerError {
    if (cause instanceof HandlerError) return cause
    if (Cause.isCause(cause)) {
      for (const reason of cause.reasons) if (reason._tag === "Fail" && reason.error instanceof HandlerError) return reason.error
    }
    return new HandlerError({
      chainId: item.chainId,
      blockNumber: item.blockNumber,
      ...(isBlockItem(item) ? {} : { logIndex: item.logIndex, transactionHash: item.transactionHash }),
      handler: describeItem(item),
      cause
    })
  }

  override get message(): string {
    const where = this.logIndex === undefined ? "" : `, log index ${this.logIndex}, tx ${this.transactionHash}`
    return `Handler ${this.handler} failed on chain ${this.chainId}, block ${this.blockNumber}${where}: ${describe(this.cause)}`
  }
}

/** `ctx.readContract` could not read: the call reverted, its arguments do not encode, or the chain cannot be called. */
export class ContractReadError extends Schema.TaggedError<ContractReadError>()("ContractReadError", {
  chainId: Schema.Number,
  address: Schema.String,
  functionName: Schema.String,
  blockNumber: Schema.Number,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `readContract ${this.functionName} on ${this.address} (chain ${this.chainId}, block ${this.blockNumber}): ${this.reason}`
  }
}

/** A user effect failed for one input; only the calls that depend on it see this error. */
export class EffectCallError extends Schema.TaggedError<EffectCallError>()("EffectCallError", {
  effect: Schema.String,
  inputKey: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Effect ${this.effect} failed for input ${this.inputKey}: ${describe(this.cause)}`
  }
}

/** An entity value does not match its schema (or its column type). */
export class EntityValidationError extends Schema.TaggedError<EntityValidationError>()("EntityValidationError", {
  entity: Schema.String,
  entityId: Schema.String,
  field: Schema.optional(Schema.String),
  message: Schema.String
}) {}

/** A Source could not serve a request. */
export class SourceError extends Schema.TaggedError<SourceError>()("SourceError", {
  chainId: Schema.Number,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** The chain cache could not read or store; never fatal: the source then reads from the node. */
export class ChainCacheError extends Schema.TaggedError<ChainCacheError>()("ChainCacheError", {
  operation: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * A chain's JSON-RPC endpoint could not serve a request after RpcClient's policies ran out: `Unavailable` (transient
 * failures past the outage budget), `Permanent` (auth, unknown method, invalid params), `TooLarge` (one block's logs
 * past the provider's cap even split by address and topic), `ChainMismatch` (the endpoint serves another chain).
 * `endpoint` is scheme://host only.
 */
export class RpcError extends Schema.TaggedError<RpcError>()("RpcError", {
  chainId: Schema.Number,
  endpoint: Schema.String,
  method: Schema.String,
  reason: Schema.Literals(["Unavailable", "Permanent", "TooLarge", "ChainMismatch"]),
  message: Schema.String
}) {}

/**
 * The database holds tables written by another build of the indexer (other code or chain configuration): resuming
 * them would mix two builds' results. `changes` says what differs.
 */
export class BuildChangedError extends Schema.TaggedError<BuildChangedError>()("BuildChangedError", {
  stored: Schema.String,
  current: Schema.String,
  changes: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** The indexer definition is malformed; `path` names the offending field. */
export class IndexerDefinitionError extends Schema.TaggedError<IndexerDefinitionError>()("IndexerDefinitionError", {
  path: Schema.String,
  message: Schema.String
}) {}

/**
 * Event params that do not fit the event's ABI: a log that does not decode, or a test event that does not encode.
 * `param` is the input at fault when there is one, by its params key (its name, or its position if unnamed).
 */
export class EventParamsError extends Schema.TaggedError<EventParamsError>()("EventParamsError", {
  contract: Schema.String,
  event: Schema.String,
  param: Schema.optional(Schema.String),
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `${this.contract}.${this.event}${this.param === undefined ? "" : ` param "${this.param}"`}: ${this.reason}`
  }
}

/** A reorg reached below the chain's reorg window: nothing stored can restore it. */
export class DeepReorgError extends Schema.TaggedError<DeepReorgError>()("DeepReorgError", {
  chainId: Schema.Number,
  blockNumber: Schema.Number,
  depth: Schema.Number,
  reorgWindow: Schema.Number
}) {
  override get message(): string {
    return `Reorg on chain ${this.chainId} at block ${this.blockNumber} is at least ${this.depth} blocks deep, beyond the reorg window of ${this.reorgWindow} blocks; nothing stored can restore it (raise the chain's reorgWindow)`
  }
}

/** Errors that end the program. */
export type Fatal = WriteFailed | HandlerError | SourceError | StorageError | DeepReorgError | EntityValidationError

/** A cause in a line: the first failure's own message, through nested causes. */
const describe = (cause: unknown): string => {
  if (Cause.isCause(cause)) {
    const reason = cause.reasons.find((r) => r._tag === "Fail") ?? cause.reasons.find((r) => r._tag === "Die")
    if (reason?._tag === "Fail") return describe(reason.error)
    if (reason?._tag === "Die") return describe(reason.defect)
    return Cause.pretty(cause)
  }
  if (cause instanceof Error) return cause.message
  if (typeof cause === "string") return cause
  try {
    return JSON.stringify(cause) ?? String(cause)
  } catch {
    return String(cause)
  }
}
