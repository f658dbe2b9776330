/**
 * ChainCache: the port to a persistent cache of the chain data an RPC source fetched, per chain id, so a run over
 * blocks an earlier run fetched asks the node for no logs and no calls again. It holds, per eth_getLogs filter, the
 * block ranges fetched (each with the hash of its last block, which proves the logs below it unchanged while the
 * node still has it) and their raw logs; and entries kept by hash: headers, transactions, receipts, a filter's logs
 * of one block asked by its hash, call results at a block hash. Sources check and use it (internal/CachedRpc.ts);
 * a cache failure is never fatal. The Postgres/PGlite implementation is @chainstore/persistence's PgChainCache;
 * `layerMemory` keeps it in the process, for tests.
 */
import { Context, Effect, Layer } from "effect"
import type { ChainCacheError } from "./Errors.js"
import * as Coverage from "./internal/CacheCoverage.js"
import type { Log } from "./RpcClient.js"

/** A stored range of one filter's logs. */
export interface Range {
  readonly id: number
  readonly fromBlock: number
  readonly toBlock: number
  /** The hash of `toBlock` when the range was fetched. */
  readonly toHash: string
  /** How many logs it holds (what reading it costs). */
  readonly logCount: number
}

/** Blocks of a stored range to read the logs of. */
export interface Part {
  readonly rangeId: number
  readonly fromBlock: number
  readonly toBlock: number
}

export interface StoredLogs {
  /** The ranges read that still exist (one dropped meanwhile is not there, and its logs are not in `logs`). */
  readonly present: ReadonlySet<number>
  /** The parts' logs as the node returned them, in block and log index order. */
  readonly logs: ReadonlyArray<Log>
}

export interface NewRange {
  readonly filterKey: string
  readonly fromBlock: number
  readonly toBlock: number
  readonly toHash: string
  /** Every log of the filter in the range, in block and log index order. */
  readonly logs: ReadonlyArray<Log>
}

/** What an entry is: its key is a block hash (header), a transaction hash, CacheKeys' blockLogsKey or callKey. */
export type Kind = "header" | "transaction" | "receipt" | "blockLogs" | "call"

export interface Entry {
  readonly kind: Kind
  readonly key: string
  /** A JSON value as the node returned it (a call: its CallResult). */
  readonly value: unknown
}

/** One fetch's data, stored at once (one transaction). */
export interface Stored {
  readonly ranges: ReadonlyArray<NewRange>
  readonly entries: ReadonlyArray<Entry>
}

export interface ChainStatus {
  readonly chainId: number
  /** Filters with stored ranges, and the ranges. */
  readonly filters: number
  readonly ranges: number
  /** The blocks some filter's ranges cover, merged. */
  readonly covered: ReadonlyArray<Coverage.Interval>
  readonly logs: number
  readonly headers: number
  readonly transactions: number
  readonly receipts: number
  readonly calls: number
  /** What the stored data takes, about (payload sizes). */
  readonly bytes: number
}

