/**
 * RpcSource: a chain over its JSON-RPC endpoints, through an RpcClient that owns the wire (retries, rate limits,
 * range and batch sizes, failover). This module plans a request's eth_getLogs filters (contracts' addresses, wildcard
 * events from any address, topic filters), asks for their logs, headers, and the transactions and receipts the
 * handlers select, and turns them into events: logs decoded with viem against the contracts' ABIs, blocks,
 * transactions and raw logs carrying the selected fields, timestamps from the logs or else their blocks' headers,
 * hashes of every block inside the reorg window, the blocks block handlers run for. What it hands on is consistent or
 * refetched: a log whose block header, transaction or receipt names another hash, logs of one block under two hashes,
 * or an object lacking a selected field make it fetch the range again; inside the window a block whose logsBloom may
 * hold our logs while eth_getLogs gave none is asked again by hash (a lagging node answers [] for blocks it does not
 * have yet). Up to four ranges are fetched ahead, concurrently. Contract reads go through Multicall3 where the chain
 * has it, else as plain eth_calls; a reverted call is a result. With a chain cache (`ChainInfo.cache`), logs, bodies,
 * headers known by hash and call results come from it where it has them, checked against the node
 * (internal/CachedRpc.ts).
 */
import { Duration, Effect, Fiber, Redacted, Result, Scope } from "effect"
import { type Abi, type Hex, multicall3Abi } from "viem"
import { decodeFunctionResult, encodeFunctionData } from "viem/utils"
import { type RpcError, SourceError } from "./Errors.js"
import type { Event } from "./Event.js"
import * as Fields from "./Fields.js"
import * as CachedRpc from "./internal/CachedRpc.js"
import * as EventDecoder from "./internal/EventDecoder.js"
import * as Bloom from "./internal/RpcBloom.js"
import * as RpcClient from "./RpcClient.js"
import {
  type Block,
  type BlockData,
  type CallResult,
  type ChainInfo,
  type ChainSource,
  type ContractCall,
  type ContractInfo,
  type EventInfo,
  type FetchRequest,
  type FetchResult,
  handlerBlockNumbers,
  handlerFields,
  matchesTopics,
  type Source,
  type Topics
} from "./Source.js"

type Url = string | Redacted.Redacted<string>

/** RpcClient's options, with one endpoint (`url`) or several in order of preference (`urls`). */
export type Options = Omit<RpcClient.Options, "chainId" | "urls"> & {
  /** Addresses per eth_getLogs filter (default 1000): a contract with more (a factory's children) takes several filters. */
  readonly addressesPerFilter?: number
} & (
  | { readonly url: Url; readonly urls?: undefined }
  | { readonly urls: ReadonlyArray<Url>; readonly url?: undefined }
)

export const source = (options: Options): Source => ({
  name: "rpc",
  make: (chain) => make(options, chain)
})

/** The canonical Multicall3 address (lowercase), deployed at the same address on most chains. */
export const multicall3Address = "0xca11bde05977b3631167028862be2a173976ca11"

/** Times a range is fetched again when its logs and headers disagree, before that is an error. */
const consistencyAttempts = 5
/** Times one header that disagrees with its block's logs is asked again before the range is fetched again. */
const headerAttempts = 3
/**
 * Ranges fetched ahead of the one being processed, concurrently: a slow or rate-limited request hides behind the
 * others (through a provider with 5% 429s, 2 left 25% of the direct speed on the table, 4 about 12%: docs/benchmarks.md).
 */
const prefetchDepth = 4
/** A range's eth_getLogs filters in flight at once (they share the client's batching, pace and limits). */
const filterConcurrency = 4
/** Default addresses per eth_getLogs filter: providers refuse or time out on longer lists. */
const defaultAddressesPerFilter = 1000
/** Handler blocks per fetch at most: a range with more covers less (one header each). */
const handlerBlocksPerFetch = 1000
/** Calls per Multicall3 aggregate3. */
const callsPerMulticall = 200

/** A range fetched ahead, and the request it was made as. */
interface Ahead {
  readonly request: FetchRequest
  readonly fiber: Fiber.Fiber<FetchResult, SourceError>
}

/** `header`: the block's header names another hash than its logs (else the logs name two, or another object disagrees). */
interface Inconsistent {
  readonly _tag: "Inconsistent"
  readonly block: number
  readonly detail: string
  readonly header: boolean
}

type Fetched = { readonly _tag: "Fetched"; readonly result: FetchResult } | Inconsistent

type Raw = Readonly<Record<string, unknown>>

