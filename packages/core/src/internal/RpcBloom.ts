/**
 * RpcBloom: whether a block's `logsBloom` says it may hold logs of given addresses and topics (the Ethereum
 * 2048-bit bloom: three bits per value, from its keccak256). A "no" is certain; a "yes" may be a false positive.
 */
import { type Hex, hexToBytes, keccak256 } from "viem"

/** The three bits of one value, as (byte index in the bloom, mask) pairs. */
type Bits = ReadonlyArray<readonly [number, number]>

export interface Matcher {
  readonly addresses: ReadonlyArray<Bits>
  readonly topics: ReadonlyArray<Bits>
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

/** Built once per filter: the bits of its addresses and topics (none: any). */
export const matcher = (addresses: ReadonlyArray<string>, topics: ReadonlyArray<Hex>): Matcher => ({
  addresses: addresses.map((a) => bitsOf(a.toLowerCase() as Hex)),
  topics: topics.map(bitsOf)
})

const byteAt = (bloom: string, index: number): number => parseInt(bloom.slice(2 + 2 * index, 4 + 2 * index), 16)

const holds = (bloom: string, bits: Bits): boolean => {
  for (const [index, mask] of bits) if ((byteAt(bloom, index) & mask) === 0) return false
  return true
}

/** The block may hold a log of one of the addresses with one of the topics; a missing or malformed bloom may hold anything. */
export const mayContain = (bloom: string | undefined, m: Matcher): boolean => {
  if (bloom === undefined || bloom.length !== 514) return true
  const address = m.addresses.length === 0 || m.addresses.some((bits) => holds(bloom, bits))
  return address && (m.topics.length === 0 || m.topics.some((bits) => holds(bloom, bits)))
}
