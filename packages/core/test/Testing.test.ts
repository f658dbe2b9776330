// A handler test as a user writes it, with the test kit.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Entity, Indexer, Source } from "@chainstore/core"
import * as Testing from "@chainstore/core/testing"
import { Account, TOKEN, Token, ZERO, makeIndexer } from "./fixtures.js"

const indexer = makeIndexer({ source: Source.memory([]).source })
const alice = "0x00000000000000000000000000000000000a11ce"
const bob = "0x0000000000000000000000000000000000000b0b"

/** Uniswap V2's factory event (its last input is unnamed, as in the npm ABI) and a pair's Sync. */
const factoryAbi = [{
  type: "event",
  name: "PairCreated",
  anonymous: false,
  inputs: [
    { indexed: true, name: "token0", type: "address" },
    { indexed: true, name: "token1", type: "address" },
    { indexed: false, name: "pair", type: "address" },
    { indexed: false, name: "", type: "uint256" }
  ]
}] as const
const pairAbi = [{
  type: "event",
  name: "Sync",
  anonymous: false,
  inputs: [{ indexed: false, name: "reserve0", type: "uint112" }, { indexed: false, name: "reserve1", type: "uint112" }]
}] as const

const Pool = Entity.make("Pool", { id: Schema.String, token0: Schema.String, index: Schema.BigInt, reserve0: Schema.BigInt })
const FACTORY = "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f"
const WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
const USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
const PAIR = "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"

const uniswap = Indexer.make({
  entities: [Pool],
  chains: [{
    id: 1,
    source: Source.memory([]).source,
    startBlock: 1,
    contracts: [{ name: "Factory", abi: factoryAbi, address: FACTORY }, { name: "Pair", abi: pairAbi }]
  }],
  handlers: {
    Factory: {
      PairCreated: (event, ctx) =>
        Effect.andThen(
          ctx.addContract("Pair", event.params.pair),
          ctx.Pool.set({ id: event.params.pair, token0: event.params.token0, index: event.params["3"], reserve0: 0n })
        )
    },
    Pair: {
      Sync: (event, ctx) =>
        Effect.gen(function*() {
          const pool = yield* ctx.Pool.get(event.srcAddress)
          if (pool !== undefined) yield* ctx.Pool.set({ ...pool, reserve0: event.params.reserve0 })
        })
    }
  }
})

describe("Testing kit", () => {
  it.effect("a mint then a transfer move balances and count transfers", () =>
    Effect.gen(function*() {
      const db = yield* Testing.run(indexer, [
        Testing.event("ERC20", "Transfer", { from: ZERO, to: alice, value: 100n }, { blockNumber: 10 }),
        Testing.event("ERC20", "Transfer", { from: alice, to: bob, value: 30n }, { blockNumber: 11 })
      ])
      assert.strictEqual((yield* db.get(Account, alice))?.balance, 70n)
      assert.strictEqual((yield* db.get(Account, bob))?.balance, 30n)
      assert.deepStrictEqual(yield* db.get(Token, TOKEN), { id: TOKEN, supply: 100n, transfers: 2 })
      assert.strictEqual((yield* db.all(Account)).length, 2)
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("an unnamed input is read by its position; addresses arrive lowercase, as from a chain", () =>
    Effect.gen(function*() {
      const db = yield* Testing.run(uniswap, [
        Testing.event("Factory", "PairCreated", { token0: USDC, token1: WETH, pair: PAIR, "3": 1n }, { blockNumber: 5 }),
        Testing.event("Pair", "Sync", { reserve0: 42n, reserve1: 7n }, { blockNumber: 6, srcAddress: PAIR })
      ])
      assert.deepStrictEqual(yield* db.get(Pool, PAIR.toLowerCase()), {
        id: PAIR.toLowerCase(),
        token0: USDC.toLowerCase(),
        index: 1n,
        reserve0: 42n
      })
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("a test event that does not fit the ABI fails naming contract, event and param", () =>
    Effect.gen(function*() {
      const at = { blockNumber: 5 }
      const failure = (params: Readonly<Record<string, unknown>>, eventName = "PairCreated") =>
        Effect.flip(Testing.run(uniswap, [Testing.event("Factory", eventName, params, at)]))
      const mistyped = yield* failure({ token0: USDC, token1: WETH, pair: 42, "3": 1n })
      assert.strictEqual(mistyped._tag, "EventParamsError")
      assert.strictEqual(mistyped.message, `Factory.PairCreated param "pair": is not a valid address: Address "42" is invalid.`)
      const unknownParam = yield* failure({ token0: USDC, token1: WETH, pair: PAIR, amount: 1n })
      assert.strictEqual(unknownParam.message, `Factory.PairCreated param "amount": is not an input of the event (its params: token0, token1, pair, 3)`)
      const missing = yield* failure({ token0: USDC, token1: WETH, pair: PAIR })
      assert.strictEqual(missing.message, `Factory.PairCreated param "3": is missing (uint256)`)
      const unknownEvent = yield* failure({}, "Swap")
      assert.strictEqual(unknownEvent.message, `Factory.Swap: the ABI of "Factory" has no event "Swap"`)
    }).pipe(Effect.provide(Testing.layer)))
})
