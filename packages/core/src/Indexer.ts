/**
 * Indexer: the definition a user's module exports by default — entities, effects, chains (their contracts, with
 * wildcard, topic filters and field selection, and their block handlers) and handlers — and its validation.
 */
import { Effect, Result } from "effect"
import type { Abi, AbiEvent, AbiParameterToPrimitiveType, ExtractAbiEvent, ExtractAbiEventNames } from "abitype"
import type { Build } from "./Build.js"
import type * as Entity from "./Entity.js"
import { IndexerDefinitionError } from "./Errors.js"
import type { BlockEvent, Event } from "./Event.js"
import * as ExternalEffect from "./ExternalEffect.js"
import * as Fields from "./Fields.js"
import { reservedNames } from "./HandlerContext.js"
import type { Context } from "./HandlerContext.js"
import * as TopicFilter from "./internal/TopicFilter.js"
import * as ReadContract from "./ReadContract.js"
import type * as Source from "./Source.js"

/** Options of one event of a contract. */
export interface EventOptions {
  /**
   * Filters on indexed arguments, applied on the wire (`eth_getLogs` topics): `{ from: a }` matches logs whose
   * `from` is `a`; a list value matches any of its values; a list of objects matches any object.
   */
  readonly where?: TopicFilter.Where | ReadonlyArray<TopicFilter.Where>
  /** Fields this event's handler gets beyond the contract's selection. */
  readonly fields?: Fields.Selection
}

export interface Contract<Name extends string = string, A extends Abi = Abi> {
  readonly name: Name
  readonly abi: A
  /** Lowercase or checksummed 0x addresses; factory-registered contracts may start with none. */
  readonly address?: string | ReadonlyArray<string>
  /** Index the handled events from every address of the chain (no `address`): e.g. every ERC20 Transfer. */
  readonly wildcard?: boolean
  /** Block, transaction and log fields every handled event of this contract gets (`event.block`, ...). */
  readonly fields?: Fields.Selection
  /** Per event: topic filters and more fields. */
  readonly events?: { readonly [event: string]: EventOptions }
}

/** A block handler of a chain: runs for blocks startBlock, startBlock + interval, ... after the block's events. */
export interface BlockHandlerConfig<Name extends string = string> {
  /** Names the handler in `blockHandlers`. */
  readonly name: Name
  /** Default: the chain's startBlock. */
  readonly startBlock?: number
  readonly endBlock?: number
  /** Every `interval` blocks (default 1: every block). */
  readonly interval?: number
  /** Block fields the handler gets beyond number, hash and timestamp. */
  readonly fields?: { readonly block?: ReadonlyArray<Fields.BlockField> }
}

export interface Chain<Contracts extends ReadonlyArray<Contract> = ReadonlyArray<Contract>> {
  readonly id: number
  readonly source: Source.Source
  readonly startBlock: number
  readonly endBlock?: number
  /** Blocks behind the head inside which reorgs are detected and history is kept (default 200). */
  readonly reorgWindow?: number
  readonly contracts: Contracts
  readonly onBlock?: ReadonlyArray<BlockHandlerConfig>
}

/**
 * The decoded params of event `N` of `A`: one object keyed by input name; an unnamed input (no name, or "") is
 * keyed by its position in `inputs` as a string — `"3"` for the 4th. Values are abitype's primitive types
 * (addresses lowercase at run time, nested ones too); an indexed string, bytes, tuple or array is its topic hash.
 * Overloads of `N` merge into one object; an ABI typed only as `Abi` (not `as const`) gives no keys.
 */
export type EventParams<A extends Abi, N extends string> = {
  readonly [E in ExtractAbiEvent<A, N> extends infer Ev ? Ev extends AbiEvent ? {
    readonly [I in keyof Ev["inputs"] & `${number}`]: readonly [
      Ev["inputs"][I] extends { readonly name: infer Nm extends string } ? (Nm extends "" ? I : Nm) : I,
      Ev["inputs"][I] extends { readonly indexed: true; readonly type: "string" | "bytes" | "tuple" | `${string}]` } ? `0x${string}` :
        AbiParameterToPrimitiveType<Ev["inputs"][I]>
    ]
  }[keyof Ev["inputs"] & `${number}`] : never : never as E[0]]: E[1]
}

