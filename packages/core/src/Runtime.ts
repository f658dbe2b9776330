/**
 * Runtime: the services of one indexer run composed into a layer over a Storage, and `run` to drive it.
 */
import { Effect, Layer } from "effect"
import * as CapacityGate from "./CapacityGate.js"
import * as EffectCache from "./EffectCache.js"
import type * as Errors from "./Errors.js"
import type { Indexer } from "./Indexer.js"
import * as PersistenceCycle from "./PersistenceCycle.js"
import * as Processor from "./Processor.js"
import * as Storage from "./Storage.js"
import * as Store from "./Store.js"

export type Services =
  | Processor.Processor
  | CapacityGate.CapacityGate
  | EffectCache.EffectCache
  | PersistenceCycle.PersistenceCycle
  | Store.Store

/** Every service of a run of `indexer`, over the Storage provided. */
export const layer = (
  indexer: Indexer,
  options: Processor.Options = {}
): Layer.Layer<Services, Errors.StorageError | Errors.SourceError | Errors.BuildChangedError, Storage.Storage> =>
  Processor.layer(options).pipe(
    Layer.provideMerge(CapacityGate.layer),
    Layer.provideMerge(EffectCache.layer),
    Layer.provideMerge(PersistenceCycle.layer),
    Layer.provideMerge(Store.layer(indexer)),
    Layer.provide(Storage.layerRetrying)
  )

/** Runs `indexer` until its chains end (or it is stopped), over the Storage provided. */
export const run = (
  indexer: Indexer,
  options: Processor.Options = {}
): Effect.Effect<Processor.RunResult, Errors.Fatal | Errors.BuildChangedError, Storage.Storage> =>
  Effect.gen(function*() {
    const processor = yield* Processor.Processor
    return yield* processor.run
  }).pipe(Effect.provide(layer(indexer, options)))
