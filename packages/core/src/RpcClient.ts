/**
 * RpcClient: one chain's JSON-RPC wire — transport, batching, classification, retries within an outage budget,
 * rate limiting, endpoint failover and metrics. Every failed reply is classified once (internal/RpcFailure.ts) and
 * each class has one policy:
 * - RateLimited: wait (the provider's Retry-After / backoff_seconds, for the whole endpoint; else a backoff of that
 *   request alone), send the same request again, and space the endpoint's requests further apart until successes
 *   bring the pace back;
 * - TooLarge: ask for less — fewer blocks per eth_getLogs (the provider's suggested range when it names one), one
 *   block split by address then topic, fewer calls per batch (the limit learned downward);
 * - Transient and MissingItem: retry with capped exponential backoff, on the next endpoint when there is one;
 * - Permanent: fail, once every endpoint refused;
 * - Reverted (a call that ran and reverted): the call's answer through `calls`, with its revert data; elsewhere final
 *   like Permanent.
 * Retries end when a request kept failing for the outage budget (start-up checks: a few seconds). A reply never
 * lacks an item: null results, short batches and wrong blocks are fetched again, never defaulted.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Random, Redacted } from "effect"
import type { Hex } from "viem"
import { RpcError } from "./Errors.js"
import * as Endpoints from "./internal/RpcEndpoints.js"
import * as Failure from "./internal/RpcFailure.js"
import * as Transport from "./internal/RpcTransport.js"
import * as Metrics from "./Metrics.js"
import * as RateLimiter from "./RateLimiter.js"
import type { Topics } from "./Source.js"

export interface Options {
  readonly chainId: number
  /** Endpoints in order of preference; keep keys in them out of logs by passing them Redacted. */
  readonly urls: ReadonlyArray<string | Redacted.Redacted<string>>
  /** Calls per JSON-RPC batch to start with (default 50); lowered when the provider refuses a batch. */
  readonly maxBatch?: number
  /** Default 30 s. A timed-out eth_getLogs asks for fewer blocks; other calls are retried. */
  readonly requestTimeout?: Duration.Input
  /** First backoff (default 200 ms), doubled per consecutive failure up to `maxBackoff` (default 30 s). */
  readonly retryBase?: Duration.Input
  readonly maxBackoff?: Duration.Input
  /** How long a request may keep failing once running before the run ends (default 10 minutes). */
  readonly outageBudget?: Duration.Input
  /** How long the start-up checks may take per endpoint (default 5 s). */
  readonly startupBudget?: Duration.Input
  /** A fixed limit per endpoint, on top of the pace lowered after rate limits. */
  readonly rateLimit?: RateLimiter.RateLimit
  /** Blocks per eth_getLogs to start with (default 100), and the most it grows to (default 100_000). */
  readonly initialRange?: number
  readonly maxRange?: number
  /** Logs per eth_getLogs reply to aim at (default 10_000); lowered to half a result cap the provider names. */
  readonly targetLogs?: number
}

export interface Call {
  readonly method: string
  readonly params: ReadonlyArray<unknown>
}

/** An eth_getLogs filter: contracts' addresses (undefined: any; [] and [] in a position match nothing) and topics per position (null: any). */
export interface LogFilter {
  readonly addresses: ReadonlyArray<string> | undefined
  readonly topics: Topics
}

/** What a call answered: its result, or the revert of a call that reverted (eth_call), with the revert data ("0x": none). */
export type CallOutcome =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Reverted"; readonly data: Hex; readonly message: string }

/** Refuses a result that is not the item asked for (the wrong block, another transaction): a message, and it is asked again. */
export type Check = (result: unknown, index: number) => string | undefined

export interface Log {
  readonly address: string
  readonly topics: ReadonlyArray<Hex>
  readonly data: Hex
  readonly blockNumber: Hex
  readonly blockHash: Hex
  readonly blockTimestamp?: Hex
  readonly logIndex: Hex
  readonly transactionHash: Hex
  readonly transactionIndex: Hex
  readonly removed?: boolean
}

/**
 * A block as `eth_getBlockByNumber(n, false)` answers it: number, hash, parent hash and timestamp checked, the other
 * fields (read when a handler selects them) as the node gave them.
 */
