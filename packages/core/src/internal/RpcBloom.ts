/**
 * RpcBloom: whether a block's `logsBloom` says it may hold logs an eth_getLogs filter matches (addresses, topics per
 * position; the Ethereum 2048-bit bloom: three bits per value, from its keccak256). A "no" is certain; a "yes" may be a
 * false positive.
 */
import { type Hex, hexToBytes, keccak256 } from "viem"

/** The three bits of one value, as (byte index in the bloom, mask) pairs. */
type Bits = ReadonlyArray<readonly [number, number]>

export interface Matcher {
  /** undefined: any address. */
  readonly addresses: ReadonlyArray<Bits> | undefined
  /** Per topic position that filters (null positions left out): the values allowed there. */
  readonly topics: ReadonlyArray<ReadonlyArray<Bits>>
}

const bitsOf = (value: Hex): Bits => {
  const hash = hexToBytes(keccak256(value))
  const out: Array<readonly [number, number]> = []
  for (let i = 0; i < 6; i += 2) {
    const bit = ((hash[i]! << 8) | hash[i + 1]!) & 2047
    out.push([255 - (bit >> 3), 1 << (bit & 7)])
  }
  return out
}

/** Built once per filter: the bits of its addresses (undefined: any) and of the topics allowed per position (null: any). */
export const matcher = (addresses: ReadonlyArray<string> | undefined, topics: ReadonlyArray<ReadonlyArray<Hex> | null>): Matcher => ({
  addresses: addresses?.map((a) => bitsOf(a.toLowerCase() as Hex)),
  topics: topics.flatMap((allowed) => (allowed === null ? [] : [allowed.map((t) => bitsOf(t.toLowerCase() as Hex))]))
})

const byteAt = (bloom: string, index: number): number => parseInt(bloom.slice(2 + 2 * index, 4 + 2 * index), 16)

const holds = (bloom: string, bits: Bits): boolean => {
  for (const [index, mask] of bits) if ((byteAt(bloom, index) & mask) === 0) return false
  return true
}

/**
 * The block may hold a log of one of the addresses with, at each filtered position, one of the topics allowed there; a
 * missing or malformed bloom may hold anything.
 */
export const mayContain = (bloom: string | undefined, m: Matcher): boolean => {
  if (bloom === undefined || bloom.length !== 514) return true
  if (m.addresses !== undefined && !m.addresses.some((bits) => holds(bloom, bits))) return false
  return m.topics.every((allowed) => allowed.some((bits) => holds(bloom, bits)))
}
