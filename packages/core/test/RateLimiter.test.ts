import { assert, describe, it } from "@effect/vitest"
import { Clock, type Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { RateLimiter, RpcSource } from "@chainstore/core"

/**
 * Forks `n` callers of `limiter`, each started at once (it runs until it waits), recording when it got through;
 * returns an effect awaiting them all.
 */
const callers = (limiter: Effect.Effect<void>, n: number, passed: Array<number>) =>
  Effect.map(
    Effect.forEach(
      Array.from({ length: n }),
      () => Effect.forkChild(Effect.andThen(limiter, Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => passed.push(now)))), { startImmediately: true })
    ),
    (fibers) => Effect.forEach(fibers, Fiber.join, { discard: true })
  )

/** Moves the clock on by `by`, then checks how many callers have got through. */
const after = (by: Duration.Input, passed: ReadonlyArray<number>, count: number) =>
  Effect.andThen(TestClock.adjust(by), Effect.sync(() => assert.strictEqual(passed.length, count, `after another ${String(by)}`)))

describe("RateLimiter", () => {
  it.effect("lets `calls` through at once and the rest a window later, never early", () =>
    Effect.gen(function*() {
      const passed: Array<number> = []
      const done = yield* callers(RateLimiter.make({ calls: 3, per: "1 second" }), 8, passed)
      assert.strictEqual(passed.length, 3)
      yield* after("999 millis", passed, 3)
      yield* after("1 millis", passed, 6)
      yield* after("999 millis", passed, 6)
      yield* after("1 millis", passed, 8)
      yield* done
      assert.deepStrictEqual(passed, [0, 0, 0, 1000, 1000, 1000, 2000, 2000])
    }))

  it.effect("a window starts at its first call, not on a grid; after a quiet spell the whole budget is there again, and only it", () =>
    Effect.gen(function*() {
      const limiter = RateLimiter.make({ calls: 3, per: "1 second" })
      const passed: Array<number> = []
      yield* callers(limiter, 1, passed)
      yield* TestClock.adjust("400 millis")
      // The window that began at 0 has two calls left; the third caller waits for the next window, at 1000.
      const late = yield* callers(limiter, 3, passed)
      assert.deepStrictEqual(passed, [0, 400, 400])
      yield* after("599 millis", passed, 3)
      yield* after("1 millis", passed, 4)
      yield* late
      yield* TestClock.adjust("10 seconds")
      const later = yield* callers(limiter, 4, passed)
      assert.deepStrictEqual(passed, [0, 400, 400, 1000, 11_000, 11_000, 11_000])
      yield* after("1 second", passed, 8)
      yield* later
      assert.deepStrictEqual(passed, [0, 400, 400, 1000, 11_000, 11_000, 11_000, 12_000])
    }))

  it.effect("one limiter is shared by all its callers; two limiters keep separate budgets", () =>
    Effect.gen(function*() {
      const a = RateLimiter.make({ calls: 1, per: "1 second" })
      const b = RateLimiter.make({ calls: 1, per: "1 second" })
      const viaA: Array<number> = []
      const viaB: Array<number> = []
      const done = Effect.all([yield* callers(a, 2, viaA), yield* callers(b, 1, viaB)])
      assert.deepStrictEqual([viaA, viaB], [[0], [0]])
      yield* TestClock.adjust("1 second")
      yield* done
      assert.deepStrictEqual([viaA, viaB], [[0, 1000], [0]])
    }))
})

describe("RpcSource rateLimit", () => {
  it.effect("holds for every request to the endpoint: 2 per second of 5 concurrent eth_blockNumber calls", () =>
    Effect.gen(function*() {
      const requested: Array<number> = []
      // The endpoint: answers at once, so only the limiter spaces the requests.
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const live = globalThis.fetch
          globalThis.fetch = (_input, init) => {
            const body = JSON.parse(String(init?.body)) as { readonly id: number; readonly method: string }
            requested.push(body.id)
            // The start-up check asks for the chain id: this endpoint serves chain 1.
            return Promise.resolve(new Response(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: body.method === "eth_chainId" ? "0x1" : "0x10" }), { status: 200 }))
          }
          return live
        }),
        (live) => Effect.sync(() => (globalThis.fetch = live))
      )
      const source = yield* RpcSource.source({ url: "http://rpc.invalid", rateLimit: { calls: 2, per: "1 second" } }).make({ chainId: 1, contracts: [], blockHandlers: [] })
      // The start-up check (eth_blockNumber, eth_chainId) used the first window.
      assert.strictEqual(requested.length, 2)
      yield* TestClock.adjust("1 second")
      requested.length = 0
      const heads = yield* Effect.forEach(Array.from({ length: 5 }), () => Effect.forkChild(source.head, { startImmediately: true }))
      assert.strictEqual(requested.length, 2)
      yield* after("999 millis", requested, 2)
      yield* after("1 millis", requested, 4)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Effect.forEach(heads, Fiber.join), [16, 16, 16, 16, 16])
      assert.strictEqual(requested.length, 5)
    }))
})