export interface Header {
  readonly number: Hex
  readonly hash: Hex
  readonly parentHash: Hex
  readonly timestamp: Hex
  readonly logsBloom?: Hex
  readonly [field: string]: unknown
}

export interface Logs {
  /** In block and log index order. */
  readonly logs: ReadonlyArray<Log>
  /** The last block covered: the range may have been shortened. */
  readonly toBlock: number
}

export interface Status {
  readonly available: boolean
  /** When requests started failing, while they do. */
  readonly unavailableSince: Date | undefined
  readonly lastError: string | undefined
}

export class RpcClient extends Context.Service<RpcClient, {
  readonly chainId: number
  /** One call; its result is never null. */
  readonly call: (method: string, params: ReadonlyArray<unknown>) => Effect.Effect<unknown, RpcError>
  /** Many calls in batches; results in order, none null, each passing `check` (a refused one is asked again). */
  readonly batch: (calls: ReadonlyArray<Call>, check?: Check) => Effect.Effect<ReadonlyArray<unknown>, RpcError>
  /**
   * Like `batch`, for calls that may revert (eth_call): a revert is that call's outcome, with its revert data, not a
   * failure to retry. Every other failure follows the policies.
   */
  readonly calls: (calls: ReadonlyArray<Call>, check?: Check) => Effect.Effect<ReadonlyArray<CallOutcome>, RpcError>
  readonly blockNumber: Effect.Effect<number, RpcError>
  /** The header of every block asked for, checked to be that block. */
  readonly headers: (numbers: ReadonlyArray<number>) => Effect.Effect<ReadonlyMap<number, Header>, RpcError>
  /** Logs of [fromBlock, toBlock] or of a shorter prefix of it, in the range that suits the provider. */
  readonly logs: (filter: LogFilter, fromBlock: number, toBlock: number) => Effect.Effect<Logs, RpcError>
  /** Logs of one block by its hash (EIP-234): a node that does not have the block says so instead of answering []. */
  readonly blockLogs: (filter: LogFilter, blockHash: Hex) => Effect.Effect<ReadonlyArray<Log>, RpcError>
  readonly status: Effect.Effect<Status>
}>()("chainstore/RpcClient") {}

/** Scheme, host and port only: what errors may show of an endpoint. */
export const describeEndpoint = (url: string): string => {
  if (!URL.canParse(url)) return "<invalid url>"
  const u = new URL(url)
  return `${u.protocol}//${u.host}`
}

/** Successes at a learned range cap, with small replies, before the cap is tried twice as wide. */
const relaxAfter = 50
/** An outage is logged once it lasts this long, then again at this interval. */
const warnAfterMs = 5_000
const warnEveryMs = 30_000

