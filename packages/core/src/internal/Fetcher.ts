/**
 * Fetcher: one cursor per chain over its Source, and the assembly of batches from them — whole blocks in
 * (timestamp, chain, block) order, one checkpoint per (chain, block) with events, plus one per hash-only block
 * inside the chain's reorg window, ids continuing from the processed frontier.
 */
import { Effect, Result } from "effect"
import * as Batch from "../Batch.js"
import { DeepReorgError, SourceError } from "../Errors.js"
import { blockItem, type Event, type Item } from "../Event.js"
import * as Indexer from "../Indexer.js"
import { type BlockHandlerInfo, type ChainSource, type ContractInfo, handles } from "../Source.js"
import type { ChainMeta, ChainState } from "../Storage.js"

/** A fetched block: its events, then its block handlers' items; none for a hash-only block (timestamp -Infinity). */
interface BufferedBlock {
  readonly number: number
  hash: string
  timestamp: number
  readonly items: Array<Item>
}

/** One chain's position: what was handed out, what was fetched ahead, and the head as last seen. */
export interface ChainCursor {
  readonly chainId: number
  readonly source: ChainSource
  readonly startBlock: number
  readonly endBlock: number | undefined
  readonly reorgWindow: number
  /** Contracts and their addresses, factory registrations included. */
  contracts: ReadonlyArray<ContractInfo>
  readonly blockHandlers: ReadonlyArray<BlockHandlerInfo>
  /** Addresses handlers registered (this run's and resumed ones), oldest first. */
  registrations: Array<Batch.Registration>
  /** Blocks per source request (100 to start): sized from the density seen so a request holds about two batches. */
  range: number
  /** Progress when the last batch was built, to truncate it. */
  progressBefore: number
  eventsBefore: number
  /** Last block handed out in a batch. */
  progress: number
  /** Last block fetched into the buffer. */
  fetchedTo: number
  head: number
  eventsProcessed: number
  firstEventBlock: number | undefined
  readyAt: Date | undefined
  buffer: Array<BufferedBlock>
  bufferedEvents: number
  /** Hashes of fetched blocks inside the reorg window, for the reorg detector. */
  readonly hashes: Map<number, string>
  /** Checkpoints of this chain still inside its window, oldest first; see `safeCheckpoint`. */
  windowCheckpoints: Array<{ readonly id: bigint; readonly block: number }>
  /** The newest checkpoint of this chain that fell out of its window. */
  lastSafeCheckpoint: bigint | undefined
}

export interface Options {
  readonly batchSize: number
  readonly fetchBlockRange: number
  /** Stop each chain at its head instead of following it. */
  readonly exitAtHead: boolean
}

export type Next =
  | { readonly _tag: "Batch"; readonly batch: Batch.Batch }
  /** A block hash changed inside the window: roll back to `forkBlock`, the last block both chains share. */
  | { readonly _tag: "Reorg"; readonly chainId: number; readonly forkBlock: number; readonly detectedAt: number }
  /** Nothing new yet; try again after a pause. */
  | { readonly _tag: "Idle" }
  /** Every chain reached its end. */
  | { readonly _tag: "Done" }

/** The chain's contracts as its source fetches them; a filter that does not compile names its field. */
export const contractsOf = (indexer: Indexer.Indexer, chain: Indexer.Chain): Effect.Effect<ReadonlyArray<ContractInfo>, SourceError> =>
  Effect.forEach(chain.contracts, (contract) => {
    const info = Indexer.contractInfo(indexer, contract)
    return Result.isSuccess(info) ? Effect.succeed(info.success) :
      Effect.fail(new SourceError({ chainId: chain.id, message: `contract "${contract.name}": ${info.failure.field} ${info.failure.message}` }))
  })