export type Handler<
  Params,
  Ents extends ReadonlyArray<Entity.Any>,
  Block = Fields.BlockDefaults,
  Transaction = Fields.TransactionDefaults,
  Log = {}
> = (event: Event<Params, Block, Transaction, Log>, ctx: Context<Ents>) => Effect.Effect<void, unknown>

export type BlockHandler<Ents extends ReadonlyArray<Entity.Any>, Block = Fields.BlockDefaults> = (
  block: BlockEvent<Block>,
  ctx: Context<Ents>
) => Effect.Effect<void, unknown>

type ContractOf<Chains extends ReadonlyArray<Chain>> = Chains[number]["contracts"][number]

/** The selection of event `Ev` of contract `C`: the contract's and the event's own. */
type SelectionOf<C, Ev extends string> =
  | (C extends { readonly fields: infer S } ? S : never)
  | (C extends { readonly events: { readonly [K in Ev]: { readonly fields: infer S } } } ? S : never)

type EventHandler<C extends Contract, Ev extends string, Ents extends ReadonlyArray<Entity.Any>> = Handler<
  EventParams<C["abi"], Ev>,
  Ents,
  Fields.BlockOf<Fields.Listed<SelectionOf<C, Ev>, "block">>,
  Fields.TransactionOf<Fields.Listed<SelectionOf<C, Ev>, "transaction">>,
  Fields.LogOf<Fields.Listed<SelectionOf<C, Ev>, "log">>
>

export type Handlers<Ents extends ReadonlyArray<Entity.Any>, C extends Contract> = {
  readonly [K in C["name"]]?: {
    readonly [Ev in ExtractAbiEventNames<Extract<C, { readonly name: K }>["abi"]>]?: EventHandler<Extract<C, { readonly name: K }>, Ev, Ents>
  }
}

type BlockConfigOf<Chains extends ReadonlyArray<Chain>> = NonNullable<Chains[number]["onBlock"]>[number]

/** One handler per block handler name the chains configure, getting the block fields it selects. */
export type BlockHandlers<Ents extends ReadonlyArray<Entity.Any>, Chains extends ReadonlyArray<Chain>> = {
  readonly [K in BlockConfigOf<Chains>["name"]]: BlockHandler<
    Ents,
    Fields.BlockOf<Fields.Listed<Extract<BlockConfigOf<Chains>, { readonly name: K }>["fields"], "block">>
  >
}

export interface Definition<
  Ents extends ReadonlyArray<Entity.Any>,
  Effs extends ReadonlyArray<ExternalEffect.Any>,
  Chains extends ReadonlyArray<Chain>
> {
  readonly entities: Ents
  readonly effects?: Effs
  readonly chains: Chains
  readonly handlers: Handlers<Ents, ContractOf<Chains>>
  /** The handlers of the block handlers the chains' `onBlock` name. */
  readonly blockHandlers?: BlockHandlers<Ents, Chains>
  /** Store every processed event in `chainstore_raw_events` (default false). */
  readonly rawEvents?: boolean
}

/** A validated indexer, as the runtime reads it. */
export interface Indexer {
  readonly entities: ReadonlyArray<Entity.Any>
  /** The user's effects, and the built-in one of `ctx.readContract`. */
  readonly effects: ReadonlyArray<ExternalEffect.Any>
  readonly chains: ReadonlyArray<Chain>
  /** handlers[contract][event] */
  readonly handlers: ReadonlyMap<string, ReadonlyMap<string, Handler<unknown, ReadonlyArray<Entity.Any>>>>
  /** blockHandlers[name] */
  readonly blockHandlers: ReadonlyMap<string, BlockHandler<ReadonlyArray<Entity.Any>>>
  readonly rawEvents: boolean
  /** The build this indexer is (set by the CLI's loader): tables written by another build are not resumed. */
  readonly build?: Build
}

