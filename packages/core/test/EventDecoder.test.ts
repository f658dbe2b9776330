import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { expectTypeOf } from "vitest"
import { decodeEventLog, encodeAbiParameters, encodeEventTopics, getAddress } from "viem/utils"
import type { Abi, AbiEvent, Hex } from "viem"
import { Indexer, SimChain } from "@chainstore/core"
import * as EventDecoder from "../src/internal/EventDecoder.js"

/** Uniswap V2 core's PairCreated, as its npm ABI spells it: the last input has no name. */
const pairCreated = {
  type: "event",
  name: "PairCreated",
  anonymous: false,
  inputs: [
    { indexed: true, internalType: "address", name: "token0", type: "address" },
    { indexed: true, internalType: "address", name: "token1", type: "address" },
    { indexed: false, internalType: "address", name: "pair", type: "address" },
    { indexed: false, internalType: "uint256", name: "", type: "uint256" }
  ]
} as const

const allUnnamed = {
  type: "event",
  name: "Moved",
  inputs: [
    { indexed: true, type: "address" },
    { indexed: false, type: "uint256" },
    { indexed: false, name: "", type: "address" }
  ]
} as const

const nested = {
  type: "event",
  name: "Routed",
  inputs: [
    { indexed: true, name: "tags", type: "address[]" },
    { indexed: false, name: "holders", type: "address[]" },
    {
      indexed: false,
      name: "route",
      type: "tuple",
      components: [
        { name: "owner", type: "address" },
        { name: "legs", type: "tuple[]", components: [{ name: "who", type: "address" }, { name: "amount", type: "uint256" }] },
        { name: "pair", type: "tuple", components: [{ type: "address" }, { type: "bytes20" }] }
      ]
    },
    { indexed: false, name: "grid", type: "address[2][]" }
  ]
} as const

const transfer = SimChain.abi[0]

const factoryAbi = [pairCreated] as const
const checksummed = (hex: string) => getAddress(`0x${hex.padStart(40, "0")}`)
const TOKEN0 = checksummed("abcdef0123456789abcdef0123456789abcdef01")
const TOKEN1 = checksummed("fedcba9876543210fedcba9876543210fedcba98")
const PAIR = checksummed("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0")

/** A log of `event` as a node returns it, from its indexed and its data values in ABI order. */
const logOf = (event: AbiEvent, indexed: ReadonlyArray<unknown>, values: ReadonlyArray<unknown>) => ({
  topics: encodeEventTopics({ abi: [event] as Abi, args: [...indexed] }) as Array<Hex>,
  data: encodeAbiParameters(event.inputs.filter((i) => i.indexed !== true), [...values])
})

const decodeOk = (event: AbiEvent, log: { readonly topics: ReadonlyArray<Hex>; readonly data: Hex }) => {
  const result = EventDecoder.make("C", event).decode(log.topics, log.data)
  if (Result.isFailure(result)) throw result.failure
  return result.success
}

/** A seeded PRNG (mulberry32): the same "random" logs on every run. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const randomHex = (next: () => number, bytes: number) =>
  Array.from({ length: bytes }, () => Math.floor(next() * 256).toString(16).padStart(2, "0")).join("")
const randomAddress = (next: () => number) => checksummed(randomHex(next, 20))
const randomUint = (next: () => number) => BigInt(`0x${randomHex(next, 1 + Math.floor(next() * 32))}`)

/** viem's decodeEventLog, mapped to our keys (names, or positions when unnamed) with addresses lowercased. */
const viaViem = (event: AbiEvent, log: { readonly topics: Array<Hex>; readonly data: Hex }) => {
  const { args } = decodeEventLog({ abi: [event], topics: log.topics as [Hex, ...Array<Hex>], data: log.data })
  const out: Record<string, unknown> = {}
  event.inputs.forEach((input, i) => {
    const key = EventDecoder.keyOf(input, i)
    const value = Array.isArray(args) ? args[i] : (args as Record<string, unknown>)[key]
    out[key] = input.type === "address" ? (value as string).toLowerCase() : value
  })
  return out
}