export const makeCursor = (
  chain: Indexer.Chain,
  contracts: ReadonlyArray<ContractInfo>,
  source: ChainSource,
  resumed: ChainState | undefined,
  storedHashes: ReadonlyArray<{ readonly number: number; readonly hash: string }>,
  registrations: ReadonlyArray<Batch.Registration>
): ChainCursor => {
  const progress = resumed?.progressBlock ?? chain.startBlock - 1
  const cursor: ChainCursor = {
    chainId: chain.id,
    source,
    startBlock: chain.startBlock,
    endBlock: chain.endBlock === undefined ? source.endBlock : Math.min(chain.endBlock, source.endBlock ?? chain.endBlock),
    reorgWindow: chain.reorgWindow ?? 200,
    contracts,
    blockHandlers: Indexer.blockHandlerInfos(chain),
    registrations: [],
    range: 100,
    progressBefore: progress,
    eventsBefore: resumed?.eventsProcessed ?? 0,
    progress,
    fetchedTo: progress,
    head: 0,
    eventsProcessed: resumed?.eventsProcessed ?? 0,
    firstEventBlock: resumed?.firstEventBlock,
    readyAt: resumed?.readyAt,
    buffer: [],
    bufferedEvents: 0,
    hashes: new Map(storedHashes.filter((b) => b.number <= progress).map((b) => [b.number, b.hash])),
    windowCheckpoints: [],
    lastSafeCheckpoint: undefined
  }
  baseContracts.set(cursor, contracts)
  addRegistrations(cursor, registrations)
  return cursor
}

const baseContracts = new WeakMap<ChainCursor, ReadonlyArray<ContractInfo>>()

/** The chain's contracts with every registered address added. */
const contractsWith = (base: ReadonlyArray<ContractInfo>, registrations: ReadonlyArray<Batch.Registration>): ReadonlyArray<ContractInfo> =>
  base.map((c) => {
    const added = registrations.filter((r) => r.contractName === c.name).map((r) => r.address)
    return added.length === 0 ? c : { ...c, addresses: [...new Set([...c.addresses, ...added])] }
  })

/** Adds registered addresses: later requests fetch their events too. */
export const addRegistrations = (cursor: ChainCursor, registrations: ReadonlyArray<Batch.Registration>): void => {
  if (registrations.length === 0) return
  for (const r of registrations) cursor.registrations.push(r)
  cursor.contracts = contractsWith(baseContracts.get(cursor) ?? cursor.contracts, cursor.registrations)
}

/** The registrations whose address the chain does not index yet for that contract (each address once). */
export const freshRegistrations = (cursor: ChainCursor, registrations: ReadonlyArray<Batch.Registration>): Array<Batch.Registration> => {
  const fresh: Array<Batch.Registration> = []
  for (const r of registrations) {
    const contract = cursor.contracts.find((c) => c.name === r.contractName)
    // A wildcard contract already indexes every address.
    const known = contract !== undefined && (contract.wildcard || contract.addresses.includes(r.address))
    if (!known && !fresh.some((f) => f.contractName === r.contractName && f.address === r.address)) fresh.push(r)
  }
  return fresh
}

/**
 * The events of `block` emitted by newly registered addresses, which the block was fetched without: a factory
 * child's events in its creation block, to be handled with that block's other events.
 */
export const fetchRegistered = (
  cursor: ChainCursor,
  block: number,
  registrations: ReadonlyArray<Batch.Registration>
): Effect.Effect<ReadonlyArray<Event>, SourceError> =>
  Effect.suspend(() => {
    const contracts = contractsWith(baseContracts.get(cursor)!.map((c) => ({ ...c, addresses: [] })), registrations)
      .filter((c) => c.addresses.length > 0 && c.events.length > 0)
    if (contracts.length === 0) return Effect.succeed([])
    return Effect.map(
      cursor.source.fetch({ fromBlock: block, toBlock: block, hashesFrom: undefined, contracts, blockHandlers: [] }),
      (result) => result.events.filter((e) => e.blockNumber === block)
    )
  })

/** The last block this chain will process in this run (undefined: follows the head forever). */
const targetOf = (cursor: ChainCursor, exitAtHead: boolean): number | undefined =>
  cursor.endBlock !== undefined ? (exitAtHead ? Math.min(cursor.endBlock, cursor.head) : cursor.endBlock) :
  exitAtHead ? cursor.head : undefined

export const isDone = (cursor: ChainCursor, exitAtHead: boolean): boolean => {
  const target = targetOf(cursor, exitAtHead)
  return target !== undefined && cursor.head > 0 && cursor.progress >= target
}

type Detected = { readonly forkBlock: number; readonly detectedAt: number }

/**
 * Walks back from `from` over the stored hashes inside the window to the last block whose hash the source
 * still reports: the fork point. None left inside the window means the reorg is deeper than it.
 */
