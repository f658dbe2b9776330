/**
 * CacheKeys: the chain cache's keys (pure). A log filter's key is a hash of what it matches, so the same filter
 * written another way (addresses or topic values in another order, other case, trailing "any" positions) has the same
 * key; call results are keyed by block hash, target and a hash of the calldata.
 */
import type { Hex } from "viem"
import { keccak256, stringToBytes } from "viem/utils"
import type { LogFilter } from "../RpcClient.js"

const keys = new WeakMap<LogFilter, string>()

/** A stable hash of the filter's sorted addresses and topic values per position (memoised per filter object). */
export const filterKey = (filter: LogFilter): string => {
  const known = keys.get(filter)
  if (known !== undefined) return known
  const sorted = (values: ReadonlyArray<string>) => [...new Set(values.map((v) => v.toLowerCase()))].sort()
  let end = filter.topics.length
  while (end > 0 && filter.topics[end - 1] === null) end--
  const canonical = {
    addresses: filter.addresses === undefined ? null : sorted(filter.addresses),
    topics: filter.topics.slice(0, end).map((allowed) => (allowed === null ? null : sorted(allowed)))
  }
  const key = keccak256(stringToBytes(JSON.stringify(canonical)))
  keys.set(filter, key)
  return key
}

/** The logs of one filter in one block, asked by the block's hash. */
export const blockLogsKey = (filterKey: string, blockHash: string): string => `${filterKey}:${blockHash.toLowerCase()}`

/** An eth_call at a block by its hash. */
export const callKey = (blockHash: string, to: string, data: Hex): string => `${blockHash.toLowerCase()}:${to.toLowerCase()}:${keccak256(data)}`
