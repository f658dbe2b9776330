/**
 * Test kit for users' handlers: run an indexer over given events (and blocks, for block handlers) on the in-memory
 * layers and read back the entities it wrote — the full runtime (preload, store, persistence cycle) without a
 * database. Each test event is encoded into a log with its contract's ABI and decoded like a chain's, so handlers
 * see what a chain gives them: its topic filters apply to it, and selected fields must be given.
 */
import { Effect, Layer } from "effect"
import type { Abi, AbiEvent, Hex } from "viem"
// The subpath: the package index loads viem's clients and chains too.
import { encodeAbiParameters, encodeEventTopics } from "viem/utils"
import * as Config from "./Config.js"
import type * as Entity from "./Entity.js"
import * as Errors from "./Errors.js"
import type * as Fields from "./Fields.js"
import * as Indexer from "./Indexer.js"
import * as EventDecoder from "./internal/EventDecoder.js"
import type { RunResult } from "./Processor.js"
import * as Runtime from "./Runtime.js"
import * as Source from "./Source.js"
import * as Storage from "./Storage.js"

/**
 * An event to feed a handler; block fields default from the block number. `params` are keyed as handlers read
 * them: by input name, or by position ("3") for an unnamed input; an indexed string or bytes is given as its value.
 */
export interface TestEvent {
  readonly chainId?: number
  readonly blockNumber: number
  readonly contractName: string
  readonly eventName: string
  readonly params: Readonly<Record<string, unknown>>
  readonly srcAddress?: string
  readonly transactionHash?: string
  readonly blockTimestamp?: number
  /** The transaction's (and receipt's) fields the event selects. */
  readonly transaction?: Partial<Fields.TransactionSelectable & Fields.ReceiptSelectable>
  /** The block's fields the event selects (events of one block must agree on them). */
  readonly block?: Partial<Fields.BlockSelectable>
}

/** A block for block handlers to run on, with the fields they select; blocks with events exist already. */
export interface TestBlock {
  readonly _tag: "Block"
  readonly chainId?: number
  readonly blockNumber: number
  readonly blockTimestamp?: number
  readonly fields?: Partial<Fields.BlockSelectable>
}

export const block = (
  blockNumber: number,
  options: { readonly chainId?: number; readonly blockTimestamp?: number; readonly fields?: Partial<Fields.BlockSelectable> } = {}
): TestBlock => ({ _tag: "Block", blockNumber, ...options })

/** A test event; `params` are checked against the contract's ABI when the run starts (their type cannot be). */
export const event = (
  contractName: string,
  eventName: string,
  params: Readonly<Record<string, unknown>>,
  at: Omit<TestEvent, "contractName" | "eventName" | "params">
): TestEvent => ({ contractName, eventName, params, ...at })

export interface TestDb {
  readonly result: RunResult
  readonly get: <E extends Entity.Any>(entity: E, id: string) => Effect.Effect<Entity.Type<E> | undefined>
  readonly all: <E extends Entity.Any>(entity: E) => Effect.Effect<ReadonlyArray<Entity.Type<E>>>
}

/**
 * Runs `indexer` over `items` (each chain's source replaced by the events and blocks given for it, in block order)
 * and returns the committed entities. The definition is validated first. A test event that does not fit its
 * contract's ABI fails with an `EventParamsError` naming contract, event, param; a field an event or block handler
 * selects but the test does not give fails the run with a `SourceError` naming it.
 */
export const run = (
  indexer: Indexer.Indexer,
  items: ReadonlyArray<TestEvent | TestBlock>,
  options: { readonly config?: Partial<Config.Options> } = {}
): Effect.Effect<TestDb, Errors.Fatal | Errors.BuildChangedError | Errors.EventParamsError | Errors.IndexerDefinitionError, Storage.Storage | Storage.MemoryStorage> =>
  Effect.gen(function*() {
    yield* Indexer.validate(indexer, "indexer")
    const decode = decoding(indexer)
    const logs = new Map<TestEvent, Log>()
    for (const e of items) if (!isBlock(e)) logs.set(e, yield* decode(e))
    const chains = []
    for (const chain of indexer.chains) {
      const byBlock = new Map<number, { events: Array<Source.MemoryEvent>; timestamp?: number; fields: Partial<Fields.BlockSelectable> }>()
      for (const e of items) {
        if ((e.chainId ?? indexer.chains[0]!.id) !== chain.id) continue
        let block = byBlock.get(e.blockNumber)
        if (block === undefined) byBlock.set(e.blockNumber, (block = { events: [], fields: {} }))
        const problem = mergeBlock(block, e.blockTimestamp, isBlock(e) ? e.fields : e.block)
        if (problem !== undefined) return yield* new Errors.SourceError({ chainId: chain.id, message: `test block ${e.blockNumber}: ${problem}` })
        if (isBlock(e)) continue
        const log = logs.get(e)!
        block.events.push({
          contractName: e.contractName,
          eventName: e.eventName,
          params: log.params,
          topics: log.topics,
          data: log.data,
          // A chain reports the emitter in lowercase.
          ...(e.srcAddress === undefined ? {} : { srcAddress: e.srcAddress.toLowerCase() }),
          ...(e.transactionHash === undefined ? {} : { transactionHash: e.transactionHash }),
          ...(e.transaction === undefined ? {} : { transaction: e.transaction })
        })
      }
      const blocks = [...byBlock].sort(([a], [b]) => a - b).map(([number, b]) => ({
        number,
        events: b.events,
        fields: b.fields,
        ...(b.timestamp === undefined ? {} : { timestamp: b.timestamp })
      }))
      const last = blocks[blocks.length - 1]?.number ?? chain.startBlock
      chains.push({ ...chain, source: Source.memory(blocks, { head: last }).source, endBlock: Math.max(last, chain.startBlock) })
    }
    const result = yield* Runtime.run({ ...indexer, chains }).pipe(Effect.provide(Config.layer(options.config ?? {})))
    const memory = yield* Storage.MemoryStorage
    return {
      result,
      get: (entity, id) => Effect.map(memory.rows(entity.name), (rows) => rows.get(id) as Entity.Type<typeof entity> | undefined),
      all: (entity) => Effect.map(memory.rows(entity.name), (rows) => [...rows.values()] as Array<Entity.Type<typeof entity>>)
    } satisfies TestDb
  })

