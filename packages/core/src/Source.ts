/**
 * Source: where a chain's events come from. A pull API, so the fetcher can rewind after a reorg.
 * Also a deterministic in-memory source for tests.
 */
import { Effect, Scope } from "effect"
import type { Abi, Hex } from "viem"
import type { ChainCache } from "./ChainCache.js"
import { SourceError } from "./Errors.js"
import type { Event } from "./Event.js"
import * as Fields from "./Fields.js"

export interface Block {
  readonly number: number
  readonly hash: string
}

/** A block's number, hash, timestamp and selected fields: `event.block`, and a block handler's block. */
export type BlockData = Readonly<Record<string, unknown>> & Fields.BlockDefaults

export interface FetchResult {
  /** Decoded events of the range covered, ordered by block number then log index. */
  readonly events: ReadonlyArray<Event>
  /** Hashes of the covered blocks with events, and of every covered block from `hashesFrom` on. */
  readonly blocks: ReadonlyArray<Block>
  /** The covered blocks the request's block handlers run for, with the fields they select, in block order. */
  readonly handlerBlocks?: ReadonlyArray<BlockData>
  /** The last block covered: a source may serve less than asked (its own range limits); default `toBlock`. */
  readonly toBlock?: number
}

export interface FetchRequest {
  readonly fromBlock: number
  readonly toBlock: number
  /** Also report the hashes of blocks without events from this block on (the reorg window, for the detector). */
  readonly hashesFrom: number | undefined
  /** The contracts to fetch, with their addresses as of now (factories add some during a run). */
  readonly contracts: ReadonlyArray<ContractInfo>
  /** The block handlers whose blocks to report in `handlerBlocks` (none: `[]`). */
  readonly blockHandlers: ReadonlyArray<BlockHandlerInfo>
}

/** An `eth_call` at a block: by its hash when known (the block an event or block handler runs for). */
export interface ContractCall {
  readonly to: string
  readonly data: Hex
  readonly blockNumber: number
  readonly blockHash: string | undefined
}

/** A call's return data, or the revert data of a call that reverted. */
export type CallResult =
  | { readonly _tag: "Success"; readonly data: Hex }
  | { readonly _tag: "Reverted"; readonly data: Hex }

/** A running source for one chain. */
export interface ChainSource {
  /** The chain's last block, for a source whose chain ends (the simulated one). */
  readonly endBlock?: number
  readonly head: Effect.Effect<number, SourceError>
  readonly fetch: (request: FetchRequest) => Effect.Effect<FetchResult, SourceError>
  readonly blockHash: (blockNumber: number) => Effect.Effect<string | undefined, SourceError>
  /** Contract calls at their blocks, results in order; absent for a source that cannot call contracts. */
  readonly readContracts?: (calls: ReadonlyArray<ContractCall>) => Effect.Effect<ReadonlyArray<CallResult>, SourceError>
}

export interface ContractInfo {
  readonly name: string
  readonly abi: Abi
  readonly addresses: ReadonlyArray<string>
  /** Its events from every address of the chain (`addresses` is then empty). */
  readonly wildcard: boolean
  /** The handled events. */
  readonly events: ReadonlyArray<EventInfo>
}

/**
 * `topics` of a log as an `eth_getLogs` filter reads them: per position, the values allowed (OR), or null for any.
 * The first position holds the event's selector.
 */
export type Topics = ReadonlyArray<ReadonlyArray<Hex> | null>

export interface EventInfo {
  readonly name: string
  /** Topic filters, any of which a log must match; undefined: every log of the event. */
  readonly topics: ReadonlyArray<Topics> | undefined
  /** Fields selected for the event beyond the defaults. */
  readonly fields: Fields.Selected
}

/** A block handler: the blocks startBlock, startBlock + interval, ... up to endBlock. */
export interface BlockHandlerInfo {
  readonly name: string
  readonly startBlock: number
  readonly endBlock: number | undefined
  readonly interval: number
  readonly fields: ReadonlyArray<Fields.BlockField>
}