/** An event a log may be: its contract, what the handler selects, and its decoder. */
interface Handled {
  readonly contract: ContractInfo
  readonly info: EventInfo
  readonly decoder: EventDecoder.EventDecoder
  /** Topics the event's logs carry: a wildcard log with another count is another event under the same selector. */
  readonly topicCount: number
}

/** A request's contracts as eth_getLogs filters and the events their logs may be. */
interface Plan {
  readonly filters: ReadonlyArray<RpcClient.LogFilter>
  /** Per filter: what its logs set in a block's bloom. */
  readonly blooms: ReadonlyArray<Bloom.Matcher>
  /** By lowercase address: its contract's events by selector. */
  readonly byAddress: ReadonlyMap<string, ReadonlyMap<Hex, Handled>>
  /** Wildcard contracts' events by selector, in contract order. */
  readonly wildcard: ReadonlyMap<Hex, ReadonlyArray<Handled>>
}

/** A log decoded as one of the request's events. */
interface Decoded {
  readonly log: RpcClient.Log
  readonly block: number
  readonly handled: Handled
  readonly params: Readonly<Record<string, unknown>>
}

interface Resolved {
  readonly decoded: Array<Decoded>
  /** The first log of a contract's address that its event does not decode: an error once the range is consistent. */
  readonly failure: string | undefined
}

/** One call of a range's transaction and receipt fetches: what it asks, what answers it, and where its answer goes. */
interface Wanted {
  readonly call: RpcClient.Call
  /** A reason when the result is not the item asked for (asked again). */
  readonly check: (result: unknown) => string | undefined
  /** Records the result; an inconsistency when it belongs to another block than the logs say. */
  readonly take: (result: unknown) => Inconsistent | undefined
}