export class ChainCache extends Context.Service<ChainCache, {
  /** The stored ranges of a filter that overlap [fromBlock, toBlock], by first block. */
  readonly ranges: (chainId: number, filterKey: string, fromBlock: number, toBlock: number) => Effect.Effect<ReadonlyArray<Range>, ChainCacheError>
  readonly logs: (parts: ReadonlyArray<Part>) => Effect.Effect<StoredLogs, ChainCacheError>
  /** The values stored under `keys`; absent keys are not in the map. */
  readonly entries: (chainId: number, kind: Kind, keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, unknown>, ChainCacheError>
  /** Stores ranges (replacing stored ones of the same filter they overlap) and entries (an existing key keeps its value). */
  readonly store: (chainId: number, stored: Stored) => Effect.Effect<void, ChainCacheError>
  /** Drops the chain's ranges that reach `blockNumber` or past it (a block there changed). */
  readonly dropFrom: (chainId: number, blockNumber: number) => Effect.Effect<void, ChainCacheError>
  readonly status: Effect.Effect<ReadonlyArray<ChainStatus>, ChainCacheError>
  /** Drops everything stored of a chain, or of every chain. */
  readonly clear: (chainId: number | undefined) => Effect.Effect<void, ChainCacheError>
}>()("chainstore/ChainCache") {}

/** Kept in the process: gone when it ends. */
export const layerMemory: Layer.Layer<ChainCache> = Layer.sync(ChainCache, () => {
  interface Held extends Range {
    readonly chainId: number
    readonly filterKey: string
    readonly logs: ReadonlyArray<Log>
    readonly bytes: number
  }
  const ranges = new Map<number, Held>()
  // Per chain, kind and key: the value and the range (or entries-only store) it came with.
  const entries = new Map<string, { readonly chainId: number; readonly kind: Kind; readonly value: unknown; readonly unit: number; readonly bytes: number }>()
  const units = new Map<number, number>()
  let nextId = 1
  const entryKey = (chainId: number, kind: Kind, key: string) => `${chainId}|${kind}|${key}`
  const dropRange = (id: number) => {
    ranges.delete(id)
    units.delete(id)
    for (const [key, entry] of entries) if (entry.unit === id) entries.delete(key)
  }

  return ChainCache.of({
    ranges: (chainId, filterKey, fromBlock, toBlock) =>
      Effect.sync(() =>
        [...ranges.values()]
          .filter((r) => r.chainId === chainId && r.filterKey === filterKey && r.toBlock >= fromBlock && r.fromBlock <= toBlock)
          .sort((a, b) => a.fromBlock - b.fromBlock)
          .map(({ fromBlock, id, logCount, toBlock, toHash }) => ({ id, fromBlock, toBlock, toHash, logCount }))
      ),
    logs: (parts) =>
      Effect.sync(() => {
        const present = new Set<number>()
        const logs: Array<Log> = []
        for (const part of parts) {
          const range = ranges.get(part.rangeId)
          if (range === undefined) continue
          present.add(part.rangeId)
          for (const log of range.logs) {
            const n = Number(log.blockNumber)
            if (n >= part.fromBlock && n <= part.toBlock) logs.push(log)
          }
        }
        return { present, logs: logs.sort((a, b) => Number(a.blockNumber) - Number(b.blockNumber) || Number(a.logIndex) - Number(b.logIndex)) }
      }),
    entries: (chainId, kind, keys) =>
      Effect.sync(() => {
        const out = new Map<string, unknown>()
        for (const key of keys) {
          const entry = entries.get(entryKey(chainId, kind, key))
          if (entry !== undefined) out.set(key, entry.value)
        }
        return out
      }),
    store: (chainId, stored) =>
      Effect.sync(() => {
        let unit: number | undefined
        for (const range of stored.ranges) {
          for (const held of [...ranges.values()]) {
            if (held.chainId === chainId && held.filterKey === range.filterKey && held.toBlock >= range.fromBlock && held.fromBlock <= range.toBlock) dropRange(held.id)
          }
          const id = nextId++
          unit ??= id
          ranges.set(id, { ...range, id, chainId, logCount: range.logs.length, bytes: JSON.stringify(range.logs).length })
        }
        if (stored.entries.length === 0) return
        if (unit === undefined) units.set((unit = nextId++), chainId)
        for (const entry of stored.entries) {
          const key = entryKey(chainId, entry.kind, entry.key)
          if (!entries.has(key)) entries.set(key, { chainId, kind: entry.kind, value: entry.value, unit, bytes: JSON.stringify(entry.value).length })
        }
      }),
    dropFrom: (chainId, blockNumber) =>
      Effect.sync(() => {
        for (const range of [...ranges.values()]) if (range.chainId === chainId && range.toBlock >= blockNumber) dropRange(range.id)
      }),
    status: Effect.sync(() => {
      const chains = new Set([...ranges.values()].map((r) => r.chainId).concat([...entries.values()].map((e) => e.chainId)))
      return [...chains].sort((a, b) => a - b).map((chainId): ChainStatus => {
        const own = [...ranges.values()].filter((r) => r.chainId === chainId)
        const kept = [...entries.values()].filter((e) => e.chainId === chainId)
        const count = (kind: Kind) => kept.filter((e) => e.kind === kind).length
        return {
          chainId,
          filters: new Set(own.map((r) => r.filterKey)).size,
          ranges: own.length,
          covered: Coverage.merge(own),
          logs: own.reduce((n, r) => n + r.logs.length, 0),
          headers: count("header"),
          transactions: count("transaction"),
          receipts: count("receipt"),
          calls: count("call"),
          bytes: own.reduce((n, r) => n + r.bytes, 0) + kept.reduce((n, e) => n + e.bytes, 0)
        }
      })
    }),
    clear: (chainId) =>
      Effect.sync(() => {
        for (const range of [...ranges.values()]) if (chainId === undefined || range.chainId === chainId) dropRange(range.id)
        for (const [unit, owner] of [...units]) if (chainId === undefined || owner === chainId) dropRange(unit)
      })
  })
})
