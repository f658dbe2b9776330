/**
 * Metrics: every Prometheus series chainstore exports (design.md §6), as effect Metrics.
 */
import { Effect, Metric } from "effect"

export const eventsProcessed = Metric.counter("chainstore_events_processed", { description: "Events whose handlers ran", incremental: true })
export const batchesProcessed = Metric.counter("chainstore_batches_processed", { description: "Batches processed", incremental: true })
export const processingDuration = Metric.histogram("chainstore_processing_duration_ms", {
  description: "Time to process one batch (preload + handlers)",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 16 })
})
export const writeDuration = Metric.histogram("chainstore_write_duration_ms", {
  description: "Time of one storage write transaction",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 16 })
})
export const rowsWritten = Metric.counter("chainstore_rows_written", { description: "Entity changes and effect rows written", incremental: true })
export const writeQueueDepth = Metric.gauge("chainstore_write_queue_depth", { description: "Processed batches waiting to be written" })
export const objects = Metric.gauge("chainstore_objects", { description: "Objects held in memory (entity changes + effect entries + queued items)" })
export const objectsTarget = Metric.gauge("chainstore_objects_target", { description: "Capacity gate limit" })
export const evictions = Metric.counter("chainstore_evictions", { description: "Entries evicted from memory, per tier", incremental: true })
export const capacityWaits = Metric.counter("chainstore_capacity_waits", { description: "Times processing waited for a commit to free memory", incremental: true })
export const effectCalls = Metric.counter("chainstore_effect_calls", { description: "Effect runs (cache misses that ran the user's function)", incremental: true })
export const effectHits = Metric.counter("chainstore_effect_cache_hits", { description: "Effect calls answered from memory or the database", incremental: true })
export const effectMisses = Metric.counter("chainstore_effect_cache_misses", { description: "Effect calls not in the cache", incremental: true })
export const effectInvalidations = Metric.counter("chainstore_effect_cache_invalidations", { description: "Stored effect outputs that no longer decode", incremental: true })
export const reorgs = Metric.counter("chainstore_reorgs", { description: "Reorgs detected and rolled back", incremental: true })
export const rollbackDepth = Metric.gauge("chainstore_rollback_depth_blocks", { description: "Depth in blocks of the last rollback" })
export const processedBlock = Metric.gauge("chainstore_processed_block", { description: "Last block processed, per chain" })
export const committedBlock = Metric.gauge("chainstore_committed_block", { description: "Last block committed, per chain" })

export const rpcRequests = Metric.counter("chainstore_rpc_requests", {
  description: "JSON-RPC requests sent (a batch counts once), per chain, method and endpoint",
  incremental: true
})
export const rpcErrors = Metric.counter("chainstore_rpc_errors", {
  description: "Failed JSON-RPC requests and batch items, per chain, endpoint and class (RateLimited, TooLarge, Transient, Permanent, MissingItem)",
  incremental: true
})
export const rpcRetries = Metric.counter("chainstore_rpc_retries", { description: "JSON-RPC requests sent again, per chain and method", incremental: true })
export const rpcLatency = Metric.histogram("chainstore_rpc_latency_ms", {
  description: "Time of one JSON-RPC request, per chain and method",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 16 })
})
export const rpcLogsRange = Metric.gauge("chainstore_rpc_logs_range_blocks", { description: "Blocks per eth_getLogs request now, per chain" })
export const pgliteMemory = Metric.gauge("chainstore_pglite_memory_bytes", {
  description: "WebAssembly memory of the embedded PGlite worker (its Postgres heap and buffers; it only grows)"
})
export const chainCacheHits = Metric.counter("chainstore_chain_cache_hits", {
  description: "Reads answered from the chain cache, per chain and kind (logs: one filter's range; blockLogs, headers, transactions, receipts, calls: one item)",
  incremental: true
})
export const chainCacheMisses = Metric.counter("chainstore_chain_cache_misses", {
  description: "Reads the chain cache could not answer (asked of the node), per chain and kind",
  incremental: true
})
export const rpcBatchSize = Metric.gauge("chainstore_rpc_batch_size", { description: "Calls per JSON-RPC batch now (learned from refusals), per chain" })
export const rpcUnavailable = Metric.gauge("chainstore_rpc_unavailable", { description: "1 while a chain's RPC requests keep failing, else 0" })
export const rpcUnavailableSince = Metric.gauge("chainstore_rpc_unavailable_since_seconds", {
  description: "Unix time the current RPC outage of a chain began (0 when available)"
})

/** A metric with the `chain` attribute set. */
export const forChain = <I, S>(metric: Metric.Metric<I, S>, chainId: number): Metric.Metric<I, S> =>
  Metric.withAttributes(metric, { chain: String(chainId) })

/** A metric with the `effect` attribute set. */
export const forEffect = <I, S>(metric: Metric.Metric<I, S>, effect: string): Metric.Metric<I, S> =>
  Metric.withAttributes(metric, { effect })

/** A metric with the `tier` attribute set (eviction tiers: committed, db_loaded). */
export const forTier = <I, S>(metric: Metric.Metric<I, S>, tier: "committed" | "db_loaded"): Metric.Metric<I, S> =>
  Metric.withAttributes(metric, { tier })

export const recordWrite = (millis: number, rows: number): Effect.Effect<void> =>
  Effect.andThen(Metric.update(writeDuration, millis), Metric.update(rowsWritten, rows))
