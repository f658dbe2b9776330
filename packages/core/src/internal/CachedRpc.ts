/**
 * CachedRpc: an RPC source's reads of one chain through its ChainCache, when it has one. A filter's logs come from
 * its stored ranges where they cover the start of a request, each range used only while the node gives its last
 * block the hash stored with it (asked once per run for a range below the reorg window, at every use inside it): one
 * block's hash vouches for every block before it. A different hash drops the chain's ranges from that range's start.
 * One request reads (and checks) the ranges it starts with up to about as many logs as one eth_getLogs reply holds,
 * and is answered up to there, as by a provider's shortened range: a request spanning the whole chain does not load
 * it at once. What the cache lacks comes from the node and is stored, in the background, once the source found the
 * whole fetch consistent (`commit`); a few stores at once, holding a bounded amount of logs, else the fetch waits. Headers, transactions, receipts, logs asked by block hash and call results are kept by hash,
 * so they are right whenever that hash is asked for. The first cache failure turns the cache off for the run, with
 * one warning: every read then goes to the node.
 */
import { Cause, Duration, Effect, FiberSet, Metric, Option, type Scope, Semaphore } from "effect"
import type { Hex } from "viem"
import type * as ChainCache from "../ChainCache.js"
import type { ChainCacheError, RpcError } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import type * as RpcClient from "../RpcClient.js"
import type { CallResult, ContractCall } from "../Source.js"
import * as Coverage from "./CacheCoverage.js"
import * as Keys from "./CacheKeys.js"

type Raw = Readonly<Record<string, unknown>>

/** The transactions and receipts a block's logs want, by transaction hash. */
export interface Wanted {
  readonly hash: Hex
  readonly transactions: ReadonlySet<Hex>
  readonly receipts: ReadonlySet<Hex>
}

export interface Bodies {
  readonly transactions: Map<Hex, Raw>
  readonly receipts: Map<Hex, Raw>
}

/** One attempt at fetching a range: its reads, and what came from the node, kept for `commit`. */
export interface Fetch {
  /** A filter's logs from `fromBlock`: the cached ranges covering its start, else the node's up to the next cached range. */
  readonly logs: (filter: RpcClient.LogFilter, fromBlock: number, toBlock: number) => Effect.Effect<RpcClient.Logs, RpcError>
  readonly blockLogs: (filter: RpcClient.LogFilter, blockHash: Hex) => Effect.Effect<ReadonlyArray<RpcClient.Log>, RpcError>
  /** Whether some filter's logs came from the node: `commit` then needs the hash of the fetch's last block. */
  readonly fetchedLogs: () => boolean
  /** Headers of `numbers`; a block whose hash its logs give (`hashes`) from the cache when it is there. */
  readonly headers: (numbers: ReadonlyArray<number>, hashes: ReadonlyMap<number, Hex>) => Effect.Effect<ReadonlyMap<number, RpcClient.Header>, RpcError>
  /** The cached transactions and receipts of `wanted`, those of the block hash given. */
  readonly bodies: (wanted: Iterable<Wanted>) => Effect.Effect<Bodies>
  /** Stores what came from the node: the logs up to `toBlock` (whose hash is `toHash`), and the entries read by hash. */
  readonly commit: (toBlock: number, toHash: Hex | undefined, bodies: Bodies) => Effect.Effect<void>
}

export interface CachedRpc {
  readonly fetch: () => Fetch
  /** Contract calls: cached results by block hash, the rest through `read` (a call by number at the block's hash now). */
  readonly calls: <E>(
    calls: ReadonlyArray<ContractCall>,
    read: (calls: ReadonlyArray<ContractCall>) => Effect.Effect<ReadonlyArray<CallResult>, E>
  ) => Effect.Effect<ReadonlyArray<CallResult>, E | RpcError>
}

export interface Options {
  readonly chainId: number
  readonly cache: ChainCache.ChainCache["Service"] | undefined
  /** Blocks below the head a reorg may reach. */
  readonly reorgWindow: number
  /** The head as the source last saw it. */
  readonly head: () => number
}

/** Stores in flight at once, and the bytes of logs they hold, about; a fetch waits for one to end past either. */
const storesInFlight = 4
const storeKiBInFlight = 64 * 1024
/** Logs one read from the cache aims at: a request spanning more reads the rest in later requests. */
const logsPerRead = 10_000
/** How long the end of a run waits for the stores in flight. */
const storesGrace = Duration.seconds(30)

