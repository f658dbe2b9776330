/**
 * RpcSource: a chain over its JSON-RPC endpoints, through an RpcClient that owns the wire (retries, rate limits,
 * range and batch sizes, failover). This module asks it for logs and headers and turns them into events: logs
 * decoded with viem against the contracts' ABIs, timestamps from the logs or else their blocks' headers, hashes of
 * every block inside the reorg window. What it hands on is consistent or refetched: a log whose block header
 * names another hash, or logs of one block under two hashes, make it fetch the range again; inside the window a
 * block whose logsBloom may hold our logs while eth_getLogs gave none is asked again by hash (a lagging node
 * answers [] for blocks it does not have yet). Up to four ranges are fetched ahead, concurrently.
 */
import { Duration, Effect, Fiber, Redacted, Result, Scope } from "effect"
import type { Abi, Hex } from "viem"
import { type RpcError, SourceError } from "./Errors.js"
import type { Event } from "./Event.js"
import * as EventDecoder from "./internal/EventDecoder.js"
import * as Bloom from "./internal/RpcBloom.js"
import * as RpcClient from "./RpcClient.js"
import type { Block, ChainInfo, ChainSource, ContractInfo, FetchRequest, FetchResult, Source } from "./Source.js"

type Url = string | Redacted.Redacted<string>

/** RpcClient's options, with one endpoint (`url`) or several in order of preference (`urls`). */
export type Options = Omit<RpcClient.Options, "chainId" | "urls"> & (
  | { readonly url: Url; readonly urls?: undefined }
  | { readonly urls: ReadonlyArray<Url>; readonly url?: undefined }
)

export const source = (options: Options): Source => ({
  name: "rpc",
  make: (chain) => make(options, chain)
})

/** Times a range is fetched again when its logs and headers disagree, before that is an error. */
const consistencyAttempts = 5
/** Times one header that disagrees with its block's logs is asked again before the range is fetched again. */
const headerAttempts = 3
/**
 * Ranges fetched ahead of the one being processed, concurrently: a slow or rate-limited request hides behind the
 * others (through a provider with 5% 429s, 2 left 25% of the direct speed on the table, 4 about 12%: docs/benchmarks.md).
 */
const prefetchDepth = 4

/** A range fetched ahead, and the request it was made as. */
interface Ahead {
  readonly request: FetchRequest
  readonly fiber: Fiber.Fiber<FetchResult, SourceError>
}

/** `header`: the block's header names another hash than its logs (else the logs name two). */
interface Inconsistent {
  readonly _tag: "Inconsistent"
  readonly block: number
  readonly detail: string
  readonly header: boolean
}

type Fetched = { readonly _tag: "Fetched"; readonly result: FetchResult } | Inconsistent

interface Decoders {
  readonly byAddress: Map<string, ContractInfo>
  readonly events: Map<string, Map<Hex, EventDecoder.EventDecoder>>
  readonly filter: RpcClient.LogFilter
  readonly bloom: Bloom.Matcher
}

