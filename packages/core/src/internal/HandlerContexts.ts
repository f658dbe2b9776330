/**
 * HandlerContexts: what a handler's `ctx` does, in the two passes of a batch step (design.md §2, batched loads).
 * The preload pass only records the ids, lookups and effect inputs handlers touch (writes discarded); `load`
 * then loads them with one storage call per table and resolves effects concurrently. A preload run that reaches
 * an effect not yet known stops there and runs again after the load, so reads behind effects are batched too.
 * The real pass runs the handlers in order against warm memory, falling back to storage for anything the
 * preload could not foresee.
 */
import { Effect, Result, Schema } from "effect"
import type * as Batch from "../Batch.js"
import * as Change from "../Change.js"
import * as Entity from "../Entity.js"
import { EffectCache } from "../EffectCache.js"
import type * as EffectCacheNs from "../EffectCache.js"
import { EntityValidationError, HandlerError } from "../Errors.js"
import type { StorageError } from "../Errors.js"
import { describe as describeItem, isBlockItem, type Item } from "../Event.js"
import * as ExternalEffect from "../ExternalEffect.js"
import type { Context, EntityOps } from "../HandlerContext.js"
import type { Operator } from "../Entity.js"
import * as ReadContract from "../ReadContract.js"
import * as EffectInput from "./EffectInput.js"
import { Storage } from "../Storage.js"
import { Store } from "../Store.js"

/** An entity row as the runtime handles it generically. */
type Row = { readonly id: string }

/** The item a handler runs for: its event or block, and checkpoint. Set before each handler runs. */
interface Current {
  event: Item | undefined
  checkpointId: bigint
}

/** What the preload pass saw handlers reach for. */
interface Recorded {
  readonly ids: Map<string, Set<string>>
  readonly lookups: Array<{ readonly entity: string; readonly field: string; readonly op: Operator; readonly value: unknown }>
  readonly effects: Array<EffectCacheNs.Request>
}

const noRegistrations: ReadonlyArray<Batch.Registration> = []

/** An effect input the preload pass keyed for an item: the real pass reuses the key for an equal input. */
interface KnownKey {
  readonly effect: ExternalEffect.Any
  readonly input: unknown
  readonly key: string
  readonly next: KnownKey | undefined
}

/** Ends a handler's preload run at an effect call whose output is not known yet. */
class PreloadStop {
  readonly _tag = "PreloadStop"
}

export interface Contexts {
  readonly real: Context<ReadonlyArray<Entity.Any>>
  readonly preload: Context<ReadonlyArray<Entity.Any>>
  /** Points both contexts at the item about to run. */
  readonly setCurrent: (item: Item, checkpointId: bigint) => void
  /** A new batch: forgets the effect keys the last batch's preload computed. */
  readonly beginBatch: () => void
  /** The last preload run stopped at an effect whose output was not known yet: run it again after `load`. */
  readonly preloadStopped: () => boolean
  /** How many ids, lookups and effect inputs the preload pass has recorded so far: a run that adds none found nothing new. */
  readonly recordings: () => number
  /** Loads everything recorded by the preload pass since the last call. */
  readonly load: Effect.Effect<void, StorageError>
  /** A handler read a contract in this run: the preload pass is worth running for the reads it batches. */
  readonly readsContracts: () => boolean
  /** Contracts registered by handlers since the last call. */
  readonly takeRegistrations: () => ReadonlyArray<Batch.Registration>
}

