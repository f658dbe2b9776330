/**
 * EffectCache: memoises user effects per input. Lookup: memory → the stored row decoded with the current
 * output schema (a row that no longer decodes is an invalidation and is recomputed) → the user's function.
 * Concurrent calls with one input run once; `cache: false` outputs stay in memory only; rate limits hold
 * per effect. The calling item's checkpoint stamps the output; handlers never see it.
 */
import { Context, Deferred, Effect, Layer, Metric } from "effect"
import * as Change from "./Change.js"
import { EffectCallError } from "./Errors.js"
import * as ExternalEffect from "./ExternalEffect.js"
import * as Metrics from "./Metrics.js"
import * as RateLimiter from "./RateLimiter.js"
import { Storage } from "./Storage.js"
import { Store } from "./Store.js"

export interface Request {
  readonly effect: ExternalEffect.Any
  readonly input: unknown
  readonly checkpointId: bigint
  /** The input's key, when the caller has it already (keys are computed once per call on the hot path). */
  readonly key?: string
}

export class EffectCache extends Context.Service<EffectCache, {
  readonly call: <I, O, E>(
    effect: ExternalEffect.ExternalEffect<string, I, O, E>,
    input: I,
    checkpointId: bigint,
    /** The input's key when the caller has it already (from the preload pass): not computed again. */
    knownKey?: string
  ) => Effect.Effect<O, EffectCallError>
  /** Resolves many inputs at once: one storage read per effect for the keys not in memory, runs concurrently. */
  readonly prefetch: (requests: ReadonlyArray<Request>) => Effect.Effect<void>
  /** Calls, cache hits, misses and invalidations per effect since the start. */
  readonly stats: Effect.Effect<ReadonlyMap<string, Counters>>
  /** Moves the counters into the Prometheus metrics (once per batch: the hot path only counts). */
  readonly publishMetrics: Effect.Effect<void>
}>()("chainstore/EffectCache") {}

export interface Counters {
  hits: number
  misses: number
  calls: number
  invalidations: number
}