const make = (options: Options, chain: ChainInfo): Effect.Effect<ChainSource, SourceError, Scope.Scope> =>
  Effect.gen(function*() {
    const toSource = (e: RpcError) =>
      new SourceError({ chainId: chain.chainId, message: e.reason === "Unavailable" ? `${e.message}; a rerun resumes from the last committed block` : e.message, cause: e })
    const { url, urls, ...rest } = options
    const client = yield* Effect.mapError(RpcClient.make({ ...rest, chainId: chain.chainId, urls: urls ?? [url] }), toSource)
    const scope = yield* Effect.scope
    const retryBase = Duration.toMillis(Duration.fromInputUnsafe(options.retryBase ?? "200 millis"))
    const fail = (message: string) => new SourceError({ chainId: chain.chainId, message: `RPC: ${message}` })

    // Decoders by contract and ABI position: built once per run, not per request; filters per contracts list.
    const built = new Map<string, EventDecoder.EventDecoder>()
    const byContracts = new WeakMap<ReadonlyArray<ContractInfo>, Decoders>()
    const decoders = (contracts: ReadonlyArray<ContractInfo>): Decoders => {
      const known = byContracts.get(contracts)
      if (known !== undefined) return known
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
      const filter = { addresses: [...byAddress.keys()], topics: [...topics] }
      const made = { byAddress, events, filter, bloom: Bloom.matcher(filter.addresses, filter.topics) }
      byContracts.set(contracts, made)
      return made
    }

    const sourced = <A>(effect: Effect.Effect<A, RpcError | SourceError>) => Effect.mapError(effect, (e) => (e._tag === "RpcError" ? toSource(e) : e))

    /** Hashes of every block of [from, to]. */
    const hashesOf = (from: number, to: number) =>
      Effect.map(client.headers(Array.from({ length: to - from + 1 }, (_, i) => from + i)), (headers) =>
        [...headers.values()].map((h): Block => ({ number: Number(h.number), hash: h.hash })))

    const fetchOnce = (request: FetchRequest): Effect.Effect<Fetched, RpcError | SourceError> =>
      Effect.gen(function*() {
        const { byAddress, bloom, events, filter } = decoders(request.contracts)
        if (filter.addresses.length === 0 || filter.topics.length === 0) {
          const blocks = request.hashesFrom === undefined ? [] : yield* hashesOf(Math.max(request.fromBlock, request.hashesFrom), request.toBlock)
          return { _tag: "Fetched", result: { events: [], blocks, toBlock: request.toBlock } } as const
        }
        const fetched = yield* client.logs(filter, request.fromBlock, request.toBlock)
        const toBlock = fetched.toBlock
        let logs = fetched.logs
        const windowFrom = request.hashesFrom === undefined || request.hashesFrom > toBlock ? undefined : Math.max(request.fromBlock, request.hashesFrom)
        // Headers of blocks whose logs carry no timestamp, and of every block inside the window.
        const wanted = new Set<number>()
        for (const log of logs) if (log.blockTimestamp === undefined) wanted.add(Number(log.blockNumber))
        if (windowFrom !== undefined) for (let n = windowFrom; n <= toBlock; n++) wanted.add(n)
        const headers = new Map(wanted.size === 0 ? [] : yield* client.headers([...wanted].sort((a, b) => a - b)))

        const hashes = new Map<number, Hex>()
        let checked = checkHashes(logs, headers, hashes)
        const asked = new Map<number, number>()
        // A header can come from a node on another fork for a moment: it is asked again before the logs are doubted.
        while (checked?.header === true && (asked.get(checked.block) ?? 0) < headerAttempts) {
          asked.set(checked.block, (asked.get(checked.block) ?? 0) + 1)
          headers.set(checked.block, (yield* client.headers([checked.block])).get(checked.block)!)
          hashes.clear()
          checked = checkHashes(logs, headers, hashes)
        }
        if (checked !== undefined) return checked
        if (windowFrom !== undefined) {
          const late: Array<RpcClient.Log> = []
          for (let n = windowFrom; n <= toBlock; n++) {
            const header = headers.get(n)!
            if (hashes.has(n) || !Bloom.mayContain(header.logsBloom, bloom)) continue
            for (const log of yield* client.blockLogs(filter, header.hash)) late.push(log)
          }
          if (late.length > 0) {
            logs = [...logs, ...late].sort((a, b) => Number(a.blockNumber) - Number(b.blockNumber) || Number(a.logIndex) - Number(b.logIndex))
            const again = checkHashes(late, headers, hashes)
            if (again !== undefined) return again
          }
        }

        const out: Array<Event> = []
        for (const log of logs) {
          if (log.removed === true) continue
          const contract = byAddress.get(log.address.toLowerCase())
          const decoder = contract === undefined ? undefined : events.get(contract.name)?.get(log.topics[0]!)
          if (contract === undefined || decoder === undefined) continue
          const blockNumber = Number(log.blockNumber)
          const decoded = decoder.decode(log.topics, log.data)
          if (Result.isFailure(decoded)) {
            return yield* fail(`cannot decode ${contract.name}.${decoder.event.name} at block ${blockNumber}: ${decoded.failure.reason}`)
          }
          out.push({
            chainId: chain.chainId,
            contractName: contract.name,
            eventName: decoder.event.name,
            srcAddress: log.address.toLowerCase(),
            blockNumber,
            blockHash: log.blockHash,
            // Every log without a timestamp had its header fetched, checked to be that block.
            blockTimestamp: Number(log.blockTimestamp ?? headers.get(blockNumber)!.timestamp),
            logIndex: Number(log.logIndex),
            transactionHash: log.transactionHash,
            params: decoded.success
          })
        }
        const blocks: Array<Block> = [...hashes].map(([number, hash]) => ({ number, hash }))
        if (windowFrom !== undefined) {
          for (let n = windowFrom; n <= toBlock; n++) if (!hashes.has(n)) blocks.push({ number: n, hash: headers.get(n)!.hash })
        }
        return { _tag: "Fetched", result: { events: out, blocks, toBlock } } as const
      })

    /** A range fetched until its logs and headers agree (a reorg between the calls, a node behind the others). */
    const fetchRange = (request: FetchRequest): Effect.Effect<FetchResult, SourceError> =>
      Effect.gen(function*() {
        for (let attempt = 1; ; attempt++) {
          const fetched = yield* sourced(fetchOnce(request))
          if (fetched._tag === "Fetched") return fetched.result
          if (attempt >= consistencyAttempts) {
            return yield* fail(`block ${fetched.block}: ${fetched.detail}, still after ${attempt} fetches of blocks ${request.fromBlock}-${request.toBlock}`)
          }
          yield* Effect.logDebug(`Chain ${chain.chainId}: block ${fetched.block}: ${fetched.detail}; fetching blocks ${request.fromBlock}-${request.toBlock} again`)
          yield* Effect.sleep(Duration.millis(retryBase * 2 ** (attempt - 1)))
        }
      })

    // Ranges fetched ahead, concurrently, while earlier ones are processed: as wide as the last reply covered (so the
    // provider's range does not cut them short), one after the other. A request that starts where one of them does
    // takes it (what it covers past the request waits for the next one) and drops those before it.
    let ahead: Array<Ahead> = []
    let lastHead = 0

    const fetchAhead = (request: FetchRequest): Effect.Effect<FetchResult, SourceError> =>
      Effect.gen(function*() {
        const at = ahead.findIndex((a) => a.request.fromBlock === request.fromBlock && sameKind(a.request, request))
        for (const a of ahead.slice(0, at === -1 ? ahead.length : at)) yield* Fiber.interrupt(a.fiber)
        const taken = at === -1 ? undefined : ahead[at]!
        ahead = at === -1 ? [] : ahead.slice(at + 1)
        const fetched = taken === undefined ? yield* fetchRange(request) : yield* Fiber.join(taken.fiber)
        const covered = fetched.toBlock ?? request.toBlock
        // A range the provider cut short: those planned after it no longer follow it.
        if (taken !== undefined && covered < taken.request.toBlock) {
          for (const a of ahead) yield* Fiber.interrupt(a.fiber)
          ahead = []
        }
        let result = fetched
        if (covered > request.toBlock) {
          const rest = split(fetched, request.toBlock)
          result = rest.before
          ahead.unshift({ request: rangeOf(request, request.toBlock + 1, covered), fiber: yield* Effect.forkIn(Effect.succeed(rest.after), scope) })
        }
        const span = covered - request.fromBlock + 1
        let next = (ahead.at(-1)?.request.toBlock ?? covered) + 1
        while (ahead.length < prefetchDepth && next <= lastHead) {
          const planned = rangeOf(request, next, Math.min(lastHead, next + span - 1))
          ahead.push({ request: planned, fiber: yield* Effect.forkIn(fetchRange(planned), scope) })
          next = planned.toBlock + 1
        }
        return result
      })

    return {
      head: sourced(Effect.map(client.blockNumber, (n) => (lastHead = n))),
      blockHash: (n) => sourced(Effect.map(client.headers([n]), (headers) => headers.get(n)!.hash)),
      fetch: fetchAhead
    } satisfies ChainSource
  })