export const make = <
  const Ents extends ReadonlyArray<Entity.Any>,
  const Effs extends ReadonlyArray<ExternalEffect.Any>,
  const Chains extends ReadonlyArray<Chain>
>(definition: Definition<Ents, Effs, Chains>): Indexer => {
  const handlers = new Map<string, Map<string, Handler<unknown, ReadonlyArray<Entity.Any>>>>()
  for (const [contract, events] of Object.entries(definition.handlers as Record<string, Record<string, unknown>>)) {
    const byEvent = new Map<string, Handler<unknown, ReadonlyArray<Entity.Any>>>()
    for (const [event, handler] of Object.entries(events ?? {})) {
      if (typeof handler === "function") byEvent.set(event, handler as Handler<unknown, ReadonlyArray<Entity.Any>>)
    }
    handlers.set(contract, byEvent)
  }
  const blockHandlers = new Map<string, BlockHandler<ReadonlyArray<Entity.Any>>>()
  for (const [name, handler] of Object.entries((definition.blockHandlers ?? {}) as Record<string, unknown>)) {
    blockHandlers.set(name, handler as BlockHandler<ReadonlyArray<Entity.Any>>)
  }
  return {
    entities: definition.entities,
    effects: [...(definition.effects ?? []), ReadContract.effect],
    chains: definition.chains,
    handlers,
    blockHandlers,
    rawEvents: definition.rawEvents ?? false
  }
}

/** Names used as SQL identifiers: letters, digits and underscores, not starting with a digit. */
export const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Addresses a contract starts with, lowercased. */
export const addressesOf = (contract: Contract): ReadonlyArray<string> =>
  contract.address === undefined ? [] :
  (typeof contract.address === "string" ? [contract.address] : contract.address).map((a) => a.toLowerCase())

/** Events of a contract that have handlers. */
export const handledEvents = (indexer: Indexer, contractName: string): ReadonlyArray<string> =>
  [...(indexer.handlers.get(contractName)?.keys() ?? [])]

/** The ABI items of event `name` (overloads share a name). */
const abiEvents = (contract: Contract, name: string): ReadonlyArray<AbiEvent> =>
  (contract.abi as Abi).filter((item): item is AbiEvent => item.type === "event" && item.name === name)

/** The contract as a source fetches it: addresses, and per handled event its topic filters and selected fields. */
export const contractInfo = (indexer: Indexer, contract: Contract): Result.Result<Source.ContractInfo, { readonly field: string; readonly message: string }> => {
  const events: Array<Source.EventInfo> = []
  for (const name of handledEvents(indexer, contract.name)) {
    const options = contract.events?.[name]
    let topics: ReadonlyArray<Source.Topics> | undefined
    if (options?.where !== undefined) {
      const compiled = TopicFilter.compile(abiEvents(contract, name), options.where)
      if (Result.isFailure(compiled)) return Result.fail({ field: `events.${name}.where${compiled.failure.path}`, message: compiled.failure.message })
      topics = compiled.success
    }
    events.push({ name, topics, fields: Fields.union([contract.fields, options?.fields]) })
  }
  return Result.succeed({ name: contract.name, abi: contract.abi, addresses: addressesOf(contract), wildcard: contract.wildcard === true, events })
}

/** A chain's block handlers as a source serves their blocks. */
export const blockHandlerInfos = (chain: Chain): ReadonlyArray<Source.BlockHandlerInfo> =>
  (chain.onBlock ?? []).map((config) => ({
    name: config.name,
    startBlock: config.startBlock ?? chain.startBlock,
    endBlock: config.endBlock,
    interval: config.interval ?? 1,
    fields: Fields.union([{ block: config.fields?.block ?? [] }]).block
  }))

