/**
 * CapacityGate: bounds memory before each batch. Over the objects target, in order: evict committed entries
 * (keeping db-loaded ones), then db-loaded ones too, and only then — and only if a queued or in-flight batch
 * can free room — wait for the next commit and try again. A failed write fails the wait with its cause.
 */
import { Context, Effect, Layer, Metric } from "effect"
import { ChainstoreConfig } from "./Config.js"
import type { WriteFailed } from "./Errors.js"
import * as Metrics from "./Metrics.js"
import { PersistenceCycle } from "./PersistenceCycle.js"
import { Store } from "./Store.js"

export interface Stats {
  /** The most objects seen at the gate: the high-water mark of memory held, in objects. */
  readonly peakObjects: number
  readonly evictedCommitted: number
  readonly evictedLoaded: number
  readonly waits: number
}

export class CapacityGate extends Context.Service<CapacityGate, {
  readonly awaitCapacity: Effect.Effect<void, WriteFailed>
  readonly stats: Effect.Effect<Stats>
}>()("chainstore/CapacityGate") {}

export const make = Effect.gen(function*() {
  const store = yield* Store
  const cycle = yield* PersistenceCycle
  const { objectsTarget } = yield* ChainstoreConfig
  yield* Metric.update(Metrics.objectsTarget, objectsTarget)

  const overTarget = () => store.counts().total >= objectsTarget
  const stats = { peakObjects: 0, evictedCommitted: 0, evictedLoaded: 0, waits: 0 }

  const awaitCapacity: Effect.Effect<void, WriteFailed> = Effect.gen(function*() {
    stats.peakObjects = Math.max(stats.peakObjects, store.counts().total)
    while (overTarget()) {
      const committed = store.dropCommitted(true)
      stats.evictedCommitted += committed
      yield* Metric.update(Metrics.forTier(Metrics.evictions, "committed"), committed)
      if (!overTarget()) break
      const loaded = store.dropCommitted(false)
      stats.evictedLoaded += loaded
      yield* Metric.update(Metrics.forTier(Metrics.evictions, "db_loaded"), loaded)
      if (!overTarget()) break
      // Waiting only helps when a queued or in-flight batch's commit will make its changes evictable.
      if (!cycle.commitPending()) break
      stats.waits++
      yield* Metric.update(Metrics.capacityWaits, 1)
      yield* cycle.awaitCommit
    }
    yield* Metric.update(Metrics.objects, store.counts().total)
  }).pipe(Effect.withSpan("CapacityGate.awaitCapacity"))

  return CapacityGate.of({ awaitCapacity, stats: Effect.sync(() => ({ ...stats })) })
})

export const layer: Layer.Layer<CapacityGate, never, Store | PersistenceCycle> = Layer.effect(CapacityGate, make)