const make = (options: Options, chain: ChainInfo): Effect.Effect<ChainSource, SourceError, Scope.Scope> =>
  Effect.gen(function*() {
    const toSource = (e: RpcError) =>
      new SourceError({ chainId: chain.chainId, message: e.reason === "Unavailable" ? `${e.message}; a rerun resumes from the last committed block` : e.message, cause: e })
    const { addressesPerFilter: perFilter, url, urls, ...rest } = options
    const addressesPerFilter = Math.max(1, perFilter ?? defaultAddressesPerFilter)
    const client = yield* Effect.mapError(RpcClient.make({ ...rest, chainId: chain.chainId, urls: urls ?? [url] }), toSource)
    const scope = yield* Effect.scope
    const retryBase = Duration.toMillis(Duration.fromInputUnsafe(options.retryBase ?? "200 millis"))
    const fail = (message: string) => new SourceError({ chainId: chain.chainId, message: `RPC: ${message}` })
    let lastHead = 0
    const cached = yield* CachedRpc.make(client, { chainId: chain.chainId, cache: chain.cache, reorgWindow: chain.reorgWindow ?? 200, head: () => lastHead })

    // Decoders by contract and ABI position: built once per run, not per request; plans per contracts list.
    const built = new Map<string, EventDecoder.EventDecoder>()
    const plans = new WeakMap<ReadonlyArray<ContractInfo>, Plan>()
    const planOf = (contracts: ReadonlyArray<ContractInfo>): Plan => {
      const known = plans.get(contracts)
      if (known !== undefined) return known
      const byAddress = new Map<string, ReadonlyMap<Hex, Handled>>()
      const wildcard = new Map<Hex, Array<Handled>>()
      const filters: Array<RpcClient.LogFilter> = []
      const seen = new Set<string>()
      const add = (filter: RpcClient.LogFilter) => {
        const key = JSON.stringify(filter)
        if (seen.has(key)) return
        seen.add(key)
        filters.push(filter)
      }
      const chunks = (addresses: ReadonlyArray<string>): Array<ReadonlyArray<string>> => {
        const out: Array<ReadonlyArray<string>> = []
        for (let i = 0; i < addresses.length; i += addressesPerFilter) out.push(addresses.slice(i, i + addressesPerFilter))
        return out
      }
      // Unfiltered events: of contracts at addresses in one filter (addresses and selectors each a union), wildcard ones in another.
      const boundAddresses = new Set<string>()
      const boundSelectors = new Set<Hex>()
      const wildcardSelectors = new Set<Hex>()
      for (const contract of contracts) {
        const addresses = contract.wildcard ? [] : [...new Set(contract.addresses.map((a) => a.toLowerCase()))]
        const selectors = new Map<Hex, Handled>()
        let unfiltered = false
        for (const [index, item] of (contract.abi as Abi).entries()) {
          if (item.type !== "event") continue
          const info = contract.events.find((e) => e.name === item.name)
          if (info === undefined) continue
          const key = `${contract.name}/${index}`
          let decoder = built.get(key)
          if (decoder === undefined) built.set(key, (decoder = EventDecoder.make(contract.name, item)))
          const topicCount = (item.anonymous === true ? 0 : 1) + item.inputs.filter((input) => input.indexed === true).length
          selectors.set(decoder.selector, { contract, info, decoder, topicCount })
          if (info.topics === undefined) {
            unfiltered = true
            if (contract.wildcard) wildcardSelectors.add(decoder.selector)
            else boundSelectors.add(decoder.selector)
            continue
          }
          // A filtered event: one filter per OR-branch (per address chunk), its selector in position 0 unless the branch names it.
          if (!contract.wildcard && addresses.length === 0) continue
          for (const branch of info.topics) {
            const topics: Topics = branch[0] === null || branch[0] === undefined ? [[decoder.selector], ...branch.slice(1)] : branch
            if (contract.wildcard) add({ addresses: undefined, topics })
            else for (const chunk of chunks(addresses)) add({ addresses: chunk, topics })
          }
        }
        if (contract.wildcard) {
          for (const [selector, handled] of selectors) wildcard.set(selector, [...(wildcard.get(selector) ?? []), handled])
        } else {
          for (const address of addresses) byAddress.set(address, selectors)
          if (unfiltered) for (const address of addresses) boundAddresses.add(address)
        }
      }
      if (boundAddresses.size > 0 && boundSelectors.size > 0) {
        for (const chunk of chunks([...boundAddresses])) add({ addresses: chunk, topics: [[...boundSelectors]] })
      }
      if (wildcardSelectors.size > 0) add({ addresses: undefined, topics: [[...wildcardSelectors]] })
      const made: Plan = { filters, blooms: filters.map((f) => Bloom.matcher(f.addresses, f.topics)), byAddress, wildcard }
      plans.set(contracts, made)
      return made
    }

    /**
     * The events of `logs`: a log of a contract's address is that contract's event by selector, else (or when that
     * contract does not handle the selector, or the log misses the event's topic filter) a wildcard contract's event of
     * the selector whose topics and data it decodes as. Other logs (asked for by another filter) are none.
     */
    const resolve = (plan: Plan, logs: ReadonlyArray<RpcClient.Log>): Resolved => {
      const decoded: Array<Decoded> = []
      let failure: string | undefined
      for (const log of logs) {
        if (log.removed === true || log.topics.length === 0) continue
        const selector = log.topics[0]!.toLowerCase() as Hex
        const block = Number(log.blockNumber)
        const bound = plan.byAddress.get(log.address.toLowerCase())?.get(selector)
        if (bound !== undefined && matchesTopics(bound.info.topics, log.topics)) {
          const result = bound.decoder.decode(log.topics, log.data)
          if (Result.isSuccess(result)) decoded.push({ log, block, handled: bound, params: result.success })
          else failure ??= `cannot decode ${bound.contract.name}.${bound.decoder.event.name} at block ${block}, log ${Number(log.logIndex)}: ${result.failure.reason}`
          continue
        }
        for (const handled of plan.wildcard.get(selector) ?? []) {
          if (log.topics.length !== handled.topicCount || !matchesTopics(handled.info.topics, log.topics)) continue
          const result = handled.decoder.decode(log.topics, log.data)
          if (Result.isFailure(result)) continue
          decoded.push({ log, block, handled, params: result.success })
          break
        }
      }
      return { decoded, failure }
    }

    const sourced = <A>(effect: Effect.Effect<A, RpcError | SourceError>) => Effect.mapError(effect, (e) => (e._tag === "RpcError" ? toSource(e) : e))

    // An endpoint answering eth_getBlockReceipts with "method not found" (or refusing it otherwise): receipts one by one.
    let blockReceipts = true

    /** The raw transactions and receipts `decoded` selects fields of, checked to be of the blocks their logs name. */
    const bodiesOf = (decoded: ReadonlyArray<Decoded>, fetch: CachedRpc.Fetch) =>
      Effect.gen(function*() {
        const transactions = new Map<Hex, Raw>()
        const receipts = new Map<Hex, Raw>()
        // Per block: its hash as the logs name it, and the transactions whose objects and receipts are wanted.
        const blocks = new Map<number, { readonly hash: Hex; readonly transactions: Set<Hex>; readonly receipts: Set<Hex> }>()
        for (const d of decoded) {
          const fields = d.handled.info.fields.transaction
          const transaction = Fields.needsTransaction(fields)
          const receipt = Fields.needsReceipt(fields)
          if (!transaction && !receipt) continue
          let block = blocks.get(d.block)
          if (block === undefined) blocks.set(d.block, (block = { hash: lower(d.log.blockHash), transactions: new Set(), receipts: new Set() }))
          const hash = lower(d.log.transactionHash)
          if (transaction) block.transactions.add(hash)
          if (receipt) block.receipts.add(hash)
        }
        if (blocks.size === 0) return { _tag: "Bodies", transactions, receipts } as const
        const stored = yield* fetch.bodies(blocks.values())
        for (const [hash, tx] of stored.transactions) transactions.set(hash, tx)
        for (const [hash, receipt] of stored.receipts) receipts.set(hash, receipt)
        for (const block of blocks.values()) {
          for (const hash of stored.transactions.keys()) block.transactions.delete(hash)
          for (const hash of stored.receipts.keys()) block.receipts.delete(hash)
        }
        const main: Array<Wanted> = []
        const byBlock: Array<Wanted> = []
        const perTransaction: Array<Wanted> = []
        for (const [n, block] of blocks) {
          if (block.transactions.size >= 2) main.push(fullBlock(n, block.hash, block.transactions, transactions))
          else for (const hash of block.transactions) main.push(transactionByHash(n, block.hash, hash, transactions))
          const oneByOne = [...block.receipts].map((hash) => receiptByHash(n, block.hash, hash, receipts))
          if (block.receipts.size >= 2 && blockReceipts) {
            byBlock.push(receiptsOfBlock(n, block.hash, block.receipts, receipts))
            perTransaction.push(...oneByOne)
          } else main.push(...oneByOne)
        }
        const run = (wanted: ReadonlyArray<Wanted>) =>
          wanted.length === 0 ? Effect.succeed(undefined) : Effect.map(
            client.batch(wanted.map((w) => w.call), (result, i) => wanted[i]!.check(result)),
            (results): Inconsistent | undefined => {
              for (let i = 0; i < results.length; i++) {
                const inconsistent = wanted[i]!.take(results[i])
                if (inconsistent !== undefined) return inconsistent
              }
              return undefined
            }
          )
        const receiptsByBlock = Effect.catchIf(
          run(byBlock),
          (e) => e.reason === "Permanent",
          (e) =>
            Effect.gen(function*() {
              if (blockReceipts) yield* Effect.logWarning(`Chain ${chain.chainId}: the RPC refuses eth_getBlockReceipts (${e.message}); asking for receipts one by one`)
              blockReceipts = false
              return yield* run(perTransaction)
            })
        )
        const [first, second] = yield* Effect.all([run(main), receiptsByBlock], { concurrency: 2 })
        return first ?? second ?? ({ _tag: "Bodies", transactions, receipts } as const)
      })

    const fetchOnce = (request: FetchRequest): Effect.Effect<Fetched, RpcError | SourceError> =>
      Effect.gen(function*() {
        const plan = planOf(request.contracts)
        const fetch = cached.fetch()
        const fetched = yield* Effect.forEach(plan.filters, (filter) => fetch.logs(filter, request.fromBlock, request.toBlock), { concurrency: filterConcurrency })
        // Every filter's logs up to the shortest range one covered (and the handler blocks one fetch serves).
        let toBlock = fetched.reduce((to, f) => Math.min(to, f.toBlock), request.toBlock)
        let handlerBlocks = handlerBlockNumbers(request.blockHandlers, request.fromBlock, toBlock)
        if (handlerBlocks.length > handlerBlocksPerFetch) {
          toBlock = handlerBlocks[handlerBlocksPerFetch - 1]!
          handlerBlocks = handlerBlocks.slice(0, handlerBlocksPerFetch)
        }
        const merged = mergeLogs(fetched.map((f) => f.logs), toBlock)
        if (isInconsistent(merged)) return merged
        let logs: ReadonlyArray<RpcClient.Log> = merged
        const resolved = resolve(plan, logs)
        let decoded = resolved.decoded
        let failure = resolved.failure
        const windowFrom = request.hashesFrom === undefined || request.hashesFrom > toBlock ? undefined : Math.max(request.fromBlock, request.hashesFrom)

        // Headers: of events' blocks without a timestamp in their logs or with block fields selected (below the window
        // known by their logs' hash: the cache may have them), of every block inside the window, of the handler blocks,
        // and of the last block when logs came from the node (its hash dates them in the cache); one fetch per block.
        const wanted = new Set<number>(handlerBlocks)
        const known = new Map<number, Hex>()
        for (const d of decoded) {
          if (d.log.blockTimestamp !== undefined && d.handled.info.fields.block.length === 0) continue
          wanted.add(d.block)
          if (windowFrom === undefined || d.block < windowFrom) known.set(d.block, lower(d.log.blockHash))
        }
        if (windowFrom !== undefined) for (let n = windowFrom; n <= toBlock; n++) wanted.add(n)
        if (fetch.fetchedLogs()) wanted.add(toBlock)
        const headers = new Map(wanted.size === 0 ? [] : yield* fetch.headers([...wanted].sort((a, b) => a - b), known))

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
        if (windowFrom !== undefined && plan.filters.length > 0) {
          // Per filter: the blocks its logs came from. A window block whose bloom may hold a filter's logs while that
          // filter gave none is asked again by hash (another filter's logs there say nothing about this one's).
          const seenBy = fetched.map((f) => new Set(f.logs.map((log) => Number(log.blockNumber))))
          const asks: Array<readonly [RpcClient.LogFilter, Hex]> = []
          for (let n = windowFrom; n <= toBlock; n++) {
            const header = headers.get(n)!
            for (let i = 0; i < plan.filters.length; i++) {
              if (!seenBy[i]!.has(n) && Bloom.mayContain(header.logsBloom, plan.blooms[i]!)) asks.push([plan.filters[i]!, header.hash])
            }
          }
          const found = yield* Effect.forEach(asks, ([filter, hash]) => fetch.blockLogs(filter, hash), { concurrency: filterConcurrency })
          const late = mergeLogs(found, toBlock)
          if (isInconsistent(late)) return late
          if (late.length > 0) {
            const again = checkHashes(late, headers, hashes)
            if (again !== undefined) return again
            const known = new Set(logs.map(positionOf))
            const fresh = late.filter((log) => !known.has(positionOf(log)))
            if (fresh.length > 0) {
              logs = [...logs, ...fresh].sort(byPosition)
              const more = resolve(plan, fresh)
              decoded = [...decoded, ...more.decoded].sort((a, b) => byPosition(a.log, b.log))
              failure ??= more.failure
            }
          }
        }
        if (failure !== undefined) return yield* fail(failure)

        const bodies = yield* bodiesOf(decoded, fetch)
        if (bodies._tag === "Inconsistent") return bodies

        // Objects shared within the range: a block's (per selection), a transaction's (per selection).
        const blockObjects = new Map<string, BlockData>()
        const blockOf = (n: number, hash: Hex, timestamp: Hex | undefined, fields: ReadonlyArray<Fields.BlockField>): BlockData | Inconsistent => {
          const key = `${n}|${fields.join(",")}`
          const known = blockObjects.get(key)
          if (known !== undefined) return known
          const header = headers.get(n)
          let made: BlockData
          if (fields.length === 0) {
            // Every block without a timestamp in its logs had its header fetched, checked to be that block.
            made = { number: n, hash, timestamp: Number(timestamp ?? header!.timestamp) }
          } else {
            const read = Fields.blockFromRpc(header!, fields)
            if (read instanceof Fields.MissingField) return { _tag: "Inconsistent", block: n, detail: read.message, header: false }
            made = read as BlockData
          }
          blockObjects.set(key, made)
          return made
        }
        const transactionObjects = new Map<string, Event["transaction"]>()

        const events: Array<Event> = []
        for (const d of decoded) {
          const { log } = d
          const { fields } = d.handled.info
          const block = blockOf(d.block, log.blockHash, log.blockTimestamp, fields.block)
          if (isInconsistent(block)) return block
          const hash = lower(log.transactionHash)
          const key = `${hash}|${fields.transaction.join(",")}`
          let transaction = transactionObjects.get(key)
          if (transaction === undefined) {
            const read = fields.transaction.length === 0 ? { hash } : Fields.transactionFromRpc(
              hash,
              Number(log.transactionIndex),
              fields.transaction,
              Fields.needsTransaction(fields.transaction) ? bodies.transactions.get(hash) : undefined,
              Fields.needsReceipt(fields.transaction) ? bodies.receipts.get(hash) : undefined
            )
            if (read instanceof Fields.MissingField) return { _tag: "Inconsistent", block: d.block, detail: `transaction ${hash}: ${read.message}`, header: false } as const
            transactionObjects.set(key, (transaction = read as Raw & Fields.TransactionDefaults))
          }
          events.push({
            chainId: chain.chainId,
            contractName: d.handled.contract.name,
            eventName: d.handled.decoder.event.name,
            srcAddress: log.address.toLowerCase(),
            blockNumber: d.block,
            blockHash: log.blockHash,
            blockTimestamp: block.timestamp,
            logIndex: Number(log.logIndex),
            transactionHash: log.transactionHash,
            params: d.params,
            block,
            transaction,
            log: fields.log.length === 0 ? noLog : logFields(log, fields.log)
          })
        }

        const handlerFieldList = handlerFields(request.blockHandlers)
        const handled: Array<BlockData> = []
        for (const n of handlerBlocks) {
          const header = headers.get(n)!
          const block = blockOf(n, header.hash, header.timestamp, handlerFieldList)
          if (isInconsistent(block)) return block
          handled.push(block)
        }

        const blocks: Array<Block> = [...hashes].map(([number, hash]) => ({ number, hash }))
        if (windowFrom !== undefined) {
          for (let n = windowFrom; n <= toBlock; n++) if (!hashes.has(n)) blocks.push({ number: n, hash: headers.get(n)!.hash })
        }
        yield* fetch.commit(toBlock, headers.get(toBlock)?.hash, bodies)
        return { _tag: "Fetched", result: { events, blocks, handlerBlocks: handled, toBlock } } as const
      })

    /** A range fetched until its logs, headers and bodies agree (a reorg between the calls, a node behind the others). */
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

    // --- contract reads ------------------------------------------------------------------------------------------

    // Whether the chain has Multicall3 (asked once, at the first read), and the highest block seen before it was deployed.
    let multicall: boolean | undefined
    let withoutMulticallUpTo = -1

    const readFromNode = Effect.fnUntraced(function*(calls: ReadonlyArray<ContractCall>) {
      const results = new Array<CallResult>(calls.length)
      if (calls.length === 0) return results
      // Calls per block: by its hash when given (EIP-1898), else by number.
      const groups = new Map<string, { readonly blockNumber: number; readonly block: unknown; readonly indices: Array<number> }>()
      for (const [i, c] of calls.entries()) {
        const key = c.blockHash === undefined ? `n${c.blockNumber}` : `h${c.blockHash.toLowerCase()}`
        let group = groups.get(key)
        if (group === undefined) groups.set(key, (group = { blockNumber: c.blockNumber, block: c.blockHash === undefined ? hex(c.blockNumber) : { blockHash: c.blockHash }, indices: [] }))
        group.indices.push(i)
      }
      multicall ??= (yield* client.call("eth_getCode", [multicall3Address, "latest"])) !== "0x"
      const plain = (indices: ReadonlyArray<number>, block: unknown) =>
        indices.map((i): readonly [RpcClient.Call, ReadonlyArray<number>] => [{ method: "eth_call", params: [{ to: calls[i]!.to, data: calls[i]!.data }, block] }, [i]])
      const aggregated = (indices: ReadonlyArray<number>, block: unknown): Array<readonly [RpcClient.Call, ReadonlyArray<number>]> => {
        const out: Array<readonly [RpcClient.Call, ReadonlyArray<number>]> = []
        for (let at = 0; at < indices.length; at += callsPerMulticall) {
          const part = indices.slice(at, at + callsPerMulticall)
          const data = encodeFunctionData({
            abi: multicall3Abi,
            functionName: "aggregate3",
            args: [part.map((i) => ({ target: calls[i]!.to as Hex, allowFailure: true, callData: calls[i]!.data }))]
          })
          out.push([{ method: "eth_call", params: [{ to: multicall3Address, data }, block] }, part])
        }
        return out
      }
      let round: Array<readonly [RpcClient.Call, ReadonlyArray<number>]> = []
      const blockOf = new Map<RpcClient.Call, { readonly blockNumber: number; readonly block: unknown }>()
      for (const group of groups.values()) {
        const viaMulticall = multicall && group.blockNumber > withoutMulticallUpTo && group.indices.length > 1
        const made = viaMulticall ? aggregated(group.indices, group.block) : plain(group.indices, group.block)
        for (const [call] of made) if (viaMulticall) blockOf.set(call, group)
        round.push(...made)
      }
      // Two rounds at most: a block where aggregate3 answers nothing (Multicall3 not deployed yet) is asked with plain calls.
      while (round.length > 0) {
        const outcomes = yield* client.calls(round.map(([call]) => call), (result) => (isHexData(result) ? undefined : `eth_call answered ${JSON.stringify(result)?.slice(0, 80)}, not data`))
        const again: Array<readonly [RpcClient.Call, ReadonlyArray<number>]> = []
        for (const [j, [call, indices]] of round.entries()) {
          const outcome = outcomes[j]!
          const group = blockOf.get(call)
          if (group === undefined) {
            results[indices[0]!] = outcome._tag === "Success" ? { _tag: "Success", data: outcome.value as Hex } : { _tag: "Reverted", data: outcome.data }
            continue
          }
          const returned = outcome._tag === "Success" ? aggregate3Results(outcome.value as Hex, indices.length) : undefined
          if (returned === undefined) {
            if (outcome._tag === "Success" && outcome.value === "0x") withoutMulticallUpTo = Math.max(withoutMulticallUpTo, group.blockNumber)
            again.push(...plain(indices, group.block))
            continue
          }
          for (const [k, r] of returned.entries()) results[indices[k]!] = { _tag: r.success ? "Success" : "Reverted", data: r.returnData }
        }
        round = again
      }
      return results
    })

    const readContracts = Effect.fn("RpcSource.readContracts")(function*(calls: ReadonlyArray<ContractCall>) {
      return yield* cached.calls(calls, readFromNode)
    }, (effect) => sourced(effect))

    return {
      head: sourced(Effect.map(client.blockNumber, (n) => (lastHead = n))),
      blockHash: (n) => sourced(Effect.map(client.headers([n]), (headers) => headers.get(n)!.hash)),
      fetch: fetchAhead,
      readContracts
    } satisfies ChainSource
  })

