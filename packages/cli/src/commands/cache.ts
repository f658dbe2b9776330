/**
 * `chainstore cache status` and `chainstore cache clear`: what the chain cache (the fetched chain data runs reuse)
 * holds per chain on a database, and dropping it.
 */
import { Console, Effect, Option } from "effect"
import { Flag } from "effect/cli"
import { ChainCache } from "@chainstore/core"
import * as Database from "../Database.js"

export const statusFlags = {
  db: Database.flags.db,
  dataDir: Database.flags.dataDir,
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print JSON"), Flag.withDefault(false))
} as const

export const clearFlags = {
  db: Database.flags.db,
  dataDir: Database.flags.dataDir,
  chain: Flag.Int("chain").pipe(Flag.withDescription("Clear only this chain's data"), Flag.optional)
} as const

export const status = Effect.fn("chainstore.cache.status")(function*(options: Database.Location & { readonly json: boolean }) {
  yield* Database.check(options)
  const chains = yield* Effect.gen(function*() {
    const cache = yield* ChainCache.ChainCache
    return yield* cache.status
  }).pipe(Effect.provide(Database.cacheLayer(options)))
  if (options.json) {
    yield* Console.log(JSON.stringify(chains, undefined, 2))
    return
  }
  const lines = [
    `Chain cache: ${Database.describeLocation(options)}`,
    ...(chains.length === 0 ? ["Empty"] : chains.map(describe))
  ]
  yield* Console.log(lines.join("\n"))
})

export const clear = Effect.fn("chainstore.cache.clear")(function*(options: Database.Location & { readonly chain: Option.Option<number> }) {
  yield* Database.check(options)
  const chain = Option.getOrUndefined(options.chain)
  yield* Effect.gen(function*() {
    const cache = yield* ChainCache.ChainCache
    yield* cache.clear(chain)
  }).pipe(Effect.provide(Database.cacheLayer(options)))
  yield* Console.log(`Cleared the chain cache${chain === undefined ? "" : ` of chain ${chain}`} in ${Database.describeLocation(options)}`)
})

const describe = (c: ChainCache.ChainStatus): string => {
  const blocks = c.covered.length === 0 ? "no blocks" : `blocks ${c.covered.map((i) => (i.fromBlock === i.toBlock ? `${i.fromBlock}` : `${i.fromBlock}-${i.toBlock}`)).join(", ")}`
  return `Chain ${c.chainId}: ${blocks} in ${c.ranges} ranges of ${c.filters} log filters; ${c.logs} logs, ${c.headers} blocks, ${c.transactions} transactions, ${c.receipts} receipts, ${c.calls} calls; ${megabytes(c.bytes)}`
}

const megabytes = (bytes: number): string => `${(bytes / 1024 ** 2).toFixed(bytes < 1024 ** 2 ? 2 : 1)} MB`
