import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { RpcClient } from "@chainstore/core"
import * as Failure from "../src/internal/RpcFailure.js"

describe("RpcFailure: a reply classified by what the provider means", () => {
  const cases: ReadonlyArray<readonly [string, Failure.Failure, Partial<Failure.Failure>]> = [
    [
      "Alchemy's range cap names a range that works",
      Failure.classifyError({ code: -32600, message: "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x10, 0x2f]" }, "eth_getLogs"),
      { _tag: "TooLarge", suggested: { from: 16, to: 47 }, limit: 10_000 }
    ],
    ["Infura's result cap", Failure.classifyError({ code: -32005, message: "query returned more than 10000 results" }, "eth_getLogs"), { _tag: "TooLarge", limit: 10_000 }],
    [
      "Infura's rate limit, with backoff_seconds",
      Failure.classifyError({ code: -32005, message: "project ID request rate exceeded", data: { backoff_seconds: 30 } }, "eth_getBlockByNumber"),
      { _tag: "RateLimited", waitMs: 30_000 }
    ],
    [
      "Alchemy's compute units 429 inside a batch",
      Failure.classifyError({ code: 429, message: "Your app has exceeded its compute units per second capacity." }, "eth_getBlockByNumber"),
      { _tag: "RateLimited", waitMs: undefined }
    ],
    ["HTTP 429 with Retry-After", Failure.classifyHttp(429, "Too Many Requests", 7_000, "eth_getBlockByNumber"), { _tag: "RateLimited", waitMs: 7_000 }],
    ["a CDN's HTML 503", Failure.classifyHttp(503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", undefined, "eth_getLogs"), { _tag: "Transient" }],
    ["HTTP 413", Failure.classifyHttp(413, "Request Entity Too Large", undefined, "eth_getBlockByNumber"), { _tag: "TooLarge" }],
    ["401", Failure.classifyHttp(401, `{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"Must be authenticated!"}}`, undefined, "eth_blockNumber"), { _tag: "Permanent" }],
    ["a timed-out eth_getLogs asks for fewer blocks", Failure.classifyNetwork(new Error("aborted"), "eth_getLogs", true), { _tag: "TooLarge", timedOut: true }],
    ["a timed-out header batch is retried, not 'too large'", Failure.classifyNetwork(new Error("aborted"), "eth_getBlockByNumber", true), { _tag: "Transient" }],
    ["a reset connection", Failure.classifyNetwork(new TypeError("fetch failed"), "eth_blockNumber", false), { _tag: "Transient" }],
    ["malformed JSON", Failure.classifyBody(`{"jsonrpc":"2.0","res`, "eth_blockNumber", new SyntaxError("Unexpected end")), { _tag: "Transient" }],
    ["a block the node does not have yet", Failure.classifyError({ code: -32000, message: "unknown block" }, "eth_getLogs"), { _tag: "MissingItem" }],
    ["an unknown method", Failure.classifyError({ code: -32601, message: "the method eth_foo does not exist/is not available" }, "eth_foo"), { _tag: "Permanent" }],
    ["an unknown error code", Failure.classifyError({ code: -32603, message: "internal error" }, "eth_blockNumber"), { _tag: "Transient" }]
  ]
  for (const [name, failure, expected] of cases) {
    it(name, () => {
      for (const [key, value] of Object.entries(expected)) assert.deepStrictEqual(failure[key as keyof Failure.Failure], value, key)
    })
  }
})

type Call = { readonly id: number; readonly method: string; readonly params: ReadonlyArray<unknown> }
type Answer = { readonly status?: number; readonly body: unknown; readonly headers?: Record<string, string> }

/** Replaces globalThis.fetch with `answer` (n: the request's number, from 1) for the scope. */
const endpoint = (answer: (request: Call | ReadonlyArray<Call>, n: number) => Answer) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const live = globalThis.fetch
      let n = 0
      globalThis.fetch = (_input, init) => {
        const a = answer(JSON.parse(String(init?.body)) as Call | ReadonlyArray<Call>, ++n)
        return Promise.resolve(new Response(typeof a.body === "string" ? a.body : JSON.stringify(a.body), { status: a.status ?? 200, ...(a.headers === undefined ? {} : { headers: a.headers }) }))
      }
      return live
    }),
    (live) => Effect.sync(() => (globalThis.fetch = live))
  )