/** Requests for the same contracts and block handlers, both inside the reorg window or both outside it. */
const sameKind = (a: FetchRequest, b: FetchRequest): boolean =>
  a.contracts === b.contracts && a.blockHandlers === b.blockHandlers && (a.hashesFrom === undefined) === (b.hashesFrom === undefined)

/** `template` over [fromBlock, toBlock]. */
const rangeOf = (template: FetchRequest, fromBlock: number, toBlock: number): FetchRequest =>
  ({ ...template, fromBlock, toBlock, hashesFrom: template.hashesFrom === undefined ? undefined : Math.max(fromBlock, template.hashesFrom) })

/** A result cut after `toBlock`: what a request asked for, and the rest. */
const split = (result: FetchResult, toBlock: number): { readonly before: FetchResult; readonly after: FetchResult } => ({
  before: {
    events: result.events.filter((e) => e.blockNumber <= toBlock),
    blocks: result.blocks.filter((b) => b.number <= toBlock),
    ...(result.handlerBlocks === undefined ? {} : { handlerBlocks: result.handlerBlocks.filter((b) => b.number <= toBlock) }),
    toBlock
  },
  after: {
    events: result.events.filter((e) => e.blockNumber > toBlock),
    blocks: result.blocks.filter((b) => b.number > toBlock),
    ...(result.handlerBlocks === undefined ? {} : { handlerBlocks: result.handlerBlocks.filter((b) => b.number > toBlock) }),
    ...(result.toBlock === undefined ? {} : { toBlock: result.toBlock })
  }
})

