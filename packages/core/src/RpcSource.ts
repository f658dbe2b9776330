/**
 * RpcSource: a chain over its JSON-RPC endpoint. `eth_getLogs` by contract addresses and handled event topics,
 * over a block range that adapts (halved on "too many results", size or timeout errors; doubled while
 * responses stay small); one range fetched ahead of the one being processed; logs decoded with viem against
 * the contracts' ABIs; block hashes of every block inside the reorg window; bounded retries with exponential
 * backoff and jitter; an optional rate limit per endpoint. The URL is Redacted: errors name the host only.
 */
import { Duration, Effect, Fiber, Redacted, Result, Schedule, Scope } from "effect"
import type { Abi, Hex } from "viem"
import { SourceError } from "./Errors.js"
import type { Event } from "./Event.js"
import * as EventDecoder from "./internal/EventDecoder.js"
import * as RateLimiter from "./RateLimiter.js"
import type { Block, ChainInfo, ChainSource, ContractInfo, FetchRequest, FetchResult, Source } from "./Source.js"

export interface Options {
  /** The endpoint; keep keys in it out of logs by passing it Redacted. */
  readonly url: string | Redacted.Redacted<string>
  /** Blocks per eth_getLogs to start with (default 100), and the most it grows to (default 100_000). */
  readonly initialRange?: number
  readonly maxRange?: number
  /** Logs per response to aim at (default 10_000): the range grows below half of it and shrinks above twice it. */
  readonly targetLogs?: number
  /** Attempts per request, the first included (default 6), and the first backoff (default 200 ms). */
  readonly attempts?: number
  readonly retryBase?: Duration.Input
  readonly requestTimeout?: Duration.Input
  readonly rateLimit?: RateLimiter.RateLimit
}

/** Why a request failed: the range was too big for the node, or anything worth retrying. */
type Failure = { readonly _tag: "TooLarge"; readonly message: string } | { readonly _tag: "Retryable"; readonly message: string }

interface RpcLog {
  readonly address: string
  readonly topics: ReadonlyArray<Hex>
  readonly data: Hex
  readonly blockNumber: Hex
  readonly blockHash: Hex
  readonly blockTimestamp?: Hex
  readonly logIndex: Hex
  readonly transactionHash: Hex
  readonly removed?: boolean
}

interface RpcBlock {
  readonly number: Hex
  readonly hash: Hex
  readonly timestamp: Hex
}

/** Scheme, host and port only: what errors may show of an endpoint. */
export const describeEndpoint = (url: string): string => {
  if (!URL.canParse(url)) return "<invalid url>"
  const u = new URL(url)
  return `${u.protocol}//${u.host}`
}

/** Replies above this are refused unread (a JavaScript string holds at most ~512 MB). */
const maxResponseBytes = 256 * 1024 * 1024

const tooLarge = /too many|more than \d+ (results|logs)|limit exceeded|response size|range (is )?too (large|wide)|block range|exceed|query timeout|timed? ?out|string longer than|invalid string length|ERR_STRING_TOO_LONG|body too large/i

export const source = (options: Options): Source => ({
  name: "rpc",
  make: (chain) => make(options, chain)
})

