/**
 * RpcEndpoints: the state of a chain's RPC endpoints — who is cooling down after failures (capped exponential
 * backoff), who asked us to wait (a rate limit's Retry-After), and the pace of requests: a rate limit doubles the gap
 * between request starts, each success shrinks it (AIMD: a provider limiting our rate keeps us below it; an odd 429
 * costs a few requests' worth of pace). The first endpoint ready, in configured order, serves: a failed one is left
 * for the next and taken back when its cooldown ends. Pure data; times are Clock milliseconds passed in.
 */

export interface Tuning {
  /** First backoff after a failure, doubled per consecutive failure up to `maxBackoff`. */
  readonly retryBase: number
  readonly maxBackoff: number
  /** The gap between request starts a first rate limit sets, and the most it grows to. */
  readonly minPace: number
  readonly maxPace: number
}

export interface Endpoint {
  readonly url: string
  /** Scheme and host only: what logs and metrics may show. */
  readonly name: string
  /** Consecutive failures; sets the cooldown. */
  failures: number
  coolUntil: number
  /** No request before this: the wait a rate limit named. */
  pausedUntil: number
  /** Gap between request starts (0: none). */
  pace: number
  nextStart: number
}

/** What each success leaves of the pace. */
const paceRecovery = 0.7

export const make = (url: string, name: string): Endpoint => ({
  url,
  name,
  failures: 0,
  coolUntil: 0,
  pausedUntil: 0,
  pace: 0,
  nextStart: 0
})

/** The first ready endpoint in configured order (`notBefore`: a request's own waits), else the time the earliest one will be. */
export const pick = (endpoints: ReadonlyArray<Endpoint>, now: number, notBefore: ReadonlyMap<Endpoint, number>): Endpoint | number => {
  let earliest = Number.POSITIVE_INFINITY
  for (const e of endpoints) {
    const ready = Math.max(e.coolUntil, e.pausedUntil, notBefore.get(e) ?? 0)
    if (ready <= now) return e
    if (ready < earliest) earliest = ready
  }
  return earliest
}

/** Milliseconds to wait before the endpoint's pace admits the next request. */
export const paceGap = (e: Endpoint, now: number): number => Math.max(0, e.nextStart - now)

/** A request starts now. */
export const started = (e: Endpoint, now: number): void => {
  e.nextStart = now + e.pace
}

export const succeeded = (e: Endpoint): void => {
  e.failures = 0
  e.coolUntil = 0
  e.pace = e.pace * paceRecovery < 1 ? 0 : Math.ceil(e.pace * paceRecovery)
}

/** Exponential backoff for the n-th consecutive failure, `random` in [0, 1) spreading it ±25%, capped at `maxBackoff`. */
export const backoff = (tuning: Tuning, n: number, random: number): number =>
  // Whole milliseconds: the Clock reads whole ones, so a fractional deadline would never be reached by a sleep.
  Math.ceil(Math.min(tuning.maxBackoff, tuning.retryBase * 2 ** Math.max(0, n - 1) * (0.75 + random / 2)))

/** A failed request (transient, missing item, permanent): the endpoint cools down before it is asked again. */
export const failed = (e: Endpoint, now: number, tuning: Tuning, random: number): void => {
  e.failures++
  e.coolUntil = now + backoff(tuning, e.failures, random)
}

/**
 * A rate limit: twice the gap between requests, and no request before the wait the provider named, if it did (a wait
 * it did not name is the limited request's own backoff, not the endpoint's).
 */
export const rateLimited = (e: Endpoint, now: number, waitMs: number | undefined, tuning: Tuning): void => {
  if (waitMs !== undefined) e.pausedUntil = Math.max(e.pausedUntil, now + Math.ceil(waitMs))
  e.pace = Math.min(tuning.maxPace, Math.max(tuning.minPace, e.pace * 2))
}
