/**
 * ChainstoreConfig: the runtime's knobs, with defaults; `layerFromEnv` reads the environment.
 */
import { Config, Context, Duration, Effect, Layer } from "effect"

export interface Options {
  /** Capacity gate limit: entity changes + effect entries + queued items held in memory. */
  readonly objectsTarget: number
  /** Most events in one batch. */
  readonly batchSize: number
  /** Most blocks one source request covers. */
  readonly fetchBlockRange: number
  /** How often chain metadata is written alone when no batch flows. */
  readonly chainMetaInterval: Duration.Duration
  /** Attempts of a storage call (a write: its whole transaction) that fails with a retryable error, first included. */
  readonly storageAttempts: number
  readonly storageRetryBase: Duration.Duration
  /** How often history outside every reorg window is pruned. */
  readonly pruneInterval: Duration.Duration
  /** Wait for each batch's write before the next batch (no overlap): only to measure what the overlap buys. */
  readonly inlineWrites: boolean
}

export const defaults: Options = {
  objectsTarget: 100_000,
  batchSize: 5_000,
  fetchBlockRange: 2_000,
  chainMetaInterval: Duration.millis(500),
  storageAttempts: 5,
  storageRetryBase: Duration.millis(200),
  pruneInterval: Duration.seconds(30),
  inlineWrites: false
}

/** The config in force; without a layer, the defaults. */
export const ChainstoreConfig = Context.Reference<Options>("chainstore/Config", { defaultValue: () => defaults })

/** The defaults with some options replaced. */
export const layer = (options: Partial<Options>): Layer.Layer<never> =>
  Layer.succeed(ChainstoreConfig, { ...defaults, ...options })

/** Defaults, then `CHAINSTORE_IN_MEMORY_OBJECTS_TARGET`, then the options given. */
export const layerFromEnv = (options: Partial<Options> = {}): Layer.Layer<never, Config.ConfigError> =>
  Layer.effect(
    ChainstoreConfig,
    Effect.gen(function*() {
      const objectsTarget = yield* Config.Int("CHAINSTORE_IN_MEMORY_OBJECTS_TARGET").pipe(
        Config.withDefault(defaults.objectsTarget)
      )
      return { ...defaults, objectsTarget, ...options }
    })
  )