/** The stores of a run finish before the scope closes. */
export const make = (client: RpcClient.RpcClient["Service"], options: Options): Effect.Effect<CachedRpc, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { cache, chainId } = options
    const chain = String(chainId)
    let enabled = cache !== undefined
    const stores = yield* FiberSet.make<void>()
    const storing = yield* Semaphore.make(storesInFlight)
    const storingKiB = yield* Semaphore.make(storeKiBInFlight)
    // Added after the set's own finalizer, so it runs first: the stores end before the set would interrupt them (a store
    // still hanging then, on a database that stopped answering, is rolled back: its blocks are fetched again next time).
    yield* Effect.addFinalizer(() => Effect.ignore(Effect.timeoutOption(FiberSet.awaitEmpty(stores), storesGrace)))
    /** Hashes the node gave for blocks below the reorg window then: they no longer change. */
    const settled = new Map<number, string>()

    const count = (metric: typeof Metrics.chainCacheHits, kind: string, n: number) =>
      n === 0 ? Effect.void : Metric.update(Metric.withAttributes(metric, { chain, kind }), n)
    const counted = (kind: string, hits: number, misses: number) =>
      Effect.andThen(count(Metrics.chainCacheHits, kind, hits), count(Metrics.chainCacheMisses, kind, misses))

    /** A cache operation; none when the cache is off or fails, even by a defect (then off for the run, warned once). */
    const use = <A>(operation: (cache: ChainCache.ChainCache["Service"]) => Effect.Effect<A, ChainCacheError>): Effect.Effect<Option.Option<A>> =>
      !enabled || cache === undefined ? Effect.succeedNone : operation(cache).pipe(
        Effect.map(Option.some),
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.gen(function*() {
            const error = Cause.squash(cause)
            if (enabled) {
              yield* Effect.logWarning(`Chain ${chainId}: the chain cache failed (${error instanceof Error ? error.message : String(error)}); reading from the RPC for the rest of this run`)
            }
            enabled = false
            return Option.none<A>()
          })
        )
      )

    const store = (stored: ChainCache.Stored): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (!enabled || (stored.ranges.length === 0 && stored.entries.length === 0)) return Effect.void
        const kib = Math.min(storeKiBInFlight, Math.ceil(sizeOf(stored) / 1024))
        return Effect.uninterruptibleMask((restore) =>
          Effect.andThen(
            restore(Effect.andThen(storing.take(1), Effect.onInterrupt(storingKiB.take(kib), () => storing.release(1)))),
            FiberSet.run(stores, Effect.ensuring(Effect.asVoid(use((c) => c.store(chainId, stored))), Effect.andThen(storingKiB.release(kib), storing.release(1))))
          )
        ).pipe(Effect.asVoid)
      })

    /**
     * The ranges whose last block the node still gives the stored hash. A range past the head is left aside; one with
     * another hash drops the chain's ranges from its start (with every range reaching there).
     */
    const usable = (ranges: ReadonlyArray<ChainCache.Range>): Effect.Effect<ReadonlyArray<ChainCache.Range>, RpcError> =>
      Effect.gen(function*() {
        const head = options.head()
        const reachable = ranges.filter((r) => r.toBlock <= head)
        const ask = [...new Set(reachable.filter((r) => !settled.has(r.toBlock)).map((r) => r.toBlock))].sort((a, b) => a - b)
        const asked = ask.length === 0 ? new Map<number, RpcClient.Header>() : yield* client.headers(ask)
        const hashOf = (n: number) => settled.get(n) ?? asked.get(n)!.hash.toLowerCase()
        for (const n of ask) if (n <= head - options.reorgWindow) settled.set(n, hashOf(n))
        const changed = reachable.filter((r) => hashOf(r.toBlock) !== r.toHash.toLowerCase())
        if (changed.length === 0) return reachable
        const from = Math.min(...changed.map((r) => r.fromBlock))
        yield* Effect.logInfo(`Chain ${chainId}: the cached logs from block ${from} are of blocks the chain no longer has; fetching them again`)
        yield* use((c) => c.dropFrom(chainId, from))
        return reachable.filter((r) => r.toBlock < from)
      })

    const fetch = (): Fetch => {
      /** Per filter whose logs came from the node: its key, first block and logs (and those asked by block hash). */
      const fromNode = new Map<RpcClient.LogFilter, { readonly key: string; readonly fromBlock: number; readonly logs: Array<RpcClient.Log> }>()
      const fromCache = new Set<RpcClient.LogFilter>()
      const entries: Array<ChainCache.Entry> = []
      const cachedBodies = new Set<Hex>()

      const logs = (filter: RpcClient.LogFilter, fromBlock: number, toBlock: number): Effect.Effect<RpcClient.Logs, RpcError> =>
        Effect.gen(function*() {
          if (!enabled) return yield* client.logs(filter, fromBlock, toBlock)
          const key = Keys.filterKey(filter)
          let until = toBlock
          const stored = yield* use((c) => c.ranges(chainId, key, fromBlock, toBlock))
          if (Option.isSome(stored) && stored.value.length > 0) {
            // Read (and checked) now: the ranges up to about logsPerRead logs; the request is answered up to there.
            const end = Coverage.readEnd(stored.value, fromBlock, toBlock, logsPerRead)
            const parts = Coverage.plan(yield* usable(stored.value.filter((r) => r.fromBlock <= end)), fromBlock, end)
            const cached = Coverage.leadingCached(parts)
            if (cached.length === 0) until = parts[0]!.toBlock
            else {
              const read = yield* use((c) => c.logs(cached.map((p) => ({ rangeId: p.range.id, fromBlock: p.fromBlock, toBlock: p.toBlock }))))
              // A range dropped since it was listed (a reorg seen by another run, the size limit): the node answers.
              if (Option.isSome(read) && cached.every((p) => read.value.present.has(p.range.id))) {
                fromCache.add(filter)
                yield* counted("logs", 1, 0)
                return { logs: read.value.logs, toBlock: cached.at(-1)!.toBlock }
              }
            }
          }
          yield* counted("logs", 0, 1)
          const fetched = yield* client.logs(filter, fromBlock, until)
          fromNode.set(filter, { key, fromBlock, logs: [...fetched.logs] })
          return fetched
        })

      const blockLogs = (filter: RpcClient.LogFilter, blockHash: Hex): Effect.Effect<ReadonlyArray<RpcClient.Log>, RpcError> =>
        Effect.gen(function*() {
          if (!enabled) return yield* client.blockLogs(filter, blockHash)
          const key = Keys.blockLogsKey(Keys.filterKey(filter), blockHash)
          const stored = yield* use((c) => c.entries(chainId, "blockLogs", [key]))
          const value = Option.isSome(stored) ? stored.value.get(key) : undefined
          if (Array.isArray(value)) {
            yield* counted("blockLogs", 1, 0)
            return value as ReadonlyArray<RpcClient.Log>
          }
          yield* counted("blockLogs", 0, 1)
          const found = yield* client.blockLogs(filter, blockHash)
          entries.push({ kind: "blockLogs", key, value: found })
          // Logs the range's eth_getLogs missed (a node behind) belong to the range stored.
          fromNode.get(filter)?.logs.push(...found)
          const first = found[0]
          if (first !== undefined && fromCache.has(filter)) yield* use((c) => c.dropFrom(chainId, Number(first.blockNumber)))
          return found
        })

      const headers = (numbers: ReadonlyArray<number>, hashes: ReadonlyMap<number, Hex>): Effect.Effect<ReadonlyMap<number, RpcClient.Header>, RpcError> =>
        Effect.gen(function*() {
          const out = new Map<number, RpcClient.Header>()
          const known = enabled ? numbers.filter((n) => hashes.has(n)) : []
          if (known.length > 0) {
            const stored = yield* use((c) => c.entries(chainId, "header", known.map((n) => hashes.get(n)!)))
            if (Option.isSome(stored)) {
              for (const n of known) {
                const header = stored.value.get(hashes.get(n)!) as RpcClient.Header | undefined
                if (header !== undefined && Number(header.number) === n && lower(header.hash) === hashes.get(n)) out.set(n, header)
              }
            }
            yield* counted("headers", out.size, known.length - out.size)
          }
          const rest = numbers.filter((n) => !out.has(n))
          if (rest.length === 0) return out
          for (const [n, header] of yield* client.headers(rest)) {
            out.set(n, header)
            if (enabled && hashes.get(n) === lower(header.hash)) entries.push({ kind: "header", key: hashes.get(n)!, value: header })
          }
          return out
        })

      const bodies = (wanted: Iterable<Wanted>): Effect.Effect<Bodies> =>
        Effect.gen(function*() {
          const out: Bodies = { transactions: new Map(), receipts: new Map() }
          if (!enabled) return out
          const blocks = [...wanted]
          for (const [kind, field] of [["transaction", "transactions"], ["receipt", "receipts"]] as const) {
            const keys = blocks.flatMap((b) => [...b[field]])
            if (keys.length === 0) continue
            const stored = yield* use((c) => c.entries(chainId, kind, keys))
            if (Option.isSome(stored)) {
              for (const block of blocks) {
                for (const hash of block[field]) {
                  const value = stored.value.get(hash) as Raw | undefined
                  if (value !== undefined && lower(value.blockHash) === block.hash) out[field].set(hash, value)
                }
              }
            }
            for (const hash of out[field].keys()) cachedBodies.add(hash)
            yield* counted(field, out[field].size, keys.length - out[field].size)
          }
          return out
        })

      const commit = (toBlock: number, toHash: Hex | undefined, fetched: Bodies): Effect.Effect<void> =>
        Effect.suspend(() => {
          if (!enabled) return Effect.void
          const ranges: Array<ChainCache.NewRange> = []
          if (toHash !== undefined) {
            for (const { fromBlock, key, logs } of fromNode.values()) {
              ranges.push({ filterKey: key, fromBlock, toBlock, toHash: lower(toHash), logs: orderedUpTo(logs, toBlock) })
            }
          }
          for (const [hash, value] of fetched.transactions) if (!cachedBodies.has(hash)) entries.push({ kind: "transaction", key: hash, value })
          for (const [hash, value] of fetched.receipts) if (!cachedBodies.has(hash)) entries.push({ kind: "receipt", key: hash, value })
          return store({ ranges, entries })
        })

      return { logs, blockLogs, fetchedLogs: () => enabled && fromNode.size > 0, headers, bodies, commit }
    }

    const calls = <E>(
      calls: ReadonlyArray<ContractCall>,
      read: (calls: ReadonlyArray<ContractCall>) => Effect.Effect<ReadonlyArray<CallResult>, E>
    ): Effect.Effect<ReadonlyArray<CallResult>, E | RpcError> =>
      Effect.gen(function*() {
        if (!enabled) return yield* read(calls)
        const head = options.head()
        // A call by number is keyed, and made, at the hash the node gives that block now.
        const numbers = [...new Set(calls.filter((c) => c.blockHash === undefined && c.blockNumber <= head).map((c) => c.blockNumber))].sort((a, b) => a - b)
        const headers = numbers.length === 0 ? new Map<number, RpcClient.Header>() : yield* client.headers(numbers)
        const resolved = calls.map((c): ContractCall => (c.blockHash === undefined && headers.has(c.blockNumber) ? { ...c, blockHash: headers.get(c.blockNumber)!.hash } : c))
        const keys = resolved.map((c) => (c.blockHash === undefined ? undefined : Keys.callKey(c.blockHash, c.to, c.data)))
        const stored = yield* use((c) => c.entries(chainId, "call", keys.filter((k) => k !== undefined)))
        const results = new Array<CallResult>(calls.length)
        const missing: Array<number> = []
        for (const [i, key] of keys.entries()) {
          const value = key === undefined || Option.isNone(stored) ? undefined : stored.value.get(key)
          if (isCallResult(value)) results[i] = value
          else missing.push(i)
        }
        yield* counted("calls", calls.length - missing.length, missing.length)
        if (missing.length === 0) return results
        const fetched = yield* read(missing.map((i) => resolved[i]!))
        const entries: Array<ChainCache.Entry> = []
        for (const [k, i] of missing.entries()) {
          results[i] = fetched[k]!
          if (keys[i] !== undefined) entries.push({ kind: "call", key: keys[i], value: fetched[k] })
        }
        yield* store({ ranges: [], entries })
        return results
      })

    return { fetch, calls }
  })