/** The contexts, reading contracts through `reader` (ReadContract.bind over the chains' sources). */
export const make = (reader: ExternalEffect.ExternalEffect<"readContract", ReadContract.Input, ReadContract.Output, unknown>) => Effect.gen(function*() {
  const store = yield* Store
  const storage = yield* Storage
  const cache = yield* EffectCache
  const current: Current = { event: undefined, checkpointId: 0n }
  let stopped = false
  let registrations: Array<Batch.Registration> = []
  let recorded: Recorded = { ids: new Map(), lookups: [], effects: [] }
  let recordings = 0
  // Effect input keys computed by this batch's preload, per item: a fresh key string costs a hash on every lookup.
  let knownKeys = new Map<Item, KnownKey>()

  const real: Record<string, unknown> = {}
  const preload: Record<string, unknown> = {}

  for (const entity of store.indexer.entities) {
    const name = entity.name
    const is = Schema.is(entity.schema)
    const bigints = Entity.bigintFields(entity)
    const load = (id: string) =>
      Effect.map(storage.loadByIds(name, [id]), (rows) => {
        store.initEntityFromDb(name, id, rows[0])
        return rows[0] as Row | undefined
      })
    const getWhere = (field: string, op: Operator, value: unknown) =>
      Effect.suspend(() => {
        const ids = store.lookup(name, field, op, value)
        if (ids !== undefined) return Effect.succeed(valuesOf(name, ids))
        if (store.isComplete(name)) return Effect.succeed(valuesOf(name, store.addLookup(name, field, op, value)))
        return Effect.map(storage.loadByField(name, field, op, value), (rows) => {
          for (const row of rows) store.initEntityFromDb(name, (row as { id: string }).id, row)
          return valuesOf(name, store.addLookup(name, field, op, value))
        })
      })
    real[name] = {
      get: (id: string) =>
        Effect.suspend(() => {
          const change = store.getEntity(name, id)
          if (change !== undefined) return Effect.succeed(Change.value(change) as Row | undefined)
          return store.isComplete(name) ? Effect.succeed(undefined) : load(id)
        }),
      set: (value: Row) =>
        Effect.suspend(() => {
          if (!is(value)) return Effect.fail(invalid(entity, value, current.event))
          for (const field of bigints) {
            const v = (value as Record<string, unknown>)[field]
            if (typeof v === "bigint" && (v > Entity.maxBigInt || v < -Entity.maxBigInt)) {
              return Effect.fail(invalid(entity, value, current.event, field, `${field} = ${v} does not fit numeric(78,0)`))
            }
          }
          store.setEntity(name, Change.set(value.id, value, current.checkpointId))
          return Effect.void
        }),
      deleteUnsafe: (id: string) => Effect.sync(() => store.setEntity(name, Change.del(id, current.checkpointId))),
      getWhere
    } satisfies EntityOps<Row>
    preload[name] = {
      get: (id: string) =>
        Effect.sync(() => {
          const change = store.getEntity(name, id)
          if (change !== undefined) return Change.value(change) as Row | undefined
          if (store.isComplete(name)) return undefined
          let ids = recorded.ids.get(name)
          if (ids === undefined) recorded.ids.set(name, (ids = new Set()))
          if (!ids.has(id)) {
            ids.add(id)
            recordings++
          }
          return undefined
        }),
      set: () => Effect.void,
      deleteUnsafe: () => Effect.void,
      getWhere: (field: string, op: Operator, value: unknown) =>
        Effect.sync(() => {
          const ids = store.lookup(name, field, op, value) ?? (store.isComplete(name) ? store.addLookup(name, field, op, value) : undefined)
          if (ids !== undefined) return valuesOf(name, ids)
          recorded.lookups.push({ entity: name, field, op, value })
          recordings++
          return []
        })
    } satisfies EntityOps<Row>
  }

  const valuesOf = (name: string, ids: ReadonlyArray<string>): Array<Row> => {
    const out: Array<Row> = []
    for (const id of ids) {
      const change = store.getEntity(name, id)
      if (change?._tag === "Set") out.push(change.entity as Row)
    }
    return out
  }

  const log = (message: string) =>
    Effect.suspend(() => {
      const event = current.event
      if (event === undefined) return Effect.log(message)
      return Effect.log(message).pipe(Effect.annotateLogs(isBlockItem(event) ?
        { chain: event.chainId, block: event.blockNumber, blockHandler: event.name } :
        { chain: event.chainId, block: event.blockNumber, logIndex: event.logIndex }))
    })

  const knownKeyOf = (effect: ExternalEffect.Any, input: unknown): string | undefined => {
    for (let known = knownKeys.get(current.event!); known !== undefined; known = known.next) {
      if (known.effect === effect && EffectInput.equalsCopy(known.input, input)) return known.key
    }
    return undefined
  }
  real.effect = <I, O, E>(effect: ExternalEffect.ExternalEffect<string, I, O, E>, input: I) =>
    Effect.suspend(() => cache.call(effect, input, current.checkpointId, knownKeyOf(effect as ExternalEffect.Any, input)))
  real.log = log
  let readSeen = false
  real.readContract = (parameters: ReadContract.Parameters) =>
    Effect.suspend(() => {
      readSeen = true
      const input = ReadContract.inputOf(parameters, current.event!)
      if (Result.isFailure(input)) return Effect.fail(input.failure)
      return cache.call(reader, input.success, current.checkpointId, knownKeyOf(reader as ExternalEffect.Any, input.success)).pipe(
        Effect.mapError((e) => ReadContract.failed(parameters, input.success, e)),
        Effect.flatMap((output) => Effect.fromResult(ReadContract.decode(parameters, input.success, output)))
      )
    })
  const preloadEffect = <I, O, E>(effect: ExternalEffect.ExternalEffect<string, I, O, E>, input: I) =>
    Effect.suspend(() => {
      const key = ExternalEffect.keyOf(effect, input)
      let copy: unknown = EffectInput.notPlain
      if (typeof key === "string") {
        const item = current.event!
        copy = EffectInput.copyOfPlain(input)
        if (copy !== EffectInput.notPlain) knownKeys.set(item, { effect: effect as ExternalEffect.Any, input: copy, key, next: knownKeys.get(item) })
        const cached = store.getEffectOutput(effect.name, key)
        if (cached?._tag === "Set") return Effect.succeed(cached.entity as O)
      }
      // The input as it is now: the handler may change its input object in place before the load runs it.
      recorded.effects.push({ effect: effect as ExternalEffect.Any, input: copy === EffectInput.notPlain ? effect.copyInput(input) : copy, checkpointId: current.checkpointId, ...(typeof key === "string" ? { key } : {}) })
      recordings++
      stopped = true
      return Effect.die(new PreloadStop())
    })
  preload.effect = preloadEffect
  preload.readContract = (parameters: ReadContract.Parameters) =>
    Effect.suspend(() => {
      const input = ReadContract.inputOf(parameters, current.event!)
      if (Result.isFailure(input)) return Effect.fail(input.failure)
      return Effect.flatMap(preloadEffect(reader, input.success), (output) => Effect.fromResult(ReadContract.decode(parameters, input.success, output)))
    })
  preload.log = () => Effect.void
  const contractsByChain = new Map(store.indexer.chains.map((chain) => [chain.id, new Set(chain.contracts.map((c) => c.name))]))
  real.addContract = (contractName: string, address: string) =>
    Effect.suspend(() => {
      const event = current.event!
      const problem = typeof address !== "string" || !addressPattern.test(address) ? `addContract: ${describeValue(address)} is not a 0x address of 20 bytes` :
        contractsByChain.get(event.chainId)?.has(contractName) !== true ? `addContract: chain ${event.chainId} has no contract named "${contractName}"` :
        undefined
      if (problem !== undefined) return Effect.fail(HandlerError.of(event, problem))
      registrations.push({
        chainId: event.chainId,
        contractName,
        address: address.toLowerCase(),
        blockNumber: event.blockNumber,
        logIndex: event.logIndex,
        checkpointId: current.checkpointId
      })
      return Effect.void
    })
  preload.addContract = () => Effect.void

  const loadRecorded = Effect.gen(function*() {
    const { effects, ids, lookups } = recorded
    recorded = { ids: new Map(), lookups: [], effects: [] }
    yield* Effect.all([
      Effect.forEach(ids, ([name, wanted]) =>
        Effect.map(storage.loadByIds(name, [...wanted]), (rows) => {
          for (const row of rows) {
            const id = (row as { id: string }).id
            store.initEntityFromDb(name, id, row)
            wanted.delete(id)
          }
          // Known absent: no second trip for them.
          for (const id of wanted) store.initEntityFromDb(name, id, undefined)
        }), { concurrency: "unbounded", discard: true }),
      Effect.forEach(lookups, ({ entity, field, op, value }) =>
        Effect.map(storage.loadByField(entity, field, op, value), (rows) => {
          for (const row of rows) store.initEntityFromDb(entity, (row as { id: string }).id, row)
          store.addLookup(entity, field, op, value)
        }), { concurrency: "unbounded", discard: true }),
      cache.prefetch(effects)
    ], { concurrency: "unbounded", discard: true })
  }).pipe(Effect.withSpan("HandlerContext.preload"))

  return {
    real: real as Context<ReadonlyArray<Entity.Any>>,
    preload: preload as Context<ReadonlyArray<Entity.Any>>,
    setCurrent: (item, checkpointId) => {
      current.event = item
      current.checkpointId = checkpointId
      stopped = false
    },
    beginBatch: () => {
      if (knownKeys.size > 0) knownKeys = new Map()
    },
    preloadStopped: () => stopped,
    recordings: () => recordings,
    readsContracts: () => readSeen,
    takeRegistrations: () => {
      // Called after every handler run: allocate only when something was registered.
      if (registrations.length === 0) return noRegistrations
      const taken = registrations
      registrations = []
      return taken
    },
    load: loadRecorded
  } satisfies Contexts
})

const addressPattern = /^0x[0-9a-fA-F]{40}$/

const describeValue = (value: unknown): string => {
  const text = typeof value === "string" ? JSON.stringify(value) : typeof value === "bigint" ? `${value}n` : String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

const invalid = (entity: Entity.Any, value: unknown, event: Item | undefined, field?: string, problem?: string): EntityValidationError => {
  const result = problem === undefined ? Schema.decodeUnknownExit(entity.schema as unknown as Schema.ConstraintDecoder<unknown>)(value) : undefined
  const detail = problem ?? (result?._tag === "Failure" ? String(result.cause) : "does not match the schema")
  const id = typeof (value as { id?: unknown })?.id === "string" ? (value as { id: string }).id : "<no id>"
  const where = event === undefined ? "" :
    isBlockItem(event) ? ` (${describeItem(event)} on chain ${event.chainId}, block ${event.blockNumber})` :
    ` (event ${describeItem(event)} on chain ${event.chainId}, block ${event.blockNumber}, log index ${event.logIndex})`
  return new EntityValidationError({
    entity: entity.name,
    entityId: id,
    ...(field === undefined ? {} : { field }),
    message: `${entity.name} ${id} is invalid${where}: ${detail}`
  })
}