const findForkPoint = (cursor: ChainCursor, from: number): Effect.Effect<number, SourceError | DeepReorgError> =>
  Effect.gen(function*() {
    const known = [...cursor.hashes.keys()].filter((n) => n <= from).sort((a, b) => b - a)
    for (const n of known) {
      if ((yield* cursor.source.blockHash(n)) === cursor.hashes.get(n)) return n
    }
    const lowest = known[known.length - 1] ?? from
    if (lowest <= cursor.startBlock) return cursor.startBlock - 1
    return yield* new DeepReorgError({ chainId: cursor.chainId, blockNumber: from, depth: from - lowest + 1, reorgWindow: cursor.reorgWindow })
  })

/** Fetches ahead until the buffer holds enough events or the chain's known head is reached. */
const fill = (cursor: ChainCursor, options: Options): Effect.Effect<Detected | undefined, SourceError | DeepReorgError> =>
  Effect.gen(function*() {
    if (cursor.head === 0 || (cursor.fetchedTo >= cursor.head && cursor.buffer.length === 0)) {
      cursor.head = yield* cursor.source.head
    }
    const limit = Math.min(cursor.head, cursor.endBlock ?? Number.POSITIVE_INFINITY)
    while (cursor.bufferedEvents < options.batchSize && cursor.fetchedTo < limit) {
      const fromBlock = cursor.fetchedTo + 1
      const toBlock = Math.min(limit, cursor.fetchedTo + Math.min(cursor.range, options.fetchBlockRange))
      const windowStart = cursor.head - cursor.reorgWindow
      const inWindow = toBlock >= windowStart
      // The parent of the range must still be the block we saw; otherwise the chain reorganised under us.
      const parent = cursor.hashes.get(fromBlock - 1)
      if (parent !== undefined && inWindow && (yield* cursor.source.blockHash(fromBlock - 1)) !== parent) {
        return { forkBlock: yield* findForkPoint(cursor, fromBlock - 1), detectedAt: fromBlock - 1 }
      }
      const result = yield* cursor.source.fetch({
        fromBlock,
        toBlock,
        hashesFrom: inWindow ? Math.max(fromBlock, windowStart) : undefined,
        contracts: cursor.contracts,
        blockHandlers: cursor.blockHandlers
      })
      const covered = Math.min(toBlock, Math.max(fromBlock, result.toBlock ?? toBlock))
      for (const block of result.blocks) {
        if (block.number >= windowStart && block.number <= covered) cursor.hashes.set(block.number, block.hash)
      }
      for (const n of cursor.hashes.keys()) if (n < windowStart) cursor.hashes.delete(n)
      const blocks = new Map<number, BufferedBlock>()
      for (const block of result.blocks) {
        if (block.number >= windowStart && block.number <= covered) {
          blocks.set(block.number, { number: block.number, hash: block.hash, timestamp: Number.NEGATIVE_INFINITY, items: [] })
        }
      }
      const blockOf = (number: number, hash: string, timestamp: number): BufferedBlock => {
        let block = blocks.get(number)
        if (block === undefined) blocks.set(number, (block = { number, hash, timestamp, items: [] }))
        else if (block.items.length === 0) {
          block.hash = hash
          block.timestamp = timestamp
        }
        return block
      }
      let items = 0
      for (const event of result.events) {
        if (event.blockNumber > covered) continue
        blockOf(event.blockNumber, event.blockHash, event.blockTimestamp).items.push(event)
        items++
      }
      // Block handlers run after the block's events, in the order the chain lists them.
      for (const data of result.handlerBlocks ?? []) {
        if (data.number > covered) continue
        const block = blockOf(data.number, data.hash, data.timestamp)
        for (const handler of cursor.blockHandlers) {
          if (!handles(handler, data.number)) continue
          block.items.push(blockItem(cursor.chainId, handler.name, data))
          items++
        }
      }
      for (const block of [...blocks.values()].sort((a, b) => a.number - b.number)) {
        // Hash-only blocks are kept only inside the reorg window, where the detector needs them.
        if (block.items.length === 0 && block.number < windowStart) continue
        cursor.buffer.push(block)
        cursor.bufferedEvents += block.items.length
      }
      cursor.fetchedTo = covered
      // Memory held ahead of processing follows the batch size, not the chain's density.
      const perBlock = items / (covered - fromBlock + 1)
      cursor.range = perBlock > 0 ? Math.max(1, Math.ceil((2 * options.batchSize) / perBlock)) : Number.POSITIVE_INFINITY
    }
    return undefined
  })

