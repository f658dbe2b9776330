/**
 * Test kit for users' handlers: run an indexer over given events on the in-memory layers and read back the
 * entities it wrote — the full runtime (preload, store, persistence cycle) without a database. Each test event is
 * encoded into a log with its contract's ABI and decoded like a chain's, so handlers see what a chain gives them.
 */
import { Effect, Layer } from "effect"
import type { Abi, AbiEvent, Hex } from "viem"
// The subpath: the package index loads viem's clients and chains too.
import { encodeAbiParameters, encodeEventTopics } from "viem/utils"
import * as Config from "./Config.js"
import type * as Entity from "./Entity.js"
import * as Errors from "./Errors.js"
import type { Indexer } from "./Indexer.js"
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
}

/** A test event; `params` are checked against the contract's ABI when the run starts (their type cannot be). */
export const event = (
  contractName: string,
  eventName: string,
  params: Readonly<Record<string, unknown>>,
  at: { readonly blockNumber: number; readonly chainId?: number; readonly srcAddress?: string; readonly transactionHash?: string }
): TestEvent => ({ contractName, eventName, params, ...at })

export interface TestDb {
  readonly result: RunResult
  readonly get: <E extends Entity.Any>(entity: E, id: string) => Effect.Effect<Entity.Type<E> | undefined>
  readonly all: <E extends Entity.Any>(entity: E) => Effect.Effect<ReadonlyArray<Entity.Type<E>>>
}

/**
 * Runs `indexer` over `events` (each chain's source replaced by the events given for it, in block order) and
 * returns the committed entities. Pass `storage` to run several times against the same in-memory database.
 * A test event that does not fit its contract's ABI fails with an `EventParamsError` naming contract, event, param.
 */
export const run = (
  indexer: Indexer,
  events: ReadonlyArray<TestEvent>,
  options: { readonly config?: Partial<Config.Options> } = {}
): Effect.Effect<TestDb, Errors.Fatal | Errors.EventParamsError, Storage.Storage | Storage.MemoryStorage> =>
  Effect.gen(function*() {
    const decode = decoding(indexer)
    const params = new Map<TestEvent, Readonly<Record<string, unknown>>>()
    for (const e of events) params.set(e, yield* decode(e))
    const chains = indexer.chains.map((chain) => {
      const own = events.filter((e) => (e.chainId ?? indexer.chains[0]!.id) === chain.id)
      const byBlock = new Map<number, Array<Source.MemoryEvent>>()
      for (const e of own) {
        let list = byBlock.get(e.blockNumber)
        if (list === undefined) byBlock.set(e.blockNumber, (list = []))
        list.push({
          contractName: e.contractName,
          eventName: e.eventName,
          params: params.get(e)!,
          // A chain reports the emitter in lowercase.
          ...(e.srcAddress === undefined ? {} : { srcAddress: e.srcAddress.toLowerCase() }),
          ...(e.transactionHash === undefined ? {} : { transactionHash: e.transactionHash })
        })
      }
      const blocks = [...byBlock].sort(([a], [b]) => a - b).map(([number, evs]) => ({ number, events: evs }))
      const last = blocks[blocks.length - 1]?.number ?? chain.startBlock
      return { ...chain, source: Source.memory(blocks, { head: last }).source, endBlock: Math.max(last, chain.startBlock) }
    })
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

/** Decodes test events' params through their contracts' ABIs, with one decoder per contract event. */
const decoding = (indexer: Indexer) => {
  const decoders = new Map<string, ReadonlyArray<EventDecoder.EventDecoder>>()
  return (e: TestEvent): Effect.Effect<Readonly<Record<string, unknown>>, Errors.EventParamsError> =>
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
    return yield* Effect.fromResult(decoder.decode(log.topics, log.data))
  })
