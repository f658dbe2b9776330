/**
 * Output: how the CLI ends — the stop signals it honours, the one clear message a failure prints (secrets
 * redacted), and the exit code.
 */
import { Cause, Effect, Exit } from "effect"
import { redact } from "./Redact.js"

/** Calls `stop` on the first SIGINT/SIGTERM; a second one exits at once. Handlers are removed with the scope. */
export const onStopSignal = (stop: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    let stopping = false
    const handler = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(130)
      stopping = true
      Effect.runForkWith(context)(Effect.andThen(Effect.logInfo(`${signal}: taking no more batches; flushing what is processed…`), stop))
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.on("SIGINT", handler)
        process.on("SIGTERM", handler)
      }),
      () => Effect.sync(() => {
        process.off("SIGINT", handler)
        process.off("SIGTERM", handler)
      })
    )
  })

/** The message a failed command prints: the first typed error's own words, else the cause, never a secret. */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = cause.reasons.find((r) => r._tag === "Fail")
  const error = failure?._tag === "Fail" ? failure.error : undefined
  if (typeof error === "string") return redact(error)
  if (error instanceof Error) {
    const tag = (error as { readonly _tag?: unknown })._tag
    const path = (error as { readonly path?: unknown }).path
    const where = typeof path === "string" ? `${path}: ` : ""
    return redact(`${typeof tag === "string" ? `${tag}: ` : ""}${where}${error.message}`)
  }
  return redact(Cause.pretty(cause))
}

/** Exit code for a command's exit: 0 on success, 1 on any failure. */
export const exitCode = (exit: Exit.Exit<unknown, unknown>): number => (Exit.isSuccess(exit) ? 0 : 1)