describe("EventDecoder", () => {
  it("keeps names beside an unnamed input, which is keyed by its position", () => {
    const params = decodeOk(pairCreated, logOf(pairCreated, [TOKEN0, TOKEN1], [PAIR, 7n]))
    assert.deepStrictEqual(params, {
      token0: TOKEN0.toLowerCase(),
      token1: TOKEN1.toLowerCase(),
      pair: PAIR.toLowerCase(),
      "3": 7n
    })
  })

  it("keys every input by position when none is named", () => {
    const params = decodeOk(allUnnamed, logOf(allUnnamed, [TOKEN0], [5n, PAIR]))
    assert.deepStrictEqual(params, { "0": TOKEN0.toLowerCase(), "1": 5n, "2": PAIR.toLowerCase() })
  })

  it("lowercases addresses nested in arrays, tuples and arrays of tuples; leaves bytes and topic hashes alone", () => {
    const bytes20 = `0x${"AB".repeat(20)}` as const
    const tags: Hex = `0x${"1".repeat(64)}`
    const log = {
      topics: [EventDecoder.make("C", nested).selector, tags],
      data: encodeAbiParameters(nested.inputs.slice(1), [
        [TOKEN0, TOKEN1],
        { owner: PAIR, legs: [{ who: TOKEN0, amount: 1n }, { who: TOKEN1, amount: 2n }], pair: [TOKEN1, bytes20] },
        [[TOKEN0, PAIR], [PAIR, TOKEN1]]
      ])
    }
    const lower = (a: string) => a.toLowerCase()
    assert.deepStrictEqual(decodeOk(nested, log), {
      tags,
      holders: [lower(TOKEN0), lower(TOKEN1)],
      route: {
        owner: lower(PAIR),
        legs: [{ who: lower(TOKEN0), amount: 1n }, { who: lower(TOKEN1), amount: 2n }],
        pair: [lower(TOKEN1), lower(bytes20)]
      },
      grid: [[lower(TOKEN0), lower(PAIR)], [lower(PAIR), lower(TOKEN1)]]
    })
  })

  it("fails with a typed error naming contract and event on a missing topic or short data", () => {
    const decoder = EventDecoder.make("Factory", pairCreated)
    const log = logOf(pairCreated, [TOKEN0, TOKEN1], [PAIR, 7n])
    const missing = decoder.decode(log.topics.slice(0, 2), log.data)
    assert.isTrue(Result.isFailure(missing))
    if (Result.isFailure(missing)) {
      assert.strictEqual(missing.failure._tag, "EventParamsError")
      assert.strictEqual(missing.failure.message, "Factory.PairCreated: expected 3 topics, the log has 2")
    }
    const short = decoder.decode(log.topics, log.data.slice(0, 66) as Hex)
    assert.isTrue(Result.isFailure(short) && short.failure.message.startsWith("Factory.PairCreated: "))
  })

  it("decodes as viem's decodeEventLog does, on random Transfer and PairCreated logs", () => {
    const next = prng(13)
    for (let i = 0; i < 300; i++) {
      const t = logOf(transfer, [randomAddress(next), randomAddress(next)], [randomUint(next)])
      assert.deepStrictEqual(decodeOk(transfer, t), viaViem(transfer, t))
      const p = logOf(pairCreated, [randomAddress(next), randomAddress(next)], [randomAddress(next), randomUint(next)])
      assert.deepStrictEqual(decodeOk(pairCreated, p), viaViem(pairCreated, p))
    }
  })

  it("reads one-word types word by word exactly as viem decodes them, and fails where viem fails, on random and malformed logs", () => {
    const types = ["uint8", "uint48", "uint56", "uint256", "int8", "int24", "int48", "int64", "int256", "bool", "bytes1", "bytes20", "bytes32", "address"] as const
    const statics: AbiEvent = {
      type: "event",
      name: "Statics",
      inputs: [
        { indexed: true, name: "who", type: "address" },
        { indexed: true, name: "delta", type: "int256" },
        { indexed: true, name: "flag", type: "bool" },
        ...types.map((type, i) => ({ indexed: false, name: `v${i}`, type }))
      ]
    }
    const next = prng(15)
    const value = (type: string): unknown => {
      if (type === "address") return randomAddress(next)
      if (type === "bool") return next() < 0.5
      if (type.startsWith("bytes")) return `0x${randomHex(next, Number(type.slice(5)))}`
      const bits = Number(type.replace(/^u?int/, ""))
      const magnitude = BigInt(`0x${randomHex(next, Math.max(1, Math.floor(next() * bits / 8)))}`) % (1n << BigInt(bits - 1))
      const big = type.startsWith("u") ? magnitude * 2n : next() < 0.5 ? -magnitude : magnitude
      return bits > 48 ? big : Number(big)
    }
    /** Decoded both ways: equal values, or both a failure. */
    const same = (log: { readonly topics: Array<Hex>; readonly data: Hex }, why: string) => {
      const ours = EventDecoder.make("C", statics).decode(log.topics, log.data)
      let theirs: Record<string, unknown> | undefined
      try {
        theirs = viaViem(statics, log)
      } catch {
        theirs = undefined
      }
      if (theirs === undefined) assert.isTrue(Result.isFailure(ours), `${why}: viem fails, ours gave ${JSON.stringify(Result.isSuccess(ours) ? ours.success : null, (_, v) => typeof v === "bigint" ? `${v}n` : v)}`)
      else {
        assert.isTrue(Result.isSuccess(ours), why)
        if (Result.isSuccess(ours)) {
          const lowered = Object.fromEntries(Object.entries(theirs).map(([k, v]) => [k, typeof v === "string" && /^0x/.test(v) ? v.toLowerCase() : v]))
          assert.deepStrictEqual(ours.success, lowered, why)
        }
      }
    }
    for (let i = 0; i < 300; i++) {
      const log = logOf(statics, [randomAddress(next), value("int256"), next() < 0.5], types.map(value))
      same(log, `random log ${i}`)
      const word = (k: number) => 2 + 64 * k
      // Malformed: a word past its type's range, a bool word of 2, short, odd-length and non-hex data, extra bytes.
      const k = Math.floor(next() * types.length)
      const garbage = `${log.data.slice(0, word(k))}${randomHex(next, 32)}${log.data.slice(word(k + 1))}` as Hex
      same({ ...log, data: garbage }, `log ${i}: word ${k} (${types[k]}) random`)
      same({ ...log, data: log.data.slice(0, log.data.length - 2) as Hex }, `log ${i}: one byte short`)
      same({ ...log, data: `${log.data}0` as Hex }, `log ${i}: odd length`)
      same({ ...log, data: `${log.data.slice(0, 10)}zz${log.data.slice(12)}` as Hex }, `log ${i}: not hex`)
      same({ ...log, data: `${log.data}${randomHex(next, 32)}` as Hex }, `log ${i}: a word too many`)
      same({ ...log, topics: [log.topics[0]!, log.topics[1]!, log.topics[2]!, `0x${"0".repeat(63)}2`] }, `log ${i}: bool topic of 2`)
    }
  })

  it("types params as the decoder keys them", () => {
    type Params = Indexer.EventParams<typeof factoryAbi, "PairCreated">
    expectTypeOf<Params["pair"]>().toEqualTypeOf<`0x${string}`>()
    expectTypeOf<Params["3"]>().toEqualTypeOf<bigint>()
    expectTypeOf<keyof Params>().toEqualTypeOf<"token0" | "token1" | "pair" | "3">()
    expectTypeOf<Indexer.EventParams<readonly [typeof allUnnamed], "Moved">>().toEqualTypeOf<{
      readonly "0": `0x${string}`
      readonly "1": bigint
      readonly "2": `0x${string}`
    }>()
    // An indexed array is its topic hash; nested tuples keep abitype's shape (an array when a component is unnamed).
    type Routed = Indexer.EventParams<readonly [typeof nested], "Routed">
    expectTypeOf<Routed["tags"]>().toEqualTypeOf<`0x${string}`>()
    expectTypeOf<Routed["route"]["pair"]>().toEqualTypeOf<readonly [`0x${string}`, `0x${string}`]>()
    const read = (params: Params) => {
      expectTypeOf(params.token0).toEqualTypeOf<`0x${string}`>()
      // @ts-expect-error: PairCreated has no input named "amount"
      return params.amount
    }
    assert.isFunction(read)
  })
})
