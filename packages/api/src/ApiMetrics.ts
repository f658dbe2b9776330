/**
 * ApiMetrics: the Prometheus series of the query API, next to the runtime's on the same /metrics.
 */
import { Metric } from "effect"

export const requests = Metric.counter("chainstore_api_requests", { description: "GraphQL operations executed (each live-query re-run counts)", incremental: true })
export const statements = Metric.counter("chainstore_api_statements", { description: "SQL statements the API ran (nested reads are batched: one per level and field)", incremental: true })
export const requestDuration = Metric.histogram("chainstore_api_request_duration_ms", {
  description: "Time to execute one GraphQL operation, its snapshot transaction included",
  boundaries: Metric.exponentialBoundaries({ start: 0.5, factor: 2, count: 16 })
})
export const liveQueries = Metric.gauge("chainstore_api_live_queries", { description: "Live queries (subscriptions) open now" })