/** Builds the next batch from the chains' buffers; checkpoint ids continue after `processed`. */
export const nextBatch = (
  cursors: ReadonlyArray<ChainCursor>,
  processed: bigint,
  options: Options
): Effect.Effect<Next, SourceError | DeepReorgError> =>
  Effect.gen(function*() {
    const active = cursors.filter((c) => !isDone(c, options.exitAtHead))
    if (active.length === 0 && cursors.every((c) => c.head > 0)) return { _tag: "Done" } as const
    const detected = yield* Effect.forEach(active, (c) => fill(c, options), { concurrency: "unbounded" })
    for (const c of active) {
      c.progressBefore = c.progress
      c.eventsBefore = c.eventsProcessed
    }
    for (const [i, reorg] of detected.entries()) {
      if (reorg !== undefined) return { _tag: "Reorg", chainId: active[i]!.chainId, ...reorg } as const
    }
    if (cursors.every((c) => isDone(c, options.exitAtHead))) return { _tag: "Done" } as const

    const out = Batch.checkpoints()
    const taken = new Map<ChainCursor, number>()
    let next = processed
    const positions = new Map<ChainCursor, number>(active.map((c) => [c, 0]))
    while (out.items.length < options.batchSize) {
      let best: ChainCursor | undefined
      let bestBlock: BufferedBlock | undefined
      for (const cursor of active) {
        const block = cursor.buffer[positions.get(cursor)!]
        if (block === undefined) continue
        if (bestBlock === undefined || before(block, cursor.chainId, bestBlock, best!.chainId)) {
          best = cursor
          bestBlock = block
        }
      }
      if (best === undefined || bestBlock === undefined) break
      positions.set(best, positions.get(best)! + 1)
      next += 1n
      Batch.addCheckpoint(out, next, best.chainId, bestBlock.number, bestBlock.hash, bestBlock.items)
      taken.set(best, bestBlock.number)
      best.windowCheckpoints.push({ id: next, block: bestBlock.number })
      if (bestBlock.items.length > 0 && best.firstEventBlock === undefined) best.firstEventBlock = bestBlock.number
      best.eventsProcessed += bestBlock.items.length
    }

    const progress: Array<Batch.ChainProgress> = []
    let isInReorgThreshold = false
    for (const cursor of active) {
      const position = positions.get(cursor)!
      cursor.buffer.splice(0, position)
      let bufferedEvents = 0
      for (const block of cursor.buffer) bufferedEvents += block.items.length
      cursor.bufferedEvents = bufferedEvents
      // With the buffer drained, every fetched block (with or without events) is processed.
      const reached = cursor.buffer.length === 0 ? cursor.fetchedTo : taken.get(cursor) ?? cursor.progress
      while (cursor.windowCheckpoints.length > 0 && cursor.windowCheckpoints[0]!.block <= cursor.head - cursor.reorgWindow) {
        cursor.lastSafeCheckpoint = cursor.windowCheckpoints.shift()!.id
      }
      if (reached <= cursor.progress && !taken.has(cursor)) continue
      cursor.progress = Math.max(reached, cursor.progress)
      if (reached > cursor.head - cursor.reorgWindow) isInReorgThreshold = true
      if (cursor.readyAt === undefined && isDone(cursor, true)) cursor.readyAt = new Date()
      progress.push({
        chainId: cursor.chainId,
        progressBlock: reached,
        sourceBlock: cursor.head,
        eventsProcessed: cursor.eventsProcessed,
        firstEventBlock: cursor.firstEventBlock
      })
    }
    if (progress.length === 0) return { _tag: "Idle" } as const
    return {
      _tag: "Batch",
      batch: {
        ...out,
        isInReorgThreshold,
        progress,
        registrations: []
      }
    } as const
  })

/** Chain metadata as the cursors see it now. */
export const chainMeta = (cursors: ReadonlyArray<ChainCursor>): ReadonlyArray<ChainMeta> =>
  cursors.map((c) => ({
    chainId: c.chainId,
    sourceBlock: c.head,
    bufferBlock: c.fetchedTo,
    firstEventBlock: c.firstEventBlock,
    readyAt: c.readyAt
  }))