// --- the calls of a range's transactions and receipts -------------------------------------------------------------

/** A block with its transactions, for several of them. */
const fullBlock = (n: number, hash: Hex, wanted: ReadonlySet<Hex>, into: Map<Hex, Raw>): Wanted => {
  return {
    call: { method: "eth_getBlockByNumber", params: [hex(n), true] },
    check: (result) => {
      const block = result as Raw
      if (typeof result !== "object" || Number(block.number) !== n) return `eth_getBlockByNumber(${n}, true) answered block ${String(block?.number)}`
      return Array.isArray(block.transactions) ? undefined : `eth_getBlockByNumber(${n}, true) answered a block without transactions`
    },
    take: (result) => {
      const block = result as Raw
      if (lower(block.hash) !== hash) return { _tag: "Inconsistent", block: n, detail: `its logs name hash ${hash} and its block with transactions ${String(block.hash)}`, header: false }
      const found = new Map<Hex, Raw>()
      for (const tx of block.transactions as ReadonlyArray<Raw>) if (typeof tx === "object" && tx !== null) found.set(lower(tx.hash), tx)
      for (const h of wanted) {
        const tx = found.get(h)
        if (tx === undefined) return { _tag: "Inconsistent", block: n, detail: `its block with transactions (hash ${hash}) lacks transaction ${h} of its logs`, header: false }
        into.set(h, tx)
      }
      return undefined
    }
  }
}

