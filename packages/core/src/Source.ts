/**
 * Source: where a chain's events come from. A pull API, so the fetcher can rewind after a reorg.
 * Also a deterministic in-memory source for tests.
 */
import { Effect, Scope } from "effect"
import type { Abi } from "abitype"
import { SourceError } from "./Errors.js"
import type { Event } from "./Event.js"

export interface Block {
  readonly number: number
  readonly hash: string
}

export interface FetchResult {
  /** Decoded events of the range covered, ordered by block number then log index. */
  readonly events: ReadonlyArray<Event>
  /** Hashes of the covered blocks with events, and of every covered block from `hashesFrom` on. */
  readonly blocks: ReadonlyArray<Block>
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
}

/** A running source for one chain. */
export interface ChainSource {
  /** The chain's last block, for a source whose chain ends (the simulated one). */
  readonly endBlock?: number
  readonly head: Effect.Effect<number, SourceError>
  readonly fetch: (request: FetchRequest) => Effect.Effect<FetchResult, SourceError>
  readonly blockHash: (blockNumber: number) => Effect.Effect<string | undefined, SourceError>
}

export interface ContractInfo {
  readonly name: string
  readonly abi: Abi
  readonly addresses: ReadonlyArray<string>
  readonly events: ReadonlyArray<string>
}

export interface ChainInfo {
  readonly chainId: number
  readonly contracts: ReadonlyArray<ContractInfo>
}

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
}

export interface MemoryBlock {
  readonly number: number
  readonly hash?: string
  readonly timestamp?: number
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
  const hashOf = (block: MemoryBlock) => block.hash ?? defaultHash(block.number)
  const source: Source = {
    name: "memory",
    make: (chain) =>
      Effect.succeed<ChainSource>({
        head: Effect.sync(currentHead),
        blockHash: (n) => Effect.sync(() => {
          const block = byNumber.get(n)
          return block === undefined ? (n <= currentHead() ? defaultHash(n) : undefined) : hashOf(block)
        }),
        fetch: ({ contracts, fromBlock, hashesFrom, toBlock }) =>
          Effect.suspend(() => {
            if (toBlock > currentHead()) {
              return Effect.fail(new SourceError({ chainId: chain.chainId, message: `block ${toBlock} is past the head ${currentHead()}` }))
            }
            const events: Array<Event> = []
            const out: Array<Block> = []
            for (let n = fromBlock; n <= toBlock; n++) {
              const block = byNumber.get(n)
              const events0 = block?.events ?? []
              const allBlockHashes = hashesFrom !== undefined && n >= hashesFrom
              if (block !== undefined && (allBlockHashes || events0.length > 0)) out.push({ number: n, hash: hashOf(block) })
              else if (allBlockHashes) out.push({ number: n, hash: defaultHash(n) })
              events0.forEach((e, logIndex) => {
                const srcAddress = e.srcAddress ?? addressOf(chain, e.contractName)
                // Like eth_getLogs: only the requested contracts' addresses.
                if (!contracts.some((c) => c.name === e.contractName && c.addresses.includes(srcAddress))) return
                events.push({
                  chainId: chain.chainId,
                  contractName: e.contractName,
                  eventName: e.eventName,
                  srcAddress,
                  blockNumber: n,
                  blockHash: hashOf(block!),
                  blockTimestamp: block!.timestamp ?? n,
                  logIndex,
                  transactionHash: e.transactionHash ?? `0x${n.toString(16).padStart(8, "0")}${logIndex.toString(16).padStart(56, "0")}`,
                  params: e.params
                })
              })
            }
            return Effect.succeed({ events, blocks: out })
          })
      })
  }
  return { source, setBlocks, setHead: (h) => { head = h } }
}

const defaultHash = (n: number): string => `0x${n.toString(16).padStart(64, "0")}`

const addressOf = (chain: ChainInfo, contractName: string): string =>
  chain.contracts.find((c) => c.name === contractName)?.addresses[0] ?? "0x0000000000000000000000000000000000000000"
