/**
 * Build: which build of an indexer wrote a database — a hash of its code and its chains' configuration — and what
 * differs between two builds. Tables written by another build are not resumed: they are reset and indexed again.
 * The source a chain is read from and its end block are not part of a build's chain configuration (they do not change
 * what was indexed); written as literals in the indexer's code they are part of its code, like any other edit there:
 * `--end-block` and environment variables change them without a new build.
 */
import { BuildChangedError } from "./Errors.js"
import { stableStringify } from "./ExternalEffect.js"
import type { Indexer } from "./Indexer.js"

export interface Build {
  /** Short hash of `code` and `chains`. */
  readonly id: string
  /** Hash of the indexer's compiled code (its module and every file it imports, not its packages). */
  readonly code: string
  /** The chains' configuration as data: ids, start blocks, reorg windows, contracts' events and filters, block handlers. */
  readonly chains: ReadonlyArray<ChainConfig>
}

export interface ChainConfig {
  readonly id: number
  readonly startBlock: number
  readonly reorgWindow: number | null
  readonly contracts: ReadonlyArray<unknown>
  readonly onBlock: ReadonlyArray<unknown>
}

/** The configuration part of a build: plain JSON data, so it compares and stores as it is. */
export const chainsOf = (indexer: Indexer): ReadonlyArray<ChainConfig> =>
  indexer.chains.map((chain) => ({
    id: chain.id,
    startBlock: chain.startBlock,
    reorgWindow: chain.reorgWindow ?? null,
    contracts: json(chain.contracts.map((contract) => ({
      name: contract.name,
      address: contract.address ?? null,
      wildcard: contract.wildcard ?? false,
      events: contract.abi.filter((item) => item.type === "event"),
      fields: contract.fields ?? null,
      eventOptions: contract.events ?? null
    }))) as ReadonlyArray<unknown>,
    onBlock: json(chain.onBlock ?? []) as ReadonlyArray<unknown>
  }))

/** What differs from `stored` to `current`, in words; empty when they are the same build. */
export const changes = (stored: Build, current: Build): ReadonlyArray<string> => {
  if (stored.id === current.id) return []
  const out: Array<string> = []
  if (stored.code !== current.code) out.push("the indexer's code changed (its module or a file it imports)")
  const before = new Map(stored.chains.map((c) => [c.id, c]))
  const after = new Map(current.chains.map((c) => [c.id, c]))
  for (const [id, chain] of after) {
    const old = before.get(id)
    if (old === undefined) {
      out.push(`chain ${id} was added`)
      continue
    }
    if (old.startBlock !== chain.startBlock) out.push(`chain ${id}: startBlock ${old.startBlock} → ${chain.startBlock}`)
    if (old.reorgWindow !== chain.reorgWindow) out.push(`chain ${id}: reorgWindow ${old.reorgWindow ?? "default"} → ${chain.reorgWindow ?? "default"}`)
    const names = new Set([...old.contracts, ...chain.contracts].map(nameOf))
    for (const name of names) {
      const was = old.contracts.find((c) => nameOf(c) === name)
      const is = chain.contracts.find((c) => nameOf(c) === name)
      if (was === undefined) out.push(`chain ${id}: contract ${name} was added`)
      else if (is === undefined) out.push(`chain ${id}: contract ${name} was removed`)
      else if (stableStringify(was) !== stableStringify(is)) out.push(`chain ${id}: contract ${name} changed (addresses, events, filters or fields)`)
    }
    if (stableStringify(old.onBlock) !== stableStringify(chain.onBlock)) out.push(`chain ${id}: block handlers changed`)
  }
  for (const id of before.keys()) if (!after.has(id)) out.push(`chain ${id} was removed`)
  // Same parts under another id: the id was made another way (e.g. by another chainstore version).
  if (out.length === 0) out.push(`build ${stored.id} → ${current.id}`)
  return out
}

const nameOf = (contract: unknown): string => String((contract as { readonly name?: unknown }).name)

/** Plain JSON data: undefined fields dropped, bigints as decimal strings. */
const json = (value: unknown): unknown => JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)))

/** The error a run of `current` meets on tables written by `stored`. */
export const changedError = (stored: Build, current: Build): BuildChangedError => {
  const what = changes(stored, current)
  return new BuildChangedError({
    stored: stored.id,
    current: current.id,
    changes: what,
    message: `the tables were written by build ${stored.id} of this indexer, this is build ${current.id}: ${what.join("; ")}. ` +
      "Resuming them would mix the two builds' results: `chainstore run --reset` drops them and indexes from the start (`chainstore dev` does so by itself)."
  })
}
