/**
 * Uniswap V2 example: every pair a UniswapV2Factory creates, found through its PairCreated event and indexed from
 * then on, with its reserves, LP total supply and LP balances. Indexes a real chain through JSON-RPC: RPC_URL and
 * UNISWAP_FACTORY (the factory's address) are required; CHAIN_ID (default 31337), START_BLOCK (default 0; the
 * factory's deployment block saves scanning before it) and END_BLOCK are optional.
 * The event ABIs are copied as they are from @uniswap/v2-core 1.0.1's build/UniswapV2Factory.json and
 * build/UniswapV2Pair.json.
 */
import { Effect, Redacted, Schema } from "effect"
import { Entity, Indexer, RpcSource } from "@chainstore/core"

export const factoryAbi = [
  {
    anonymous: false,
    inputs: [
      { indexed: true, internalType: "address", name: "token0", type: "address" },
      { indexed: true, internalType: "address", name: "token1", type: "address" },
      { indexed: false, internalType: "address", name: "pair", type: "address" },
      { indexed: false, internalType: "uint256", name: "", type: "uint256" }
    ],
    name: "PairCreated",
    type: "event"
  }
] as const

export const pairAbi = [
  {
    anonymous: false,
    inputs: [
      { indexed: true, internalType: "address", name: "from", type: "address" },
      { indexed: true, internalType: "address", name: "to", type: "address" },
      { indexed: false, internalType: "uint256", name: "value", type: "uint256" }
    ],
    name: "Transfer",
    type: "event"
  },
  {
    anonymous: false,
    inputs: [
      { indexed: false, internalType: "uint112", name: "reserve0", type: "uint112" },
      { indexed: false, internalType: "uint112", name: "reserve1", type: "uint112" }
    ],
    name: "Sync",
    type: "event"
  }
] as const

export const Pair = Entity.make("Pair", {
  id: Schema.String,
  token0: Schema.String,
  token1: Schema.String,
  /** Position in the factory's allPairs. */
  index: Schema.Int,
  reserve0: Schema.BigInt,
  reserve1: Schema.BigInt,
  /** LP tokens in existence, the MINIMUM_LIQUIDITY locked at the zero address included. */
  totalSupply: Schema.BigInt,
  createdAtBlock: Schema.Int
})

/** LP tokens of one holder in one pair; `<pair>-<holder>`. The zero address is not a holder. */
export const LpBalance = Entity.make("LpBalance", {
  id: Schema.String,
  pair: Schema.String,
  holder: Schema.String,
  balance: Schema.BigInt
})

/** A pair's event came before its PairCreated was handled: the Pair row it updates is missing. */
export class MissingPair extends Schema.TaggedError<MissingPair>()("MissingPair", {
  pair: Schema.String,
  event: Schema.String,
  blockNumber: Schema.Number
}) {}

const ZERO = "0x0000000000000000000000000000000000000000"
const rpcUrl = process.env.RPC_URL
const factory = process.env.UNISWAP_FACTORY
if (rpcUrl === undefined || factory === undefined) {
  throw new Error("examples/uniswap-v2 indexes a real chain: set RPC_URL and UNISWAP_FACTORY (optional: CHAIN_ID, START_BLOCK, END_BLOCK)")
}

export default Indexer.make({
  entities: [Pair, LpBalance],
  chains: [{
    id: Number(process.env.CHAIN_ID ?? 31337),
    source: RpcSource.source({ url: Redacted.make(rpcUrl) }),
    startBlock: Number(process.env.START_BLOCK ?? 0),
    ...(process.env.END_BLOCK === undefined ? {} : { endBlock: Number(process.env.END_BLOCK) }),
    contracts: [
      { name: "Factory", abi: factoryAbi, address: factory },
      // No address: each pair is added by the PairCreated handler.
      { name: "Pair", abi: pairAbi }
    ]
  }],
  handlers: {
    Factory: {
      PairCreated: (event, ctx) =>
        Effect.gen(function*() {
          const { token0, token1, pair } = event.params
          yield* ctx.Pair.set({
            id: pair,
            token0,
            token1,
            // The unnamed 4th input is allPairs.length just after the push: the pair's position plus one.
            index: Number(event.params["3"]) - 1,
            reserve0: 0n,
            reserve1: 0n,
            totalSupply: 0n,
            createdAtBlock: event.blockNumber
          })
          yield* ctx.addContract("Pair", pair)
        })
    },
    Pair: {
      Transfer: (event, ctx) =>
        Effect.gen(function*() {
          const { from, to, value } = event.params
          for (const [holder, delta] of [[from, -value], [to, value]] as const) {
            if (holder === ZERO) continue
            const id = `${event.srcAddress}-${holder}`
            const row = yield* ctx.LpBalance.get(id)
            yield* ctx.LpBalance.set({ id, pair: event.srcAddress, holder, balance: (row?.balance ?? 0n) + delta })
          }
          // Minted from, or burnt to, the zero address.
          if (from !== ZERO && to !== ZERO) return
          const pair = yield* ctx.Pair.get(event.srcAddress)
          if (pair === undefined) return yield* new MissingPair({ pair: event.srcAddress, event: "Transfer", blockNumber: event.blockNumber })
          yield* ctx.Pair.set({ ...pair, totalSupply: pair.totalSupply + (from === ZERO ? value : -value) })
        }),
      Sync: (event, ctx) =>
        Effect.gen(function*() {
          const pair = yield* ctx.Pair.get(event.srcAddress)
          if (pair === undefined) return yield* new MissingPair({ pair: event.srcAddress, event: "Sync", blockNumber: event.blockNumber })
          yield* ctx.Pair.set({ ...pair, reserve0: event.params.reserve0, reserve1: event.params.reserve1 })
        })
    }
  }
})