const transactionByHash = (n: number, blockHash: Hex, hash: Hex, into: Map<Hex, Raw>): Wanted => {
  return {
    call: { method: "eth_getTransactionByHash", params: [hash] },
    check: (result) => (typeof result === "object" && lower((result as Raw).hash) === hash ? undefined : `eth_getTransactionByHash(${hash}) answered another transaction`),
    take: (result) => {
      const tx = result as Raw
      if (lower(tx.blockHash) !== blockHash) {
        return { _tag: "Inconsistent", block: n, detail: `its logs name hash ${blockHash} and transaction ${hash} block ${String(tx.blockHash)}`, header: false }
      }
      into.set(hash, tx)
      return undefined
    }
  }
}

const receiptsOfBlock = (n: number, blockHash: Hex, wanted: ReadonlySet<Hex>, into: Map<Hex, Raw>): Wanted => {
  return {
    call: { method: "eth_getBlockReceipts", params: [hex(n)] },
    check: (result) =>
      Array.isArray(result) && result.length > 0 && result.every((r) => typeof r === "object" && r !== null && Number((r as Raw).blockNumber) === n) ?
        undefined :
        `eth_getBlockReceipts(${n}) answered no receipts of that block`,
    take: (result) => {
      const found = new Map<Hex, Raw>()
      for (const receipt of result as ReadonlyArray<Raw>) {
        if (lower(receipt.blockHash) !== blockHash) {
          return { _tag: "Inconsistent", block: n, detail: `its logs name hash ${blockHash} and its receipts ${String(receipt.blockHash)}`, header: false }
        }
        found.set(lower(receipt.transactionHash), receipt)
      }
      for (const h of wanted) {
        const receipt = found.get(h)
        if (receipt === undefined) return { _tag: "Inconsistent", block: n, detail: `its receipts (hash ${blockHash}) lack transaction ${h} of its logs`, header: false }
        into.set(h, receipt)
      }
      return undefined
    }
  }
}