export interface ChainInfo {
  readonly chainId: number
  readonly contracts: ReadonlyArray<ContractInfo>
  readonly blockHandlers: ReadonlyArray<BlockHandlerInfo>
  /** Blocks below the head a reorg may reach (default 200). */
  readonly reorgWindow?: number | undefined
  /** Where a source may keep what it fetched for later runs (the RPC source does); none: fetch everything. */
  readonly cache?: ChainCache["Service"] | undefined
}

/** Whether block `n` is one `handler` runs for. */
export const handles = (handler: BlockHandlerInfo, n: number): boolean =>
  n >= handler.startBlock && (handler.endBlock === undefined || n <= handler.endBlock) && (n - handler.startBlock) % handler.interval === 0

/** The blocks of [from, to] some handler runs for, in order. */
export const handlerBlockNumbers = (handlers: ReadonlyArray<BlockHandlerInfo>, from: number, to: number): Array<number> => {
  if (handlers.length === 0) return []
  const wanted = new Set<number>()
  for (const h of handlers) {
    const last = h.endBlock === undefined ? to : Math.min(to, h.endBlock)
    const first = from <= h.startBlock ? h.startBlock : h.startBlock + Math.ceil((from - h.startBlock) / h.interval) * h.interval
    for (let n = first; n <= last; n += h.interval) wanted.add(n)
  }
  return [...wanted].sort((a, b) => a - b)
}

/** The block fields any of `handlers` selects. */
export const handlerFields = (handlers: ReadonlyArray<BlockHandlerInfo>): ReadonlyArray<Fields.BlockField> =>
  Fields.union(handlers.map((h) => ({ block: h.fields }))).block

/** Whether `topics` (a log's) match any of `filters` (undefined: no filter). */
export const matchesTopics = (filters: ReadonlyArray<Topics> | undefined, topics: ReadonlyArray<Hex>): boolean =>
  filters === undefined || filters.some((filter) => filter.every((allowed, i) => allowed === null || (topics[i] !== undefined && allowed.includes(topics[i]!.toLowerCase() as Hex))))

/** A source as a chain's config names it: started per chain, within the run's scope. */
export interface Source {
  readonly name: string
  readonly make: (chain: ChainInfo) => Effect.Effect<ChainSource, SourceError, Scope.Scope>
}

// ---------------------------------------------------------------------------------------------------------------
// In-memory source

/** An event as a test writes it; the rest of the fields are filled from its block. */
export interface MemoryEvent {
  readonly contractName: string
  readonly eventName: string
  readonly params: Readonly<Record<string, unknown>>
  readonly srcAddress?: string
  readonly transactionHash?: string
  /** The log's topics and data: needed to select them, and for topic filters to apply. */
  readonly topics?: ReadonlyArray<Hex>
  readonly data?: Hex
  /** Transaction and receipt fields, for events that select them. */
  readonly transaction?: Partial<Fields.TransactionSelectable & Fields.ReceiptSelectable>
}

export interface MemoryBlock {
  readonly number: number
  readonly hash?: string
  readonly timestamp?: number
  /** Block fields, for events and block handlers that select them. */
  readonly fields?: Partial<Fields.BlockSelectable>
  readonly events: ReadonlyArray<MemoryEvent>
}

/** A chain held in memory; tests change it (append, fork) while a run reads it. */
export interface MemoryChain {
  readonly source: Source
  /** Replaces every block from `blocks[0].number` on with `blocks`. */
  readonly setBlocks: (blocks: ReadonlyArray<MemoryBlock>) => void
  readonly setHead: (head: number) => void
}