/** Requests for the same contracts, both inside the reorg window or both outside it. */
const sameKind = (a: FetchRequest, b: FetchRequest): boolean => a.contracts === b.contracts && (a.hashesFrom === undefined) === (b.hashesFrom === undefined)

/** `template` over [fromBlock, toBlock]. */
const rangeOf = (template: FetchRequest, fromBlock: number, toBlock: number): FetchRequest =>
  ({ ...template, fromBlock, toBlock, hashesFrom: template.hashesFrom === undefined ? undefined : Math.max(fromBlock, template.hashesFrom) })

/** A result cut after `toBlock`: what a request asked for, and the rest. */
const split = (result: FetchResult, toBlock: number): { readonly before: FetchResult; readonly after: FetchResult } => ({
  before: { events: result.events.filter((e) => e.blockNumber <= toBlock), blocks: result.blocks.filter((b) => b.number <= toBlock), toBlock },
  after: { events: result.events.filter((e) => e.blockNumber > toBlock), blocks: result.blocks.filter((b) => b.number > toBlock), ...(result.toBlock === undefined ? {} : { toBlock: result.toBlock }) }
})

/**
 * Records each block's hash as its logs name it into `hashes`; the first disagreement (two hashes in the logs of one
 * block, or a header with another hash) is returned.
 */
const checkHashes = (
  logs: ReadonlyArray<RpcClient.Log>,
  headers: ReadonlyMap<number, RpcClient.Header>,
  hashes: Map<number, Hex>
): Inconsistent | undefined => {
  for (const log of logs) {
    if (log.removed === true) continue
    const n = Number(log.blockNumber)
    const known = hashes.get(n)
    if (known === undefined) {
      const header = headers.get(n)
      if (header !== undefined && header.hash !== log.blockHash) {
        return { _tag: "Inconsistent", block: n, detail: `its logs name hash ${log.blockHash} and its header ${header.hash}`, header: true }
      }
      hashes.set(n, log.blockHash)
    } else if (known !== log.blockHash) {
      return { _tag: "Inconsistent", block: n, detail: `its logs name two hashes, ${known} and ${log.blockHash}`, header: false }
    }
  }
  return undefined
}