const before = (a: BufferedBlock, aChain: number, b: BufferedBlock, bChain: number): boolean =>
  a.timestamp !== b.timestamp ? a.timestamp < b.timestamp : aChain !== bChain ? aChain < bChain : a.number < b.number

/**
 * Rewinds a chain to `block` (a reorg's fork point or a rollback's progress): buffered and remembered blocks
 * after it are forgotten, and fetching resumes right after it.
 */
export const rewind = (cursor: ChainCursor, block: number): void => {
  cursor.buffer = cursor.buffer.filter((b) => b.number <= block)
  cursor.bufferedEvents = cursor.buffer.reduce((n, b) => n + b.items.length, 0)
  cursor.fetchedTo = Math.min(cursor.fetchedTo, block)
  if (cursor.progress > block) cursor.progress = block
  for (const n of [...cursor.hashes.keys()]) if (n > block) cursor.hashes.delete(n)
  cursor.windowCheckpoints = cursor.windowCheckpoints.filter((c) => c.block <= block)
  const registered = cursor.registrations.filter((r) => r.blockNumber <= block)
  if (registered.length !== cursor.registrations.length) {
    cursor.registrations = registered
    cursor.contracts = contractsWith(baseContracts.get(cursor)!, registered)
  }
}

/**
 * The newest checkpoint no rollback can go below: every chain's last checkpoint that left its window
 * (undefined while some chain with checkpoints has none out of its window yet).
 */
export const safeCheckpoint = (cursors: ReadonlyArray<ChainCursor>): bigint | undefined => {
  let safe: bigint | undefined
  for (const c of cursors) {
    if (c.lastSafeCheckpoint === undefined) {
      if (c.windowCheckpoints.length > 0) return undefined
      continue
    }
    if (safe === undefined || c.lastSafeCheckpoint < safe) safe = c.lastSafeCheckpoint
  }
  return safe
}

/**
 * Cuts a batch after its first `keep` items (a handler registered a contract: later blocks must be fetched again
 * with its address; `keep` ends a block). Cursors go back to the last block kept; the dropped blocks are fetched again.
 */
export const truncate = (cursors: ReadonlyArray<ChainCursor>, batch: Batch.Batch, keep: number): Batch.Batch => {
  let items = 0
  let checkpoints = 0
  // `keep` ends a block, so the kept checkpoints are those up to the one holding the last kept item.
  while (checkpoints < batch.checkpointIds.length && items < keep) {
    items += batch.checkpointEventsProcessed[checkpoints]!
    checkpoints++
  }
  const lastBlock = new Map<number, number>()
  for (let i = 0; i < checkpoints; i++) lastBlock.set(batch.checkpointChainIds[i]!, batch.checkpointBlockNumbers[i]!)
  const keptItems = batch.items.slice(0, items)
  const progress: Array<Batch.ChainProgress> = []
  for (const cursor of cursors) {
    if (!batch.progress.some((p) => p.chainId === cursor.chainId)) continue
    const block = lastBlock.get(cursor.chainId) ?? cursor.progressBefore
    rewind(cursor, block)
    cursor.progress = block
    cursor.eventsProcessed = cursor.eventsBefore + keptItems.filter((e) => e.chainId === cursor.chainId).length
    if (cursor.firstEventBlock !== undefined && cursor.firstEventBlock > block) cursor.firstEventBlock = undefined
    if (block > cursor.progressBefore || lastBlock.has(cursor.chainId)) {
      progress.push({ chainId: cursor.chainId, progressBlock: block, sourceBlock: cursor.head, eventsProcessed: cursor.eventsProcessed, firstEventBlock: cursor.firstEventBlock })
    }
  }
  return {
    ...batch,
    items: keptItems,
    checkpointIds: batch.checkpointIds.slice(0, checkpoints),
    checkpointChainIds: batch.checkpointChainIds.slice(0, checkpoints),
    checkpointBlockNumbers: batch.checkpointBlockNumbers.slice(0, checkpoints),
    checkpointBlockHashes: batch.checkpointBlockHashes.slice(0, checkpoints),
    checkpointEventsProcessed: batch.checkpointEventsProcessed.slice(0, checkpoints),
    progress
  }
}