const ok = (call: Call, result: unknown) => ({ jsonrpc: "2.0", id: call.id, result })
const healthy = (call: Call): Answer => ({ body: ok(call, call.method === "eth_chainId" ? "0x1" : "0x10") })
const single = (request: Call | ReadonlyArray<Call>): Call => (Array.isArray(request) ? request[0] : request) as Call
const unavailable: Answer = { status: 503, body: "<html><head><title>503 Service Temporarily Unavailable</title></head><body><h1>503 Service Temporarily Unavailable</h1></body></html>" }
const header = (n: number) => ({ number: `0x${n.toString(16)}`, hash: `0x${n.toString(16).padStart(64, "0")}`, parentHash: `0x${"0".repeat(64)}`, timestamp: "0x1" })

/** Moves the test clock `ms` forward in steps, letting the fake endpoint's promises settle between them. */
const advance = (ms: number, step = 1_000) =>
  Effect.gen(function*() {
    for (let t = 0; t < ms; t += step) {
      yield* TestClock.adjust(Math.min(step, ms - t))
      for (let i = 0; i < 5; i++) yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
  })

describe("RpcClient on a fake endpoint, in test time", () => {
  it.effect("waits out a 60 s outage with the default budget, showing the RPC as unavailable meanwhile", () =>
    Effect.gen(function*() {
      let down = false
      let failed = 0
      yield* endpoint((request) => (down ? (failed++, unavailable) : healthy(single(request))))
      const client = yield* RpcClient.make({ chainId: 1, urls: ["http://rpc.invalid/KEY"] })
      down = true
      const head = yield* Effect.forkChild(client.blockNumber, { startImmediately: true })
      yield* advance(60_000)
      const during = yield* client.status
      assert.strictEqual(during.available, false)
      assert.match(during.lastError ?? "", /^http:\/\/rpc\.invalid: HTTP 503 \(HTML page "503 Service Temporarily Unavailable"\)$/)
      down = false
      yield* advance(31_000)
      assert.strictEqual(yield* Fiber.join(head), 16)
      assert.isAbove(failed, 8)
      assert.strictEqual((yield* client.status).available, true)
    }))

  it.effect("ends after the outage budget (default 10 minutes) with one clear line", () =>
    Effect.gen(function*() {
      let down = false
      yield* endpoint((request) => (down ? unavailable : healthy(single(request))))
      const client = yield* RpcClient.make({ chainId: 1, urls: ["http://rpc.invalid/KEY"] })
      down = true
      const head = yield* Effect.forkChild(Effect.flip(client.blockNumber), { startImmediately: true })
      yield* advance(9 * 60_000)
      assert.isUndefined(head.pollUnsafe())
      yield* advance(2 * 60_000)
      const error = yield* Fiber.join(head)
      assert.strictEqual(error.reason, "Unavailable")
      assert.match(error.message, /^RPC http:\/\/rpc\.invalid: eth_blockNumber failed after \d+ attempts: HTTP 503 \(HTML page "503 Service Temporarily Unavailable"\) \(failing for 6\d\d\.\ds, since .*\)$/)
    }))

  it.effect("honours Retry-After and backoff_seconds exactly, and sends the same request again", () =>
    Effect.gen(function*() {
      const times: Array<number> = []
      yield* endpoint((request, n) => {
        times.push(n)
        const call = single(request)
        if (call.method === "eth_blockNumber" && n === 3) return { status: 429, body: "Too Many Requests", headers: { "retry-after": "7" } }
        if (call.method === "eth_blockNumber" && n === 4) return { body: { jsonrpc: "2.0", id: call.id, error: { code: -32005, message: "project ID request rate exceeded", data: { backoff_seconds: 3 } } } }
        return healthy(call)
      })
      const client = yield* RpcClient.make({ chainId: 1, urls: ["http://rpc.invalid"] })
      const head = yield* Effect.forkChild(client.blockNumber, { startImmediately: true })
      yield* advance(6_900, 100)
      assert.strictEqual(times.length, 3)
      yield* advance(100, 100)
      assert.strictEqual(times.length, 4)
      yield* advance(2_900, 100)
      assert.strictEqual(times.length, 4)
      yield* advance(100, 100)
      assert.strictEqual(yield* Fiber.join(head), 16)
    }))

  it.effect("a 429 that names no wait holds back only the request it refused; the others go on, at a lowered pace", () =>
    Effect.gen(function*() {
      let heads = 0
      yield* endpoint((request) => {
        const call = single(request)
        // The start-up check asks once; the second eth_blockNumber is refused.
        if (call.method === "eth_blockNumber" && ++heads === 2) return { status: 429, body: "Too Many Requests" }
        return healthy(call)
      })
      const client = yield* RpcClient.make({ chainId: 1, urls: ["http://rpc.invalid"] })
      const refused = yield* Effect.forkChild(client.blockNumber, { startImmediately: true })
      yield* advance(1, 1)
      assert.strictEqual(yield* client.call("eth_gasPrice", []), "0x10")
      const paced = yield* Effect.forkChild(client.call("eth_gasPrice", []), { startImmediately: true })
      yield* advance(48, 1)
      assert.isUndefined(paced.pollUnsafe())
      yield* advance(2, 1)
      assert.strictEqual(yield* Fiber.join(paced), "0x10")
      assert.isUndefined(refused.pollUnsafe())
      yield* advance(250, 10)
      assert.strictEqual(yield* Fiber.join(refused), 16)
    }))

  it.effect("splits a batch refused whole and keeps the learned size; items missing, null or another block are asked again", () =>
    Effect.gen(function*() {
      const sizes: Array<number> = []
      let refusals = 0
      yield* endpoint((request) => {
        if (!Array.isArray(request)) {
          const call = request as Call
          return call.method === "eth_getBlockByNumber" ? { body: ok(call, header(Number(call.params[0]))) } : healthy(call)
        }
        sizes.push(request.length)
        if (request.length > 3) return (refusals++, { body: { jsonrpc: "2.0", id: null, error: { code: -32600, message: "batch too large" } } })
        // The first item of each batch: null, the second another block, the third missing; the rest fine.
        return {
          body: request.flatMap((call, i) => {
            const n = Number(call.params[0])
            if (sizes.length % 2 === 1 && i === 0) return [ok(call, null)]
            if (sizes.length % 2 === 1 && i === 1) return [ok(call, header(n + 1))]
            if (sizes.length % 2 === 1 && i === 2) return []
            return [ok(call, header(n))]
          })
        }
      })
      const client = yield* RpcClient.make({ chainId: 1, urls: ["http://rpc.invalid"], maxBatch: 8, retryBase: "1 millis" })
      const numbers = Array.from({ length: 10 }, (_, i) => i + 100)
      const first = yield* Effect.forkChild(client.headers(numbers), { startImmediately: true })
      yield* advance(1_000, 10)
      const got = yield* Fiber.join(first)
      assert.deepStrictEqual([...got.keys()], numbers)
      for (const n of numbers) assert.strictEqual(Number(got.get(n)!.number), n)
      assert.strictEqual(refusals, 2)
      const again = yield* Effect.forkChild(client.headers(numbers), { startImmediately: true })
      yield* advance(1_000, 10)
      assert.strictEqual((yield* Fiber.join(again)).size, 10)
      assert.strictEqual(refusals, 2)
    }))

  it.effect("takes a provider's suggested range only when it shrinks the range: a hint naming the failed range is not followed", () =>
    Effect.gen(function*() {
      const spans: Array<number> = []
      yield* endpoint((request) => {
        const call = single(request)
        if (call.method !== "eth_getLogs") return healthy(call)
        const { fromBlock, toBlock } = call.params[0] as { readonly fromBlock: string; readonly toBlock: string }
        spans.push(Number(toBlock) - Number(fromBlock) + 1)
        // A provider whose hint names the very range that failed.
        if (Number(toBlock) - Number(fromBlock) + 1 > 10) return { body: { jsonrpc: "2.0", id: call.id, error: { code: -32600, message: `block range too large, this block range should work: [${fromBlock}, ${toBlock}]` } } }
        return { body: ok(call, []) }
      })
      const client = yield* RpcClient.make({ chainId: 1, urls: ["http://rpc.invalid"], initialRange: 100 })
      const logs = yield* Effect.forkChild(client.logs({ addresses: ["0x00000000000000000000000000000000000000aa"], topics: [[`0x${"11".repeat(32)}`]] }, 1, 1_000), { startImmediately: true })
      yield* advance(100, 10)
      assert.strictEqual((yield* Fiber.join(logs)).toBlock, 7)
      assert.deepStrictEqual(spans, [100, 50, 25, 13, 7])
    }))
})
