/**
 * What the simulated chain holds, computed straight from its events: the oracle end-to-end tests compare a
 * run's tables with (never a second run of the same code).
 */
import { Effect } from "effect"
import { SimChain } from "@chainstore/core"

/** The erc20 example's token (its default TOKEN_ADDRESS), the id of its one Token row. */
export const exampleToken = "0x5f5e100000000000000000000000000000000001"

export interface Transfer {
  readonly block: number
  readonly from: string
  readonly to: string
  readonly value: bigint
}

/**
 * The Transfers of the chain `--sim text` describes, in order, as chain 1337 (the example's and the fixtures' id):
 * blocks 1 to `upTo` (default: all), each as `variantOf` says (default 0, canonical; a fork's tip block for its fork).
 */
export const transfers = (text: string, options: { readonly upTo?: number; readonly variantOf?: (block: number) => number } = {}): Array<Transfer> => {
  const params = Effect.runSync(SimChain.parse(text))
  // The token address only names the events' source; it does not change them.
  const chain = SimChain.chain(params, 1337, SimChain.ZERO_ADDRESS)
  const out: Array<Transfer> = []
  for (let block = 1; block <= Math.min(params.blocks, options.upTo ?? params.blocks); block++) {
    for (const event of chain.events(block, options.variantOf?.(block) ?? 0)) out.push({ block, ...(event.params as { from: string; to: string; value: bigint }) })
  }
  return out
}

/** Each account's balance after `transfers`; mints come from the zero address, which is no account. */
export const balances = (transfers: ReadonlyArray<Transfer>): Map<string, bigint> => {
  const out = new Map<string, bigint>()
  for (const { from, to, value } of transfers) {
    if (from !== SimChain.ZERO_ADDRESS) out.set(from, (out.get(from) ?? 0n) - value)
    out.set(to, (out.get(to) ?? 0n) + value)
  }
  return out
}

/** Rows sorted by id as JavaScript compares strings (SQL's `order by` depends on the database's collation). */
export const byId = <R extends { readonly id: string }>(rows: ReadonlyArray<R>): Array<R> =>
  [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

/** The erc20 example's tables after it indexed the whole chain `--sim text` describes (the shape of `exampleTables`). */
export const exampleTables = (text: string) => {
  const all = transfers(text)
  const minted = all.filter((t) => t.from === SimChain.ZERO_ADDRESS).reduce((sum, t) => sum + t.value, 0n)
  return {
    accounts: byId([...balances(all)].map(([id, balance]) => ({ id, balance: balance.toString() }))),
    tokens: [{ id: exampleToken, total_supply: minted.toString(), transfers: all.length }],
    transfers: [{ n: String(all.length) }]
  }
}
