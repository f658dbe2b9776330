/**
 * RateLimiter: at most `calls` per window of `per`, shared by every caller of one limiter (effects, endpoints).
 */
import { Clock, Duration, Effect } from "effect"

export interface RateLimit {
  readonly calls: number
  readonly per: Duration.Input
}

/** An effect that waits for a free call in the current window (fixed windows, so bursts stay within the limit). */
export const make = (limit: RateLimit): Effect.Effect<void> => {
  const per = Duration.toMillis(Duration.fromInputUnsafe(limit.per))
  let windowStart = Number.NEGATIVE_INFINITY
  let available = 0
  return Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (now >= windowStart + per) {
        windowStart = now
        available = limit.calls
      }
      if (available > 0) {
        available--
        return
      }
      yield* Effect.sleep(Duration.millis(windowStart + per - now))
    }
  })
}