const millis = (input: Duration.Input | undefined, fallback: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input ?? fallback))
const hex = (n: number): Hex => `0x${n.toString(16)}`
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`

/** Connects to the chain's endpoints: each must answer and serve `chainId` within the start-up budget. */
export const make = Effect.fn("RpcClient.make")(function*(options: Options) {
  const chainId = options.chainId
  const chain = String(chainId)
  const tuning: Endpoints.Tuning = {
    retryBase: millis(options.retryBase, "200 millis"),
    maxBackoff: millis(options.maxBackoff, "30 seconds"),
    minPace: 50,
    maxPace: 5_000
  }
  const timeoutMs = millis(options.requestTimeout, "30 seconds")
  const outageBudget = millis(options.outageBudget, "10 minutes")
  const startupBudget = millis(options.startupBudget, "5 seconds")
  const maxRange = options.maxRange ?? 100_000
  const endpoints = options.urls.map((u) => {
    const url = typeof u === "string" ? u : Redacted.value(u)
    return Endpoints.make(url, describeEndpoint(url))
  })
  if (endpoints.length === 0) return yield* new RpcError({ chainId, endpoint: "", method: "", reason: "Permanent", message: `chain ${chainId}: no RPC url configured` })
  const limiters = new Map(endpoints.map((e) => [e, options.rateLimit === undefined ? Effect.void : RateLimiter.make(options.rateLimit)]))
  let nextId = 0
  let batchLimit = Math.max(1, options.maxBatch ?? 50)
  let range = Math.max(1, Math.min(maxRange, options.initialRange ?? 100))
  let rangeCap = maxRange
  let cappedRuns = 0
  let targetLogs = options.targetLogs ?? 10_000
  let downSince: number | undefined
  let shown = false
  let lastError: string | undefined
  let warnedAt: number | undefined

  const metric = <I, S>(m: Metric.Metric<I, S>, attributes: Record<string, string>) => Metric.withAttributes(m, { chain, ...attributes })

  // --- transport -------------------------------------------------------------------------------------------------

  const post = (endpoint: Endpoints.Endpoint, body: string, method: string): Effect.Effect<unknown, Failure.Failure> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(
        Effect.tryPromise({ try: (signal) => Transport.post(endpoint.url, body, method, timeoutMs, now, signal), catch: (cause) => Failure.classifyNetwork(cause, method, false) }),
        (posted) => (posted._tag === "Json" ? Effect.succeed(posted.json) : Effect.fail(posted.failure))
      ))

  /** One call, sent on its own (not as a batch: some providers take no batches). */
  const single = (endpoint: Endpoints.Endpoint, call: Call, validate: Transport.Validate): Effect.Effect<unknown, Failure.Failure> =>
    Effect.flatMap(post(endpoint, JSON.stringify({ jsonrpc: "2.0", id: ++nextId, method: call.method, params: call.params }), call.method), (json) => {
      const outcome = Transport.singleOutcome(json, call, validate)
      return outcome.ok ? Effect.succeed(outcome.value) : Effect.fail(outcome.failure)
    })

  /** One batch: per-item outcomes when at least one item came back, else the batch's failure. */
  const batchOnce = (endpoint: Endpoints.Endpoint, calls: ReadonlyArray<Call>, validate: Transport.Validate): Effect.Effect<Array<Transport.Outcome>, Failure.Failure> => {
    const first = nextId + 1
    nextId += calls.length
    const body = JSON.stringify(calls.map((c, i) => ({ jsonrpc: "2.0", id: first + i, method: c.method, params: c.params })))
    return Effect.flatMap(post(endpoint, body, Transport.methodOf(calls)), (json) => {
      const outcomes = Transport.batchOutcomes(json, calls, first, validate)
      return Array.isArray(outcomes) ? Effect.succeed(outcomes) : Effect.fail(outcomes)
    })
  }

  // --- status ----------------------------------------------------------------------------------------------------

  const noteSuccess = (now: number): Effect.Effect<void> =>
    downSince === undefined ? Effect.void : Effect.gen(function*() {
      if (warnedAt !== undefined) yield* Effect.logInfo(`Chain ${chainId}: RPC available again after ${seconds(now - downSince!)}`)
      downSince = undefined
      warnedAt = undefined
      if (!shown) return
      shown = false
      yield* Metric.update(metric(Metrics.rpcUnavailable, {}), 0)
      yield* Metric.update(metric(Metrics.rpcUnavailableSince, {}), 0)
    })

  const noteFailure = (endpoint: Endpoints.Endpoint, failure: Failure.Failure, now: number, budget: number): Effect.Effect<void> =>
    Effect.gen(function*() {
      lastError = `${endpoint.name}: ${failure.message}`
      downSince ??= now
      // A rate limit says the provider is there: shown as an outage only once it lasts.
      if (!shown && (failure._tag !== "RateLimited" || now - downSince >= warnAfterMs)) {
        shown = true
        yield* Metric.update(metric(Metrics.rpcUnavailable, {}), 1)
        yield* Metric.update(metric(Metrics.rpcUnavailableSince, {}), Math.floor(downSince / 1000))
      }
      if (now - downSince >= warnAfterMs && (warnedAt === undefined || now - warnedAt >= warnEveryMs)) {
        warnedAt = now
        yield* Effect.logWarning(
          `Chain ${chainId}: RPC unavailable since ${new Date(downSince).toISOString()} (${seconds(now - downSince)}); last error ${lastError}; retrying for up to ${seconds(budget)}`
        )
      }
    })

  // --- the policy loop -------------------------------------------------------------------------------------------

  const refused = (endpoint: Endpoints.Endpoint, method: string, failure: Failure.Failure) =>
    new RpcError({ chainId, endpoint: endpoint.name, method, reason: "Permanent", message: `RPC ${endpoint.name}: ${method} failed: ${failure.message}` })

  const tooLargeError = (method: string, failure: Failure.TooLarge) =>
    new RpcError({ chainId, endpoint: endpoints[0]!.name, method, reason: "TooLarge", message: `RPC ${endpoints[0]!.name}: ${method}: ${failure.message}` })

  /** The first ready endpoint among `candidates`, once its cooldown, pause, pace, fixed limit and the request's own waits let it. */
  const acquire = (candidates: ReadonlyArray<Endpoints.Endpoint>, notBefore: ReadonlyMap<Endpoints.Endpoint, number>): Effect.Effect<Endpoints.Endpoint> =>
    Effect.gen(function*() {
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const picked = Endpoints.pick(candidates, now, notBefore)
        if (typeof picked === "number") {
          yield* Effect.sleep(Duration.millis(picked - now))
          continue
        }
        const gap = Endpoints.paceGap(picked, now)
        if (gap > 0) {
          yield* Effect.sleep(Duration.millis(gap))
          continue
        }
        Endpoints.started(picked, now)
        yield* limiters.get(picked)!
        return picked
      }
    })

  /**
   * Runs `attempt` until it succeeds, applying each failure class's policy. TooLarge goes back to the caller (only it
   * knows how to ask for less); a request failing for `budget` ms, or refused by every endpoint, is an RpcError.
   */
  const attempt = <A>(
    method: string,
    run: (endpoint: Endpoints.Endpoint) => Effect.Effect<A, Failure.Failure>,
    budget: number,
    candidates: ReadonlyArray<Endpoints.Endpoint> = endpoints
  ): Effect.Effect<A, Failure.TooLarge | RpcError> =>
    Effect.gen(function*() {
      let firstFailure: number | undefined
      let attempts = 0
      let limited = 0
      const refusing = new Set<Endpoints.Endpoint>()
      // This request's own backoff per endpoint after a rate limit that named no wait: other requests go on at the pace.
      const notBefore = new Map<Endpoints.Endpoint, number>()
      while (true) {
        const endpoint = yield* acquire(refusing.size === 0 ? candidates : candidates.filter((e) => !refusing.has(e)), notBefore)
        const start = yield* Clock.currentTimeMillis
        attempts++
        const result = yield* Effect.result(run(endpoint))
        const now = yield* Clock.currentTimeMillis
        yield* Metric.update(metric(Metrics.rpcRequests, { method, endpoint: endpoint.name }), 1)
        yield* Metric.update(metric(Metrics.rpcLatency, { method }), now - start)
        // A reply asking for less still comes from a working endpoint.
        if (result._tag === "Success" || result.failure._tag === "TooLarge") {
          Endpoints.succeeded(endpoint)
          yield* noteSuccess(now)
        }
        if (result._tag === "Success") return result.success
        const failure = result.failure
        yield* Metric.update(metric(Metrics.rpcErrors, { endpoint: endpoint.name, class: failure._tag }), 1)
        if (failure._tag === "TooLarge") return yield* Effect.fail(failure)
        firstFailure ??= start
        const random = yield* Random.next
        if (failure._tag === "RateLimited") {
          Endpoints.rateLimited(endpoint, now, failure.waitMs === undefined ? undefined : Math.min(failure.waitMs, budget), tuning)
          if (failure.waitMs === undefined) notBefore.set(endpoint, now + Endpoints.backoff(tuning, ++limited, random))
        } else if (failure._tag === "Permanent" || failure._tag === "Reverted") {
          refusing.add(endpoint)
          if (refusing.size >= candidates.length) return yield* refused(endpoint, method, failure)
          // Refused here, maybe not there: the next endpoint is asked while this one cools down.
          Endpoints.failed(endpoint, now, tuning, random)
        } else Endpoints.failed(endpoint, now, tuning, random)
        yield* noteFailure(endpoint, failure, now, budget)
        if (now - firstFailure >= budget) {
          return yield* new RpcError({
            chainId,
            endpoint: endpoint.name,
            method,
            reason: "Unavailable",
            message: `RPC ${endpoint.name}: ${method} failed after ${attempts} attempts: ${failure.message} (failing for ${seconds(now - firstFailure)}, since ${
              new Date(firstFailure).toISOString()})`
          })
        }
        yield* Metric.update(metric(Metrics.rpcRetries, { method }), 1)
      }
    })

  /** One call, TooLarge included in its failures. */
  const callOn = (candidates: ReadonlyArray<Endpoints.Endpoint>, method: string, params: ReadonlyArray<unknown>, budget: number) =>
    Effect.catchTag(
      attempt(method, (endpoint) => single(endpoint, { method, params }, noCheck), budget, candidates),
      "TooLarge",
      (failure) => Effect.fail(tooLargeError(method, failure))
    )

  /**
   * Calls in batches of the learned size: refused batches split, failed items sent again, each round making progress or
   * backing off. With `reverts`, a reverted call's result is its `RevertedReply`; without, a revert refuses the calls.
   */
  const batchWith = (calls: ReadonlyArray<Call>, validate: Transport.Validate, reverts = false): Effect.Effect<Array<unknown>, RpcError> =>
    Effect.gen(function*() {
      const results = new Array<unknown>(calls.length)
      const method = Transport.methodOf(calls)
      let pending = calls.map((_, i) => i)
      while (pending.length > 0) {
        const chunk = pending.slice(0, batchLimit)
        const rest = pending.slice(chunk.length)
        const chunkCalls = chunk.map((i) => calls[i]!)
        const check: Transport.Validate = (result, j) => validate(result, chunk[j]!)
        const sent = yield* Effect.result(attempt(method, (endpoint) =>
          chunk.length === 1 ?
            Effect.map(
              // A revert is the call's answer: handed to the per-item outcomes below, like one inside a batch.
              Effect.catch(
                Effect.map(single(endpoint, chunkCalls[0]!, check), (value): Transport.Outcome => ({ ok: true, value })),
                (failure) => (failure._tag === "Reverted" ? Effect.succeed<Transport.Outcome>({ ok: false, failure }) : Effect.fail(failure))
              ),
              (outcome) => ({ endpoint, outcomes: [outcome] })
            ) :
            Effect.map(batchOnce(endpoint, chunkCalls, check), (outcomes) => ({ endpoint, outcomes })), outageBudget))
        if (sent._tag === "Failure") {
          const failure = sent.failure
          if (failure._tag === "RpcError") return yield* failure
          if (chunk.length === 1) return yield* tooLargeError(method, failure)
          // Refused whole: split (to the size the provider names, else half), and keep the smaller size for later batches.
          batchLimit = Math.max(1, Math.min(batchLimit, failure.limit ?? Math.floor(chunk.length / 2)))
          yield* Metric.update(metric(Metrics.rpcBatchSize, {}), batchLimit)
          yield* Effect.logDebug(`Chain ${chainId}: RPC refused a batch of ${chunk.length} (${failure.message}); batches of ${batchLimit} from now on`)
          continue
        }
        const { endpoint, outcomes } = sent.success
        const failed: Array<number> = []
        let limited = false
        let waitMs: number | undefined
        for (let j = 0; j < outcomes.length; j++) {
          const outcome = outcomes[j]!
          if (outcome.ok) {
            results[chunk[j]!] = outcome.value
            continue
          }
          if (reverts && outcome.failure._tag === "Reverted") {
            results[chunk[j]!] = new RevertedReply(outcome.failure.data, outcome.failure.message)
            continue
          }
          failed.push(chunk[j]!)
          yield* Metric.update(metric(Metrics.rpcErrors, { endpoint: endpoint.name, class: outcome.failure._tag }), 1)
          if (outcome.failure._tag === "Permanent" || outcome.failure._tag === "Reverted") {
            return yield* refused(endpoint, method, outcome.failure)
          }
          if (outcome.failure._tag === "RateLimited") {
            limited = true
            if (outcome.failure.waitMs !== undefined) waitMs = Math.max(waitMs ?? 0, outcome.failure.waitMs)
          }
        }
        // Items refused for the rate slow the endpoint down like a refused request would.
        if (limited) Endpoints.rateLimited(endpoint, yield* Clock.currentTimeMillis, waitMs, tuning)
        if (failed.length > 0) yield* Metric.update(metric(Metrics.rpcRetries, { method }), failed.length)
        pending = failed.length === 0 ? rest : [...failed, ...rest]
      }
      return results
    })

  // --- eth_getLogs -----------------------------------------------------------------------------------------------

  const getLogsOnce = (filter: LogFilter, where: Record<string, unknown>, validate: Transport.Validate, smallest: boolean) => {
    const call: Call = { method: "eth_getLogs", params: [{ ...where, ...filterParams(filter) }] }
    return attempt("eth_getLogs", (endpoint) => {
      const sent = single(endpoint, call, validate) as Effect.Effect<ReadonlyArray<Log>, Failure.Failure>
      // The smallest request cannot be split further: its timeout is a passing failure.
      return smallest ? Effect.mapError(sent, (f) => (f._tag === "TooLarge" && f.timedOut ? Failure.transient(f.message) : f)) : sent
    }, outageBudget)
  }

  const rangeLogs = (filter: LogFilter, from: number, to: number, smallest: boolean) =>
    getLogsOnce(filter, { fromBlock: hex(from), toBlock: hex(to) }, (result) => checkLogs(result, from, to, undefined), smallest)

  /**
   * One block whose logs are too many for one reply: by address, then by the values of a topic position; one address and
   * one value per position too many is an error naming them.
   */
  const splitBlock = (filter: LogFilter, block: number, cause: Failure.TooLarge): Effect.Effect<Array<Log>, RpcError> =>
    Effect.gen(function*() {
      const parts = splitFilter(filter)
      if (parts.length === 0) {
        const smallest = yield* Effect.result(rangeLogs(filter, block, block, true))
        if (smallest._tag === "Success") return [...smallest.success]
        if (smallest.failure._tag === "RpcError") return yield* smallest.failure
        const cap = smallest.failure.limit ?? cause.limit
        return yield* new RpcError({
          chainId,
          endpoint: endpoints[0]!.name,
          method: "eth_getLogs",
          reason: "TooLarge",
          message: `RPC ${endpoints[0]!.name}: the logs of block ${block} for ${describeFilter(filter)} exceed the provider's limit${
            cap === undefined ? "" : ` of ${cap} results`} even alone (${smallest.failure.message}); use an endpoint with a higher limit`
        })
      }
      const out: Array<Log> = []
      for (const part of parts) {
        const result = yield* Effect.result(rangeLogs(part, block, block, false))
        if (result._tag === "Success") out.push(...result.success)
        else if (result.failure._tag === "RpcError") return yield* result.failure
        else out.push(...yield* splitBlock(part, block, result.failure))
      }
      return out.sort((a, b) => Number(a.logIndex) - Number(b.logIndex))
    })

  const logs = Effect.fn("RpcClient.logs")(function*(filter: LogFilter, fromBlock: number, toBlock: number) {
    if (matchesNothing(filter)) return { logs: [], toBlock } satisfies Logs
    while (true) {
      const end = Math.min(toBlock, fromBlock + range - 1)
      const span = end - fromBlock + 1
      const result = yield* Effect.result(rangeLogs(filter, fromBlock, end, false))
      if (result._tag === "Success") {
        const count = result.success.length
        if (count > targetLogs * 2) range = Math.max(1, Math.floor((span * targetLogs) / count))
        else if (count < targetLogs / 2 && span >= range) {
          // At a learned cap, replies stay small for a while before the cap is tried wider: one refusal per `relaxAfter`.
          if (range >= rangeCap && ++cappedRuns >= relaxAfter) {
            rangeCap = Math.min(maxRange, rangeCap * 2)
            cappedRuns = 0
          }
          range = Math.min(rangeCap, range * 2)
        }
        yield* Metric.update(metric(Metrics.rpcLogsRange, {}), range)
        return { logs: inOrder(result.success), toBlock: end } satisfies Logs
      }
      const failure = result.failure
      if (failure._tag === "RpcError") return yield* failure
      if (failure.limit !== undefined) targetLogs = Math.min(targetLogs, Math.max(1, Math.floor(failure.limit / 2)))
      if (span === 1) return { logs: yield* splitBlock(filter, fromBlock, failure), toBlock: fromBlock } satisfies Logs
      const hint = failure.suggested !== undefined && failure.suggested.from === fromBlock && failure.suggested.to >= fromBlock ? failure.suggested.to - fromBlock + 1 : undefined
      // A hint is taken only when it shrinks the range: one naming the range that just failed would loop.
      range = hint !== undefined && hint < span ? hint : Math.ceil(span / 2)
      rangeCap = range
      cappedRuns = 0
      yield* Metric.update(metric(Metrics.rpcLogsRange, {}), range)
    }
  })

  // --- start-up --------------------------------------------------------------------------------------------------

  /** An endpoint answers and serves the configured chain. */
  const probe = (endpoint: Endpoints.Endpoint) =>
    Effect.gen(function*() {
      yield* callOn([endpoint], "eth_blockNumber", [], startupBudget)
      const served = Number(yield* callOn([endpoint], "eth_chainId", [], startupBudget))
      if (served !== chainId) {
        return yield* new RpcError({
          chainId,
          endpoint: endpoint.name,
          method: "eth_chainId",
          reason: "ChainMismatch",
          message: `RPC ${endpoint.name} serves chain ${served}, but it is configured for chain ${chainId}`
        })
      }
    })
  const probed = yield* Effect.forEach(endpoints, (e) => Effect.result(probe(e)), { concurrency: "unbounded" })
  const failures = probed.flatMap((r) => (r._tag === "Failure" ? [r.failure] : []))
  const fatal = failures.find((f) => f.reason !== "Unavailable") ?? (failures.length === endpoints.length ? failures[0] : undefined)
  if (fatal !== undefined) return yield* new RpcError({ ...fatal, message: `${fatal.message} (at start-up)` })
  for (const f of failures) yield* Effect.logWarning(`Chain ${chainId}: ${f.message} at start-up; using the other endpoints until it answers`)
  yield* Metric.update(metric(Metrics.rpcBatchSize, {}), batchLimit)
  yield* Metric.update(metric(Metrics.rpcLogsRange, {}), range)
  yield* Metric.update(metric(Metrics.rpcUnavailable, {}), 0)

  return RpcClient.of({
    chainId,
    call: (method, params) => callOn(endpoints, method, params, outageBudget),
    batch: (calls, check) => batchWith(calls, validateWith(check)),
    calls: Effect.fn("RpcClient.calls")(function*(calls: ReadonlyArray<Call>, check?: Check) {
      const results = yield* batchWith(calls, validateWith(check), true)
      return results.map((value): CallOutcome =>
        value instanceof RevertedReply ? { _tag: "Reverted", data: value.data, message: value.message } : { _tag: "Success", value })
    }),
    blockNumber: Effect.map(callOn(endpoints, "eth_blockNumber", [], outageBudget), Number),
    headers: Effect.fn("RpcClient.headers")(function*(numbers: ReadonlyArray<number>) {
      const results = yield* batchWith(numbers.map((n) => ({ method: "eth_getBlockByNumber", params: [hex(n), false] })), (result, i) => checkHeader(result, numbers[i]!))
      const out = new Map<number, Header>()
      for (let i = 0; i < numbers.length; i++) out.set(numbers[i]!, results[i] as Header)
      return out as ReadonlyMap<number, Header>
    }),
    logs,
    blockLogs: Effect.fn("RpcClient.blockLogs")(function*(filter: LogFilter, blockHash: Hex) {
      if (matchesNothing(filter)) return []
      const found = yield* Effect.catchTag(
        getLogsOnce(filter, { blockHash }, (result) => checkLogs(result, undefined, undefined, blockHash), true),
        "TooLarge",
        (failure) => Effect.fail(tooLargeError("eth_getLogs", failure))
      )
      return inOrder(found)
    }),
    status: Effect.sync(() => ({ available: !shown, unavailableSince: shown ? new Date(downSince!) : undefined, lastError }))
  })
})

/** A client for the chain of `options`, as a service. */
export const layer = (options: Options): Layer.Layer<RpcClient, RpcError> => Layer.effect(RpcClient, make(options))

// --- private helpers ---------------------------------------------------------------------------------------------

const noCheck: Transport.Validate = () => undefined

/** A reverted call's reply inside `batchWith`'s results (no result of the node is one). */
class RevertedReply {
  constructor(readonly data: Hex, readonly message: string) {}
}

const validateWith = (check: Check | undefined): Transport.Validate =>
  check === undefined ? noCheck : (result, index) => {
    const refused = check(result, index)
    return refused === undefined ? undefined : Failure.missingItem(refused)
  }

/** The filter's eth_getLogs fields: trailing any-topic positions left out. */
const filterParams = (filter: LogFilter): Record<string, unknown> => {
  let end = filter.topics.length
  while (end > 0 && filter.topics[end - 1] === null) end--
  return {
    ...(filter.addresses === undefined ? {} : { address: filter.addresses }),
    ...(end === 0 ? {} : { topics: filter.topics.slice(0, end) })
  }
}

/** An empty address list or an empty list of topic values: no log matches (a node would read the empty list as "any"). */
const matchesNothing = (filter: LogFilter): boolean =>
  filter.addresses?.length === 0 || filter.topics.some((allowed) => allowed !== null && allowed.length === 0)

/** A filter in smaller parts that together match what it matches: one per address, else one per value of the first topic position with several; [] when it cannot be split. */
const splitFilter = (filter: LogFilter): Array<LogFilter> => {
  if (filter.addresses !== undefined && filter.addresses.length > 1) return filter.addresses.map((a) => ({ addresses: [a], topics: filter.topics }))
  const at = filter.topics.findIndex((allowed) => allowed !== null && allowed.length > 1)
  if (at === -1) return []
  return filter.topics[at]!.map((value) => ({ addresses: filter.addresses, topics: filter.topics.map((allowed, i) => (i === at ? [value] : allowed)) }))
}

/** "0xabc and topic 0xddf2…" (positions after the first follow, comma-separated; "any" where a position does not filter). */
const describeFilter = (filter: LogFilter): string => {
  const topics = filter.topics.map((allowed) => (allowed === null ? "any" : allowed.join("|")))
  return `${filter.addresses === undefined ? "any address" : filter.addresses.join(",")} and topic ${topics.join(", ") || "any"}`
}

/** An eth_getLogs result: an array of logs inside [from, to] (or of block `hash`). */
const checkLogs = (result: unknown, from: number | undefined, to: number | undefined, hash: Hex | undefined): Failure.Failure | undefined => {
  if (!Array.isArray(result)) return Failure.transient("eth_getLogs result is not an array")
  for (const log of result as ReadonlyArray<Partial<Log>>) {
    if (
      typeof log !== "object" || log === null || typeof log.blockNumber !== "string" || typeof log.blockHash !== "string" || typeof log.logIndex !== "string" ||
      typeof log.transactionHash !== "string" || typeof log.transactionIndex !== "string" || !Array.isArray(log.topics) || typeof log.data !== "string"
    ) {
      return Failure.transient("eth_getLogs result holds a malformed log")
    }
    if (hash !== undefined && log.blockHash !== hash) return Failure.missingItem(`eth_getLogs of block ${hash} answered logs of block ${log.blockHash}`)
    if (from !== undefined && to !== undefined) {
      const n = Number(log.blockNumber)
      if (n < from || n > to) return Failure.transient(`eth_getLogs of blocks ${from}-${to} answered a log of block ${n}`)
    }
  }
  return undefined
}

const checkHeader = (result: unknown, n: number): Failure.Failure | undefined => {
  if (typeof result !== "object") return Failure.transient(`eth_getBlockByNumber(${n}) answered no block`)
  const header = result as Partial<Header>
  if (typeof header.number !== "string" || Number(header.number) !== n) {
    return Failure.missingItem(`eth_getBlockByNumber(${n}) answered block ${typeof header.number === "string" ? Number(header.number) : "without a number"}`)
  }
  if (typeof header.hash !== "string" || typeof header.timestamp !== "string" || typeof header.parentHash !== "string") {
    return Failure.missingItem(`eth_getBlockByNumber(${n}) answered a block without hash or timestamp`)
  }
  return undefined
}

/** Logs in block and log index order (providers' replies usually are: checked before sorting). */
const inOrder = (logs: ReadonlyArray<Log>): ReadonlyArray<Log> => {
  let previous = Number.NEGATIVE_INFINITY
  for (const log of logs) {
    const key = Number(log.blockNumber) * 1e6 + Number(log.logIndex)
    if (key < previous) return [...logs].sort((a, b) => Number(a.blockNumber) - Number(b.blockNumber) || Number(a.logIndex) - Number(b.logIndex))
    previous = key
  }
  return logs
}