export const make = Effect.gen(function*() {
  const store = yield* Store
  const storage = yield* Storage
  // Per effect, per input key: calls running now, so concurrent calls with one input run once.
  const inFlight = new Map<string, Map<string, Deferred.Deferred<unknown, EffectCallError>>>()
  const inFlightOf = (name: string) => {
    let running = inFlight.get(name)
    if (running === undefined) inFlight.set(name, (running = new Map()))
    return running
  }
  const limiters = new Map<string, Effect.Effect<void>>()
  const counters = new Map<string, Counters>()
  const published = new Map<string, Counters>()
  const countersOf = (name: string): Counters => {
    let c = counters.get(name)
    if (c === undefined) counters.set(name, (c = { hits: 0, misses: 0, calls: 0, invalidations: 0 }))
    return c
  }

  const callError = (effect: ExternalEffect.Any, inputKey: string, cause: unknown) =>
    new EffectCallError({ effect: effect.name, inputKey, cause })


  /** Waits for a free call in the effect's rate-limit window. */
  const acquire = (effect: ExternalEffect.Any): Effect.Effect<void> => {
    if (effect.rateLimit === undefined) return Effect.void
    let limiter = limiters.get(effect.name)
    if (limiter === undefined) limiters.set(effect.name, (limiter = RateLimiter.make(effect.rateLimit)))
    return limiter
  }

  /** Decodes stored rows into memory; returns the keys that still need a run. */
  const loadStored = (effect: ExternalEffect.Any, keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<string>> => {
    if (!effect.cache || keys.length === 0 || store.isComplete(effect.name)) return Effect.succeed(keys)
    return Effect.gen(function*() {
      const rows = yield* storage.loadEffectEntries(effect.name, keys).pipe(
        Effect.catch((e) => Effect.as(Effect.logWarning(`Failed to load the ${effect.name} effect cache: ${e.message}`), []))
      )
      const found = new Set<string>()
      for (const row of rows) {
        const decoded = yield* Effect.result(effect.decodeOutput(row.output))
        if (decoded._tag === "Success") {
          store.initEffectFromDb(effect.name, row.key, decoded.success)
          found.add(row.key)
        } else {
          countersOf(effect.name).invalidations++
        }
      }
      countersOf(effect.name).hits += found.size
      return keys.filter((k) => !found.has(k))
    })
  }

  /** Runs the user's function for one key, once even when called concurrently. */
  const run = (effect: ExternalEffect.Any, key: string, input: unknown, checkpointId: bigint): Effect.Effect<unknown, EffectCallError> =>
    Effect.suspend(() => {
      const cached = store.getEffectOutput(effect.name, key)
      if (cached?._tag === "Set") return Effect.succeed(cached.entity)
      const runningNow = inFlightOf(effect.name)
      const running = runningNow.get(key)
      if (running !== undefined) return Deferred.await(running)
      return Effect.gen(function*() {
        const deferred = yield* Deferred.make<unknown, EffectCallError>()
        runningNow.set(key, deferred)
        const result = yield* Effect.gen(function*() {
          const missing = yield* loadStored(effect, [key])
          const stored = store.getEffectOutput(effect.name, key)
          if (missing.length === 0 && stored !== undefined) return Change.value(stored)
          countersOf(effect.name).misses++
          yield* acquire(effect)
          countersOf(effect.name).calls++
          const output = yield* effect.run(input).pipe(
            Effect.catchCause((cause) => Effect.fail(callError(effect, key, cause)))
          )
          // An output its schema cannot encode fails this call now, naming the input, not the background write later.
          if (effect.cache) {
            yield* Effect.try({ try: () => effect.encodeOutput(output), catch: (cause) => callError(effect, key, cause) })
          }
          store.setEffectOutput(effect.name, key, output, checkpointId)
          return output
        }).pipe(
          Effect.exit,
          Effect.ensuring(Effect.sync(() => runningNow.delete(key)))
        )
        yield* Deferred.done(deferred, result)
        return yield* result
      })
    })

  /**
   * Runs the user's function for a key `prefetch` looked for in storage already (in bulk) and found missing; its
   * failure, or an output its schema cannot encode, is left for the handler's own call to meet.
   */
  const runMissing = (effect: ExternalEffect.Any, key: string, request: Request): Effect.Effect<void> =>
    Effect.suspend(() => {
      const counters = countersOf(effect.name)
      counters.misses++
      return acquire(effect).pipe(
        Effect.andThen(Effect.suspend(() => {
          counters.calls++
          return effect.run(request.input)
        })),
        Effect.flatMap((output) =>
          Effect.sync(() => {
            if (!effect.cache || ExternalEffect.encodes(effect, output)) store.setEffectOutput(effect.name, key, output, request.checkpointId)
          })
        ),
        Effect.ignore
      )
    })

  /** Resolves keys with one `runMany`; outputs that fail (or do not encode) are left for the handler's own call. */
  const runMany = (effect: ExternalEffect.Any, requests: ReadonlyArray<readonly [string, Request]>): Effect.Effect<void> =>
    Effect.gen(function*() {
      const counters = countersOf(effect.name)
      counters.misses += requests.length
      yield* acquire(effect)
      counters.calls += requests.length
      const results = yield* Effect.result(effect.runMany!(requests.map(([, r]) => r.input)))
      if (results._tag === "Failure") return
      for (const [i, [key, request]] of requests.entries()) {
        const result = results.success[i]
        if (result === undefined || result._tag === "Failure") continue
        if (effect.cache && !ExternalEffect.encodes(effect, result.success)) continue
        store.setEffectOutput(effect.name, key, result.success, request.checkpointId)
      }
    })

  const call = <I, O, E>(effect: ExternalEffect.ExternalEffect<string, I, O, E>, input: I, checkpointId: bigint, knownKey?: string) => {
    const key = knownKey ?? ExternalEffect.keyOf(effect, input)
    if (typeof key !== "string") return Effect.fail(callError(effect as ExternalEffect.Any, "<unencodable input>", key.cause))
    const cached = store.getEffectOutput(effect.name, key)
    if (cached?._tag === "Set") {
      countersOf(effect.name).hits++
      return Effect.succeed(cached.entity as O)
    }
    return run(effect as ExternalEffect.Any, key, input, checkpointId) as Effect.Effect<O, EffectCallError>
  }

  const prefetch = Effect.fn("EffectCache.prefetch")(function*(requests: ReadonlyArray<Request>) {
    const byEffect = new Map<string, { effect: ExternalEffect.Any; pending: Map<string, Request> }>()
    for (const request of requests) {
      const key = request.key ?? ExternalEffect.keyOf(request.effect, request.input)
      if (typeof key !== "string") continue
      const cached = store.getEffectOutput(request.effect.name, key)
      if (cached?._tag === "Set" || inFlight.get(request.effect.name)?.has(key) === true) continue
      let group = byEffect.get(request.effect.name)
      if (group === undefined) byEffect.set(request.effect.name, (group = { effect: request.effect, pending: new Map() }))
      if (!group.pending.has(key)) group.pending.set(key, request)
    }
    yield* Effect.forEach(byEffect.values(), ({ effect, pending }) =>
      Effect.gen(function*() {
        const missing = yield* loadStored(effect, [...pending.keys()])
        if (effect.runMany !== undefined && missing.length > 0) return yield* runMany(effect, missing.map((key) => [key, pending.get(key)!]))
        yield* Effect.forEach(missing, (key) => runMissing(effect, key, pending.get(key)!), { concurrency: "unbounded", discard: true })
      }), { concurrency: "unbounded", discard: true })
  })

  const publishMetrics = Effect.suspend(() =>
    Effect.forEach(counters, ([name, now]) => {
      const before = published.get(name) ?? { hits: 0, misses: 0, calls: 0, invalidations: 0 }
      published.set(name, { ...now })
      return Effect.all([
        Metric.update(Metrics.forEffect(Metrics.effectHits, name), now.hits - before.hits),
        Metric.update(Metrics.forEffect(Metrics.effectMisses, name), now.misses - before.misses),
        Metric.update(Metrics.forEffect(Metrics.effectCalls, name), now.calls - before.calls),
        Metric.update(Metrics.forEffect(Metrics.effectInvalidations, name), now.invalidations - before.invalidations)
      ], { discard: true })
    }, { discard: true }))

  return EffectCache.of({
    call,
    prefetch,
    stats: Effect.sync(() => new Map([...counters].map(([name, c]) => [name, { ...c }]))),
    publishMetrics
  })
})

export const layer: Layer.Layer<EffectCache, never, Store | Storage> = Layer.effect(EffectCache, make)