export const memory = (blocks: ReadonlyArray<MemoryBlock>, options?: { readonly head?: number }): MemoryChain => {
  const byNumber = new Map<number, MemoryBlock>()
  const setBlocks = (next: ReadonlyArray<MemoryBlock>) => {
    const from = next[0]?.number
    if (from === undefined) return
    for (const n of [...byNumber.keys()]) if (n >= from) byNumber.delete(n)
    for (const block of next) byNumber.set(block.number, block)
  }
  setBlocks(blocks)
  let head = options?.head
  const currentHead = () => head ?? Math.max(0, ...byNumber.keys())
  const hashOf = (n: number) => byNumber.get(n)?.hash ?? defaultHash(n)
  const source: Source = {
    name: "memory",
    make: (chain) =>
      Effect.succeed<ChainSource>({
        head: Effect.sync(currentHead),
        blockHash: (n) => Effect.sync(() => (byNumber.has(n) || n <= currentHead() ? hashOf(n) : undefined)),
        fetch: ({ blockHandlers, contracts, fromBlock, hashesFrom, toBlock }) =>
          Effect.suspend(() => {
            const fail = (message: string) => Effect.fail(new SourceError({ chainId: chain.chainId, message }))
            if (toBlock > currentHead()) return fail(`block ${toBlock} is past the head ${currentHead()}`)
            const blockData = (n: number, fields: ReadonlyArray<Fields.BlockField>): BlockData | string => {
              const block = byNumber.get(n)
              const out: Record<string, unknown> = { number: n, hash: hashOf(n), timestamp: block?.timestamp ?? n }
              for (const field of fields) {
                const value = block?.fields?.[field]
                if (value === undefined) return `block ${n} has no ${field} (selected); give it in the block's fields`
                out[field] = value
              }
              return out as BlockData
            }
            const events: Array<Event> = []
            const out: Array<Block> = []
            for (let n = fromBlock; n <= toBlock; n++) {
              const block = byNumber.get(n)
              const events0 = block?.events ?? []
              if ((hashesFrom !== undefined && n >= hashesFrom) || (block !== undefined && events0.length > 0)) out.push({ number: n, hash: hashOf(n) })
              for (const [logIndex, e] of events0.entries()) {
                const srcAddress = e.srcAddress ?? addressOf(chain, e.contractName)
                // Like eth_getLogs: only the requested contracts' addresses and handled events, through their filters.
                const contract = contracts.find((c) => c.name === e.contractName && (c.wildcard || c.addresses.includes(srcAddress)))
                const info = contract?.events.find((ev) => ev.name === e.eventName)
                if (info === undefined) continue
                if (info.topics !== undefined) {
                  if (e.topics === undefined) return fail(`block ${n}, log ${logIndex}: ${e.contractName}.${e.eventName} has a topic filter but the memory event no topics`)
                  if (!matchesTopics(info.topics, e.topics)) continue
                }
                const where = `block ${n}, log ${logIndex} (${e.contractName}.${e.eventName})`
                const data = blockData(n, info.fields.block)
                if (typeof data === "string") return fail(`${where}: ${data}`)
                const transactionHash = e.transactionHash ?? `0x${n.toString(16).padStart(8, "0")}${logIndex.toString(16).padStart(56, "0")}`
                const transaction: Record<string, unknown> = { hash: transactionHash }
                for (const field of info.fields.transaction) {
                  const value = e.transaction?.[field]
                  if (value === undefined) return fail(`${where}: the event's transaction has no ${field} (selected)`)
                  transaction[field] = value
                }
                const log: Record<string, unknown> = {}
                for (const field of info.fields.log) {
                  const value = e[field]
                  if (value === undefined) return fail(`${where}: the event has no ${field} (selected)`)
                  log[field] = value
                }
                events.push({
                  chainId: chain.chainId,
                  contractName: e.contractName,
                  eventName: e.eventName,
                  srcAddress,
                  blockNumber: n,
                  blockHash: data.hash,
                  blockTimestamp: data.timestamp,
                  logIndex,
                  transactionHash,
                  params: e.params,
                  block: data,
                  transaction: transaction as unknown as Event["transaction"],
                  log
                })
              }
            }
            const fields = handlerFields(blockHandlers)
            const handlerBlocks: Array<BlockData> = []
            for (const n of handlerBlockNumbers(blockHandlers, fromBlock, toBlock)) {
              const data = blockData(n, fields)
              if (typeof data === "string") return fail(data)
              handlerBlocks.push(data)
            }
            return Effect.succeed({ events, blocks: out, handlerBlocks })
          })
      })
  }
  return { source, setBlocks, setHead: (h) => { head = h } }
}

const defaultHash = (n: number): Hex => `0x${n.toString(16).padStart(64, "0")}`

const addressOf = (chain: ChainInfo, contractName: string): string =>
  chain.contracts.find((c) => c.name === contractName)?.addresses[0] ?? "0x0000000000000000000000000000000000000000"