const receiptByHash = (n: number, blockHash: Hex, hash: Hex, into: Map<Hex, Raw>): Wanted => {
  return {
    call: { method: "eth_getTransactionReceipt", params: [hash] },
    check: (result) =>
      typeof result === "object" && lower((result as Raw).transactionHash) === hash ? undefined : `eth_getTransactionReceipt(${hash}) answered another receipt`,
    take: (result) => {
      const receipt = result as Raw
      if (lower(receipt.blockHash) !== blockHash) {
        return { _tag: "Inconsistent", block: n, detail: `its logs name hash ${blockHash} and the receipt of transaction ${hash} block ${String(receipt.blockHash)}`, header: false }
      }
      into.set(hash, receipt)
      return undefined
    }
  }
}

const isInconsistent = (value: unknown): value is Inconsistent =>
  typeof value === "object" && value !== null && (value as { readonly _tag?: unknown })._tag === "Inconsistent"

const hex = (n: number): Hex => `0x${n.toString(16)}`

const lower = (value: unknown): Hex => (typeof value === "string" ? value.toLowerCase() : "") as Hex

const isHexData = (value: unknown): value is Hex => typeof value === "string" && /^0x[0-9a-fA-F]*$/.test(value)

const noLog: Readonly<Record<string, unknown>> = {}

