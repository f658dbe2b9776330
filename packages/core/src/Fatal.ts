/**
 * Fatal: the one program-wide failure every fatal path reports to (the writer, the processor, the fetchers).
 * The main fiber races processing against `await`, so the program ends at once with the first cause.
 */
import { Context, Deferred, Effect, Layer } from "effect"
import type * as Errors from "./Errors.js"

export class Fatal extends Context.Service<Fatal, {
  /** Reports a fatal error; the first one wins. */
  readonly fail: (error: Errors.Fatal) => Effect.Effect<void>
  /** Fails with the first fatal error once there is one. */
  readonly await: Effect.Effect<never, Errors.Fatal>
  readonly isFailed: Effect.Effect<boolean>
}>()("chainstore/Fatal") {}

export const make = Effect.gen(function*() {
  const deferred = yield* Deferred.make<never, Errors.Fatal>()
  return Fatal.of({
    fail: (error) => Deferred.fail(deferred, error).pipe(Effect.asVoid),
    await: Deferred.await(deferred),
    isFailed: Deferred.isDone(deferred)
  })
})

export const layer: Layer.Layer<Fatal> = Layer.effect(Fatal, make)