/** The in-memory storage a test runs against. */
export const layer: Layer.Layer<Storage.Storage | Storage.MemoryStorage> = Storage.layerMemory

const isBlock = (item: TestEvent | TestBlock): item is TestBlock => "_tag" in item && item._tag === "Block"

/** Adds a test item's timestamp and block fields to its block; a disagreement between two items is a problem. */
const mergeBlock = (
  block: { timestamp?: number; fields: Partial<Fields.BlockSelectable> },
  timestamp: number | undefined,
  fields: Partial<Fields.BlockSelectable> | undefined
): string | undefined => {
  if (timestamp !== undefined) {
    if (block.timestamp !== undefined && block.timestamp !== timestamp) return `two timestamps, ${block.timestamp} and ${timestamp}`
    block.timestamp = timestamp
  }
  const known = block.fields as Record<string, unknown>
  for (const [key, value] of Object.entries(fields ?? {})) {
    if (known[key] !== undefined && known[key] !== value) return `two values of ${key}, ${String(known[key])} and ${String(value)}`
    known[key] = value
  }
  return undefined
}

/** A test event as a chain would log it: its topics and data, and the params decoded from them. */
interface Log {
  readonly topics: ReadonlyArray<Hex>
  readonly data: Hex
  readonly params: Readonly<Record<string, unknown>>
}

/** Encodes test events through their contracts' ABIs and decodes them back, with one decoder per contract event. */
const decoding = (indexer: Indexer.Indexer) => {
  const decoders = new Map<string, ReadonlyArray<EventDecoder.EventDecoder>>()
  return (e: TestEvent): Effect.Effect<Log, Errors.EventParamsError> =>
    Effect.gen(function*() {
      const chainId = e.chainId ?? indexer.chains[0]!.id
      const key = `${chainId}/${e.contractName}/${e.eventName}`
      let candidates = decoders.get(key)
      if (candidates === undefined) {
        const fail = (reason: string) => new Errors.EventParamsError({ contract: e.contractName, event: e.eventName, reason })
        const chain = indexer.chains.find((c) => c.id === chainId)
        if (chain === undefined) return yield* fail(`the indexer has no chain ${chainId}`)
        const contract = chain.contracts.find((c) => c.name === e.contractName)
        if (contract === undefined) return yield* fail(`chain ${chainId} has no contract "${e.contractName}"`)
        candidates = (contract.abi as Abi)
          .filter((item): item is AbiEvent => item.type === "event" && item.name === e.eventName)
          .map((item) => EventDecoder.make(e.contractName, item))
        if (candidates.length === 0) return yield* fail(`the ABI of "${e.contractName}" has no event "${e.eventName}"`)
        decoders.set(key, candidates)
      }
      // Overloaded events share a name: the first whose inputs the params fit.
      let first: Errors.EventParamsError | undefined
      for (const decoder of candidates) {
        const result = yield* Effect.result(throughAbi(decoder, e.params))
        if (result._tag === "Success") return result.success
        first ??= result.failure
      }
      return yield* first!
    })
}

/** `params` as a chain delivers them: encoded into a log with the event's ABI, then decoded like any log. */
const throughAbi = (decoder: EventDecoder.EventDecoder, params: Readonly<Record<string, unknown>>) =>
  Effect.gen(function*() {
    const event = decoder.event
    const fail = (param: string | undefined, reason: string, cause?: unknown) =>
      new Errors.EventParamsError({ contract: decoder.contract, event: event.name, param, reason, cause })
    const keys = event.inputs.map(EventDecoder.keyOf)
    for (const key of Object.keys(params)) {
      if (!keys.includes(key)) return yield* fail(key, `is not an input of the event (its params: ${keys.join(", ")})`)
    }
    const topicArgs: Array<unknown> = []
    const dataArgs: Array<unknown> = []
    for (const [i, input] of event.inputs.entries()) {
      const key = keys[i]!
      const value = params[key]
      if (value === undefined || value === null) return yield* fail(key, `is missing (${input.type})`)
      if (input.indexed === true && (input.type === "tuple" || input.type.endsWith("]"))) {
        return yield* fail(key, `an indexed ${input.type} is only a hash on chain: test events cannot carry one`)
      }
      // Encoded alone first, so that a value of the wrong type names its param.
      yield* Effect.try({
        try: () => encodeAbiParameters([input], [value]),
        catch: (cause) => fail(key, `is not a valid ${input.type}: ${EventDecoder.describeCause(cause)}`, cause)
      })
      if (input.indexed === true) topicArgs.push(value)
      else dataArgs.push(value)
    }
    const log = yield* Effect.try({
      try: () => ({
        topics: encodeEventTopics({ abi: [event] as Abi, args: topicArgs }) as ReadonlyArray<Hex>,
        data: encodeAbiParameters(event.inputs.filter((input) => input.indexed !== true), dataArgs)
      }),
      catch: (cause) => fail(undefined, EventDecoder.describeCause(cause), cause)
    })
    const decoded = yield* Effect.fromResult(decoder.decode(log.topics, log.data))
    return { ...log, params: decoded }
  })