const make = (options: Options, chain: ChainInfo): Effect.Effect<ChainSource, SourceError, Scope.Scope> =>
  Effect.gen(function*() {
    const url = typeof options.url === "string" ? options.url : Redacted.value(options.url)
    const endpoint = describeEndpoint(url)
    const scope = yield* Effect.scope
    const timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(options.requestTimeout ?? Duration.seconds(30)))
    const maxRange = options.maxRange ?? 100_000
    const targetLogs = options.targetLogs ?? 10_000
    const limiter = options.rateLimit === undefined ? Effect.void : RateLimiter.make(options.rateLimit)
    let range = options.initialRange ?? 100
    let id = 0

    const fail = (message: string) => new SourceError({ chainId: chain.chainId, message: `RPC ${endpoint}: ${message}` })

    /** One JSON-RPC POST (a single call or a batch); node errors are classified, network errors retryable. */
    const post = (body: unknown): Effect.Effect<unknown, Failure> =>
      Effect.andThen(
        limiter,
        Effect.tryPromise({
          try: async (signal) => {
            const response = await globalThis.fetch(url, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify(body),
              signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
            })
            // A reply this big cannot be parsed in one string: ask for fewer blocks instead of reading it.
            if (Number(response.headers.get("content-length") ?? 0) > maxResponseBytes) {
              await response.body?.cancel()
              return { httpError: "response body too large" }
            }
            if (!response.ok) {
              const text = (await response.text()).slice(0, 200)
              return { httpError: `HTTP ${response.status}${text.length > 0 ? ` ${text}` : ""}` }
            }
            return { json: (await response.json()) as unknown }
          },
          catch: (cause): Failure => {
            const message = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)
            if (/timeout|abort/i.test(message)) return { _tag: "TooLarge", message: "request timed out" }
            return tooLarge.test(message) ? { _tag: "TooLarge", message } : { _tag: "Retryable", message }
          }
        })
      ).pipe(Effect.flatMap((r): Effect.Effect<unknown, Failure> => {
        if ("httpError" in r) return Effect.fail({ _tag: tooLarge.test(r.httpError) ? "TooLarge" : "Retryable", message: r.httpError })
        return Effect.succeed(r.json)
      }))

    const retrying = <A>(request: Effect.Effect<A, Failure>, what: string): Effect.Effect<A, SourceError | Failure> =>
      request.pipe(
        Effect.retry({
          schedule: Schedule.exponential(options.retryBase ?? Duration.millis(200)).pipe(Schedule.jittered),
          times: Math.max(0, (options.attempts ?? 6) - 1),
          while: (f: Failure) => f._tag === "Retryable"
        }),
        Effect.catch((f: Failure): Effect.Effect<never, SourceError | Failure> =>
          f._tag === "Retryable" ? Effect.fail(fail(`${what} failed after ${options.attempts ?? 6} attempts: ${f.message}`)) : Effect.fail(f)
        )
      )

    const call = <A>(method: string, params: ReadonlyArray<unknown>): Effect.Effect<A, SourceError | Failure> =>
      retrying(
        Effect.flatMap(post({ jsonrpc: "2.0", id: ++id, method, params }), (json): Effect.Effect<A, Failure> => {
          const reply = json as { readonly result?: A; readonly error?: { readonly code?: number; readonly message?: string } }
          if (reply.error !== undefined) {
            const message = `${reply.error.code ?? ""} ${reply.error.message ?? "error"}`.trim()
            return Effect.fail({ _tag: tooLarge.test(message) || reply.error.code === -32005 ? "TooLarge" : "Retryable", message })
          }
          return Effect.succeed(reply.result as A)
        }),
        method
      )

    const onlySource = <A>(effect: Effect.Effect<A, SourceError | Failure>, what: string): Effect.Effect<A, SourceError> =>
      Effect.catch(effect, (e) => (e instanceof SourceError ? Effect.fail(e) : Effect.fail(fail(`${what}: ${e.message}`))))

    /** Headers of many blocks in JSON-RPC batches of 100. */
    const headers = (numbers: ReadonlyArray<number>): Effect.Effect<Map<number, RpcBlock>, SourceError> =>
      Effect.gen(function*() {
        const out = new Map<number, RpcBlock>()
        for (let i = 0; i < numbers.length; i += 100) {
          const chunk = numbers.slice(i, i + 100)
          const body = chunk.map((n) => ({ jsonrpc: "2.0", id: ++id, method: "eth_getBlockByNumber", params: [`0x${n.toString(16)}`, false] }))
          const replies = yield* onlySource(retrying(Effect.flatMap(post(body), (json) =>
            Array.isArray(json) ? Effect.succeed(json as ReadonlyArray<{ readonly result?: RpcBlock | null }>) :
            Effect.fail<Failure>({ _tag: "Retryable", message: "batch reply is not an array" })), "eth_getBlockByNumber"), "eth_getBlockByNumber")
          for (const reply of replies) if (reply.result != null) out.set(Number(reply.result.number), reply.result)
        }
        return out
      })

    // Decoders by contract and ABI position: built once per run, not per request.
    const built = new Map<string, EventDecoder.EventDecoder>()
    const decoders = (contracts: ReadonlyArray<ContractInfo>) => {
      const byAddress = new Map<string, ContractInfo>()
      const events = new Map<string, Map<Hex, EventDecoder.EventDecoder>>()
      const topics = new Set<Hex>()
      for (const contract of contracts) {
        for (const address of contract.addresses) byAddress.set(address.toLowerCase(), contract)
        const selectors = new Map<Hex, EventDecoder.EventDecoder>()
        for (const [index, item] of (contract.abi as Abi).entries()) {
          if (item.type === "event" && contract.events.includes(item.name)) {
            const key = `${contract.name}/${index}`
            let decoder = built.get(key)
            if (decoder === undefined) built.set(key, (decoder = EventDecoder.make(contract.name, item)))
            selectors.set(decoder.selector, decoder)
            topics.add(decoder.selector)
          }
        }
        events.set(contract.name, selectors)
      }
      return { byAddress, events, topics: [...topics], addresses: [...byAddress.keys()] }
    }

    /** Logs of [from, to], or of a shorter prefix when the node finds the range too large. */
    const getLogs = (from: number, to: number, addresses: ReadonlyArray<string>, topics: ReadonlyArray<Hex>) =>
      Effect.gen(function*() {
        while (true) {
          const end = Math.min(to, from + range - 1)
          const result = yield* Effect.result(call<ReadonlyArray<RpcLog>>("eth_getLogs", [{
            fromBlock: `0x${from.toString(16)}`,
            toBlock: `0x${end.toString(16)}`,
            address: addresses,
            topics: [topics]
          }]))
          if (result._tag === "Success") {
            const logs = result.success.length
            const span = end - from + 1
            if (logs > targetLogs * 2) range = Math.max(1, Math.floor((span * targetLogs) / logs))
            else if (logs < targetLogs / 2 && span >= range) range = Math.min(maxRange, range * 2)
            return { logs: result.success, toBlock: end }
          }
          const failure = result.failure
          if (failure instanceof SourceError) return yield* failure
          if (range === 1) return yield* fail(`eth_getLogs of block ${from} alone failed: ${failure.message}`)
          range = Math.max(1, Math.floor((end - from + 1) / 2))
        }
      })

    const fetchRange = (request: FetchRequest): Effect.Effect<FetchResult, SourceError> =>
      Effect.gen(function*() {
        const { addresses, byAddress, events, topics } = decoders(request.contracts)
        if (addresses.length === 0 || topics.length === 0) {
          const blocks = request.hashesFrom === undefined ? [] : yield* hashesOf(request.hashesFrom, request.toBlock, new Set())
          return { events: [], blocks, toBlock: request.toBlock }
        }
        const { logs, toBlock } = yield* getLogs(request.fromBlock, request.toBlock, addresses, topics)
        const missingTimestamps = new Set<number>()
        for (const log of logs) if (log.blockTimestamp === undefined) missingTimestamps.add(Number(log.blockNumber))
        const headerByNumber = missingTimestamps.size === 0 ? new Map<number, RpcBlock>() : yield* headers([...missingTimestamps])
        const out: Array<Event> = []
        const seen = new Map<number, string>()
        for (const log of logs) {
          if (log.removed === true) continue
          const contract = byAddress.get(log.address.toLowerCase())
          const decoder = contract === undefined ? undefined : events.get(contract.name)?.get(log.topics[0]!)
          if (contract === undefined || decoder === undefined) continue
          const decoded = decoder.decode(log.topics, log.data)
          if (Result.isFailure(decoded)) {
            return yield* fail(`cannot decode ${contract.name}.${decoder.event.name} at block ${Number(log.blockNumber)}: ${decoded.failure.reason}`)
          }
          const blockNumber = Number(log.blockNumber)
          seen.set(blockNumber, log.blockHash)
          out.push({
            chainId: chain.chainId,
            contractName: contract.name,
            eventName: decoder.event.name,
            srcAddress: log.address.toLowerCase(),
            blockNumber,
            blockHash: log.blockHash,
            blockTimestamp: Number(log.blockTimestamp ?? headerByNumber.get(blockNumber)?.timestamp ?? 0),
            logIndex: Number(log.logIndex),
            transactionHash: log.transactionHash,
            params: decoded.success
          })
        }
        const blocks: Array<Block> = [...seen].map(([number, hash]) => ({ number, hash }))
        if (request.hashesFrom !== undefined && request.hashesFrom <= toBlock) {
          for (const b of yield* hashesOf(Math.max(request.fromBlock, request.hashesFrom), toBlock, new Set(seen.keys()))) blocks.push(b)
        }
        return { events: out, blocks, toBlock }
      })

    const hashesOf = (from: number, to: number, known: ReadonlySet<number>) =>
      Effect.map(headers(Array.from({ length: to - from + 1 }, (_, i) => from + i).filter((n) => !known.has(n))), (byNumber) =>
        [...byNumber.values()].map((b) => ({ number: Number(b.number), hash: b.hash })))

    // One range ahead: fetched while the previous one is being processed, used if the next request matches.
    let ahead: { readonly key: string; readonly fiber: Fiber.Fiber<FetchResult, SourceError> } | undefined
    let lastHead = 0
    const keyOf = (r: FetchRequest) => JSON.stringify([r.fromBlock, r.hashesFrom === undefined, r.contracts.map((c) => [c.name, c.addresses])])

    const fetchAhead = (request: FetchRequest): Effect.Effect<FetchResult, SourceError> =>
      Effect.gen(function*() {
        const pending = ahead
        ahead = undefined
        let result: FetchResult
        if (pending !== undefined && pending.key === keyOf(request)) {
          result = yield* Fiber.join(pending.fiber)
          if ((result.toBlock ?? request.toBlock) > request.toBlock) result = yield* fetchRange(request)
        } else {
          if (pending !== undefined) yield* Fiber.interrupt(pending.fiber)
          result = yield* fetchRange(request)
        }
        const next = (result.toBlock ?? request.toBlock) + 1
        if (next <= Math.min(lastHead, request.toBlock)) {
          const nextRequest: FetchRequest = { ...request, fromBlock: next, hashesFrom: request.hashesFrom === undefined ? undefined : Math.max(next, request.hashesFrom) }
          ahead = { key: keyOf(nextRequest), fiber: yield* Effect.forkIn(fetchRange(nextRequest), scope) }
        }
        return result
      })

    return {
      head: onlySource(
        Effect.map(call<Hex>("eth_blockNumber", []), (hex) => {
          lastHead = Number(hex)
          return lastHead
        }),
        "eth_blockNumber"
      ),
      blockHash: (n) => Effect.map(headers([n]), (byNumber) => byNumber.get(n)?.hash),
      fetch: fetchAhead
    } satisfies ChainSource
  })