const lower = (value: unknown): Hex => (typeof value === "string" ? value.toLowerCase() : "") as Hex

/**
 * The logs up to `toBlock` in block and log index order, each position once: in one pass, without sorting or copying
 * when they come so (as the node gives them), the block number read once per block.
 */
const orderedUpTo = (logs: ReadonlyArray<RpcClient.Log>, toBlock: number): ReadonlyArray<RpcClient.Log> => {
  let kept = 0
  let inOrder = true
  let blockText: string | undefined
  let block = -1
  let index = -1
  for (const log of logs) {
    if (log.blockNumber !== blockText) {
      blockText = log.blockNumber
      const n = Number(blockText)
      if (n < block) {
        inOrder = false
        break
      }
      if (n > block) index = -1
      block = n
    }
    const i = Number(log.logIndex)
    if (i <= index) {
      inOrder = false
      break
    }
    index = i
    if (block <= toBlock) kept++
  }
  if (inOrder) return kept === logs.length ? logs : logs.filter((log) => Number(log.blockNumber) <= toBlock)
  const byPosition = (a: RpcClient.Log, b: RpcClient.Log) => Number(a.blockNumber) - Number(b.blockNumber) || Number(a.logIndex) - Number(b.logIndex)
  const sorted = logs.filter((log) => Number(log.blockNumber) <= toBlock).sort(byPosition)
  return sorted.filter((log, i) => i === 0 || byPosition(log, sorted[i - 1]!) !== 0)
}

/** The bytes a store holds until it is written, about: its logs as objects, its entries. */
const sizeOf = (stored: ChainCache.Stored): number => {
  let bytes = stored.entries.length * 1024
  for (const range of stored.ranges) for (const log of range.logs) bytes += 600 + log.data.length
  return bytes
}

const isCallResult = (value: unknown): value is CallResult =>
  typeof value === "object" && value !== null && ((value as CallResult)._tag === "Success" || (value as CallResult)._tag === "Reverted") &&
  typeof (value as CallResult).data === "string"
