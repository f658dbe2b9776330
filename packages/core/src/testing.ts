/**
 * Test kit for users' handlers: run an indexer over given events on the in-memory layers and read back the
 * entities it wrote — the full runtime (preload, store, persistence cycle) without a database.
 */
import { Effect, Layer } from "effect"
import * as Config from "./Config.js"
import type * as Entity from "./Entity.js"
import type * as Errors from "./Errors.js"
import type { Indexer } from "./Indexer.js"
import type { RunResult } from "./Processor.js"
import * as Runtime from "./Runtime.js"
import * as Source from "./Source.js"
import * as Storage from "./Storage.js"

/** An event to feed a handler; block fields default from the block number. */
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
 */
export const run = (
  indexer: Indexer,
  events: ReadonlyArray<TestEvent>,
  options: { readonly config?: Partial<Config.Options> } = {}
): Effect.Effect<TestDb, Errors.Fatal, Storage.Storage | Storage.MemoryStorage> =>
  Effect.gen(function*() {
    const chains = indexer.chains.map((chain) => {
      const own = events.filter((e) => (e.chainId ?? indexer.chains[0]!.id) === chain.id)
      const byBlock = new Map<number, Array<Source.MemoryEvent>>()
      for (const e of own) {
        let list = byBlock.get(e.blockNumber)
        if (list === undefined) byBlock.set(e.blockNumber, (list = []))
        list.push({
          contractName: e.contractName,
          eventName: e.eventName,
          params: e.params,
          ...(e.srcAddress === undefined ? {} : { srcAddress: e.srcAddress }),
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
