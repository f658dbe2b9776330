/**
 * Event: one decoded log as a handler sees it, and the block a block handler runs for. Both are items of a batch,
 * ordered by (chain, block) checkpoint; in a block, a block handler's item comes after the block's logs.
 */
import type * as Fields from "./Fields.js"

export interface Event<
  Params = Readonly<Record<string, unknown>>,
  Block = Fields.BlockDefaults,
  Transaction = Fields.TransactionDefaults,
  Log = {}
> {
  readonly _tag?: undefined
  readonly chainId: number
  readonly contractName: string
  readonly eventName: string
  /** Lowercase 0x-hex address of the contract that emitted the log. */
  readonly srcAddress: string
  readonly blockNumber: number
  readonly blockHash: string
  readonly blockTimestamp: number
  readonly logIndex: number
  readonly transactionHash: string
  readonly params: Params
  /** Number, hash and timestamp, and the block fields selected for this event. */
  readonly block: Block
  /** Hash, and the transaction (and receipt) fields selected for this event. */
  readonly transaction: Transaction
  /** The raw log's fields selected for this event (topics, data). */
  readonly log: Log
}

/** What a block handler receives: its chain and the block, with the fields it selected. */
export interface BlockEvent<Block = Fields.BlockDefaults> {
  readonly chainId: number
  /** The block handler's name. */
  readonly name: string
  readonly block: Block
}

/** A block handler's run in a batch: after every log of its block (`logIndex` sorts it last). */
export interface BlockItem extends BlockEvent<Readonly<Record<string, unknown>> & Fields.BlockDefaults> {
  readonly _tag: "Block"
  readonly blockNumber: number
  readonly blockHash: string
  readonly blockTimestamp: number
  readonly logIndex: number
}

/** One unit of work in a batch. */
export type Item = Event | BlockItem

/** Sorts a block item after every log of its block. */
export const blockItemLogIndex = Number.MAX_SAFE_INTEGER

export const blockItem = (chainId: number, name: string, block: Readonly<Record<string, unknown>> & Fields.BlockDefaults): BlockItem => ({
  _tag: "Block",
  chainId,
  name,
  block,
  blockNumber: block.number,
  blockHash: block.hash,
  blockTimestamp: block.timestamp,
  logIndex: blockItemLogIndex
})

export const isBlockItem = (item: Item): item is BlockItem => item._tag === "Block"

/** `<chainId>-<block>-<logIndex>`: unique per chain, the natural id of an event row. */
export const id = (event: Event<unknown, unknown, unknown, unknown>): string => `${event.chainId}-${event.blockNumber}-${event.logIndex}`

/** What names an item in errors and logs: `Contract.Event` or `block handler "name"`. */
export const describe = (item: Item): string => (isBlockItem(item) ? `block handler "${item.name}"` : `${item.contractName}.${item.eventName}`)
