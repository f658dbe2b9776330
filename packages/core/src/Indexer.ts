/**
 * Indexer: the definition a user's module exports by default — entities, effects, chains and handlers.
 */
import { Effect } from "effect"
import type { Abi, AbiEvent, AbiParameterToPrimitiveType, ExtractAbiEvent, ExtractAbiEventNames } from "abitype"
import type * as Entity from "./Entity.js"
import { IndexerDefinitionError } from "./Errors.js"
import type { Event } from "./Event.js"
import type * as ExternalEffect from "./ExternalEffect.js"
import { reservedNames } from "./HandlerContext.js"
import type { Context } from "./HandlerContext.js"
import type * as Source from "./Source.js"

export interface Contract<Name extends string = string, A extends Abi = Abi> {
  readonly name: Name
  readonly abi: A
  /** Lowercase or checksummed 0x addresses; factory-registered contracts may start with none. */
  readonly address?: string | ReadonlyArray<string>
}

export interface Chain<Contracts extends ReadonlyArray<Contract> = ReadonlyArray<Contract>> {
  readonly id: number
  readonly source: Source.Source
  readonly startBlock: number
  readonly endBlock?: number
  /** Blocks behind the head inside which reorgs are detected and history is kept (default 200). */
  readonly reorgWindow?: number
  readonly contracts: Contracts
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

export type Handler<Params, Ents extends ReadonlyArray<Entity.Any>> = (
  event: Event<Params>,
  ctx: Context<Ents>
) => Effect.Effect<void, unknown>

type ContractOf<Chains extends ReadonlyArray<Chain>> = Chains[number]["contracts"][number]

export type Handlers<Ents extends ReadonlyArray<Entity.Any>, C extends Contract> = {
  readonly [K in C["name"]]?: {
    readonly [Ev in ExtractAbiEventNames<Extract<C, { readonly name: K }>["abi"]>]?: Handler<
      EventParams<Extract<C, { readonly name: K }>["abi"], Ev>,
      Ents
    >
  }
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
  /** Store every processed event in `chainstore_raw_events` (default false). */
  readonly rawEvents?: boolean
}

/** A validated indexer, as the runtime reads it. */
export interface Indexer {
  readonly entities: ReadonlyArray<Entity.Any>
  readonly effects: ReadonlyArray<ExternalEffect.Any>
  readonly chains: ReadonlyArray<Chain>
  /** handlers[contract][event] */
  readonly handlers: ReadonlyMap<string, ReadonlyMap<string, Handler<unknown, ReadonlyArray<Entity.Any>>>>
  readonly rawEvents: boolean
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
  return {
    entities: definition.entities,
    effects: definition.effects ?? [],
    chains: definition.chains,
    handlers,
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

/**
 * Checks a definition before anything runs: names, duplicates, handlers for unknown contracts or events.
 * `path` names the module in every error.
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
      if (effects.has(effect.name)) return fail(`effects[${i}].name`, `duplicate effect name "${effect.name}"`)
      effects.add(effect.name)
    }
    const chainIds = new Set<number>()
    const contracts = new Map<string, Contract>()
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
      for (const contract of chain.contracts) contracts.set(contract.name, contract)
    }
    for (const [contractName, events] of indexer.handlers) {
      const contract = contracts.get(contractName)
      if (contract === undefined) return fail(`handlers.${contractName}`, `no chain has a contract named "${contractName}"`)
      for (const eventName of events.keys()) {
        if (!contract.abi.some((item) => item.type === "event" && item.name === eventName)) {
          return fail(`handlers.${contractName}.${eventName}`, `the ABI of "${contractName}" has no event "${eventName}"`)
        }
      }
    }
    return Effect.succeed(indexer)
  })