/** `event.log`: the selected fields of the raw log. */
const logFields = (log: RpcClient.Log, fields: ReadonlyArray<Fields.LogField>): Readonly<Record<string, unknown>> => {
  const out: Record<string, unknown> = {}
  for (const field of fields) out[field] = field === "topics" ? log.topics : log.data
  return out
}

const positionOf = (log: RpcClient.Log): string => `${Number(log.blockNumber)}:${Number(log.logIndex)}`

const byPosition = (a: RpcClient.Log, b: RpcClient.Log): number => Number(a.blockNumber) - Number(b.blockNumber) || Number(a.logIndex) - Number(b.logIndex)

/**
 * The logs of several filters up to `toBlock`, in block and log index order, each once (filters overlap); a log that
 * two filters name under two block hashes is an inconsistency.
 */
const mergeLogs = (lists: ReadonlyArray<ReadonlyArray<RpcClient.Log>>, toBlock: number): Array<RpcClient.Log> | Inconsistent => {
  const all: Array<RpcClient.Log> = []
  for (const list of lists) for (const log of list) if (Number(log.blockNumber) <= toBlock) all.push(log)
  // One filter's logs come in order (RpcClient.logs); several are merged.
  if (lists.length <= 1) return all
  all.sort(byPosition)
  const out: Array<RpcClient.Log> = []
  for (const log of all) {
    const previous = out.at(-1)
    if (previous !== undefined && Number(previous.blockNumber) === Number(log.blockNumber) && Number(previous.logIndex) === Number(log.logIndex)) {
      if (previous.blockHash !== log.blockHash) {
        return { _tag: "Inconsistent", block: Number(log.blockNumber), detail: `its logs name two hashes, ${previous.blockHash} and ${log.blockHash}`, header: false }
      }
      continue
    }
    out.push(log)
  }
  return out
}

/** An aggregate3 reply's results, or undefined when it is none (no Multicall3 at that block: "0x") or not one per call. */
const aggregate3Results = (data: Hex, count: number): ReadonlyArray<{ readonly success: boolean; readonly returnData: Hex }> | undefined => {
  if (data === "0x") return undefined
  try {
    const results = decodeFunctionResult({ abi: multicall3Abi, functionName: "aggregate3", data })
    return results.length === count ? results : undefined
  } catch {
    return undefined
  }
}

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