/**
 * Checks a definition before anything runs: names, duplicates, handlers for unknown contracts or events, wildcard
 * and filters, selected fields, block handlers. `path` names the module in every error.
 */
export const validate = (indexer: Indexer, path: string): Effect.Effect<Indexer, IndexerDefinitionError> =>
  Effect.suspend(() => {
    const fail = (field: string, message: string) =>
      Effect.fail(new IndexerDefinitionError({ path: `${path}: ${field}`, message }))
    if (!Array.isArray(indexer.entities)) return fail("entities", "must be an array of Entity.make(...) definitions")
    if (!Array.isArray(indexer.chains) || indexer.chains.length === 0) return fail("chains", "must list at least one chain")
    const seen = new Set<string>()
    for (const [i, entity] of indexer.entities.entries()) {
      if (typeof entity?.name !== "string" || entity.schema === undefined) return fail(`entities[${i}]`, "is not an Entity.make(...) definition")
      if (!identifierPattern.test(entity.name)) return fail(`entities[${i}].name`, `"${entity.name}" is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)`)
      if (seen.has(entity.name)) return fail(`entities[${i}].name`, `duplicate entity name "${entity.name}"`)
      if (reservedNames.includes(entity.name)) return fail(`entities[${i}].name`, `"${entity.name}" is reserved by the handler context`)
      seen.add(entity.name)
      if (!("id" in entity.fields)) return fail(`entities[${i}].fields`, `entity "${entity.name}" needs an id field`)
      for (const field of Object.keys(entity.fields)) {
        if (!identifierPattern.test(field)) return fail(`entities[${i}].fields.${field}`, `"${field}" is not a valid identifier`)
      }
      for (const field of entity.indexes) {
        if (!(field in entity.fields)) return fail(`entities[${i}].indexes`, `"${field}" is not a field of "${entity.name}"`)
      }
    }
    for (const [i, entity] of indexer.entities.entries()) {
      for (const [field, target] of Object.entries((entity.references ?? {}) as Readonly<Record<string, string | undefined>>)) {
        if (!(field in entity.fields)) return fail(`entities[${i}].references.${field}`, `"${field}" is not a field of "${entity.name}"`)
        if (!seen.has(target ?? "")) return fail(`entities[${i}].references.${field}`, `"${String(target)}" is not an entity of this indexer`)
      }
    }
    const effects = new Set<string>()
    for (const [i, effect] of indexer.effects.entries()) {
      if (!identifierPattern.test(effect.name)) return fail(`effects[${i}].name`, `"${effect.name}" is not a valid identifier`)
      if (effects.has(effect.name)) {
        return fail(`effects[${i}].name`, effect.name === ReadContract.effect.name ? `"${effect.name}" is the name of ctx.readContract's cache` : `duplicate effect name "${effect.name}"`)
      }
      effects.add(effect.name)
    }
    const chainIds = new Set<number>()
    const contracts = new Map<string, Contract>()
    const configured = new Set<string>()
    for (const [i, chain] of indexer.chains.entries()) {
      if (!Number.isSafeInteger(chain.id) || chain.id <= 0) return fail(`chains[${i}].id`, "must be a positive integer")
      if (chainIds.has(chain.id)) return fail(`chains[${i}].id`, `duplicate chain id ${chain.id}`)
      chainIds.add(chain.id)
      if (!Number.isSafeInteger(chain.startBlock) || chain.startBlock < 0) return fail(`chains[${i}].startBlock`, "must be a non-negative integer")
      if (chain.endBlock !== undefined && (!Number.isSafeInteger(chain.endBlock) || chain.endBlock < chain.startBlock)) {
        return fail(`chains[${i}].endBlock`, "must be an integer not below startBlock")
      }
      if (chain.reorgWindow !== undefined && (!Number.isSafeInteger(chain.reorgWindow) || chain.reorgWindow < 0)) {
        return fail(`chains[${i}].reorgWindow`, "must be a non-negative integer")
      }
      if (typeof chain.source?.make !== "function") return fail(`chains[${i}].source`, "is not a Source")
      for (const [j, contract] of chain.contracts.entries()) {
        const at = `chains[${i}].contracts[${j}]`
        contracts.set(contract.name, contract)
        if (contract.wildcard === true && addressesOf(contract).length > 0) {
          return fail(`${at}.address`, `"${contract.name}" is a wildcard contract: it indexes every address and takes none`)
        }
        const selection = Fields.check(contract.fields)
        if (selection !== undefined) return fail(`${at}.fields`, selection)
        for (const [event, options] of Object.entries<EventOptions | undefined>(contract.events ?? {})) {
          if (abiEvents(contract, event).length === 0) return fail(`${at}.events.${event}`, `the ABI of "${contract.name}" has no event "${event}"`)
          if (indexer.handlers.get(contract.name)?.has(event) !== true) {
            return fail(`${at}.events.${event}`, `"${contract.name}.${event}" has options but no handler`)
          }
          const own = Fields.check(options?.fields)
          if (own !== undefined) return fail(`${at}.events.${event}.fields`, own)
        }
      }
      const names = new Set<string>()
      for (const [j, config] of (chain.onBlock ?? []).entries()) {
        const at = `chains[${i}].onBlock[${j}]`
        if (typeof config?.name !== "string" || config.name.length === 0) return fail(`${at}.name`, "must be a non-empty string")
        if (names.has(config.name)) return fail(`${at}.name`, `duplicate block handler "${config.name}" on chain ${chain.id}`)
        names.add(config.name)
        configured.add(config.name)
        if (config.interval !== undefined && (!Number.isSafeInteger(config.interval) || config.interval < 1)) {
          return fail(`${at}.interval`, `must be an integer of at least 1 (got ${String(config.interval)})`)
        }
        if (config.startBlock !== undefined && (!Number.isSafeInteger(config.startBlock) || config.startBlock < chain.startBlock)) {
          return fail(`${at}.startBlock`, `must be an integer not below the chain's startBlock ${chain.startBlock}`)
        }
        const start = config.startBlock ?? chain.startBlock
        if (config.endBlock !== undefined && (!Number.isSafeInteger(config.endBlock) || config.endBlock < start)) {
          return fail(`${at}.endBlock`, `must be an integer not below its startBlock ${start}`)
        }
        const selection = Fields.check(config.fields)
        if (selection !== undefined) return fail(`${at}.fields`, selection)
        const other = Object.keys((config.fields ?? {}) as object).find((k) => k !== "block")
        if (other !== undefined) return fail(`${at}.fields.${other}`, "a block handler selects block fields only")
        if (!indexer.blockHandlers.has(config.name)) return fail(`blockHandlers.${config.name}`, `is missing: chain ${chain.id} runs block handler "${config.name}"`)
      }
    }
    for (const name of indexer.blockHandlers.keys()) {
      if (!configured.has(name)) return fail(`blockHandlers.${name}`, `no chain's onBlock names a block handler "${name}"`)
    }
    for (const [contractName, events] of indexer.handlers) {
      const contract = contracts.get(contractName)
      if (contract === undefined) return fail(`handlers.${contractName}`, `no chain has a contract named "${contractName}"`)
      for (const eventName of events.keys()) {
        if (abiEvents(contract, eventName).length === 0) {
          return fail(`handlers.${contractName}.${eventName}`, `the ABI of "${contractName}" has no event "${eventName}"`)
        }
      }
    }
    for (const [i, chain] of indexer.chains.entries()) {
      for (const [j, contract] of chain.contracts.entries()) {
        const info = contractInfo(indexer, contract)
        if (Result.isFailure(info)) return fail(`chains[${i}].contracts[${j}].${info.failure.field}`, info.failure.message)
      }
    }
    return Effect.succeed(indexer)
  })
