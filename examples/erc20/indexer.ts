/**
 * ERC20 example: balances, supply and transfer counts of one token, plus every transfer as a row.
 * By default it indexes a simulated chain (1000 blocks × 100 Transfers); `chainstore run --sim k=v,...` changes it.
 */
import { Effect, Schema } from "effect"
import { Entity, ExternalEffect, Indexer, SimChain } from "@chainstore/core"

export const erc20Abi = [
  {
    type: "event",
    name: "Transfer",
    anonymous: false,
    inputs: [
      { name: "from", type: "address", indexed: true },
      { name: "to", type: "address", indexed: true },
      { name: "value", type: "uint256", indexed: false }
    ]
  }
] as const

export const Account = Entity.make("Account", { id: Schema.String, balance: Schema.BigInt })
export const Token = Entity.make("Token", {
  id: Schema.String,
  name: Schema.String,
  symbol: Schema.String,
  decimals: Schema.Int,
  totalSupply: Schema.BigInt,
  transfers: Schema.Int
})
export const Transfer = Entity.make("Transfer", {
  id: Schema.String,
  from: Schema.String,
  to: Schema.String,
  value: Schema.BigInt,
  blockNumber: Schema.Int
}, { indexes: ["from", "to"] })

const ZERO = "0x0000000000000000000000000000000000000000"
const TOKEN = "0x5f5e100000000000000000000000000000000001"

/** Token metadata: a deterministic local answer on the simulated chain. Persisted, so a restart never asks again. */
export const tokenInfo = ExternalEffect.make({
  name: "tokenInfo",
  input: Schema.Struct({ chainId: Schema.Int, address: Schema.String }),
  output: Schema.Struct({ name: Schema.String, symbol: Schema.String, decimals: Schema.Int }),
  run: ({ address }) => Effect.succeed({ name: `Token ${address.slice(2, 8)}`, symbol: `T${address.slice(-4).toUpperCase()}`, decimals: 18 })
})

/** Whether an address is the zero address's counterpart in a mint/burn: cheap, so kept in memory only. */
export const transferKind = ExternalEffect.make({
  name: "transferKind",
  input: Schema.Struct({ from: Schema.String, to: Schema.String }),
  output: Schema.Literals(["mint", "burn", "transfer"]),
  cache: false,
  run: ({ from, to }) => Effect.succeed(from === ZERO ? "mint" as const : to === ZERO ? "burn" as const : "transfer" as const)
})

export default Indexer.make({
  entities: [Account, Token, Transfer],
  effects: [tokenInfo, transferKind],
  chains: [
    {
      id: 1337,
      source: SimChain.source({ blocks: 1000, eventsPerBlock: 100 }),
      startBlock: 1,
      contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }]
    }
  ],
  handlers: {
    ERC20: {
      Transfer: (event, ctx) =>
        Effect.gen(function*() {
          const { from, to, value } = event.params
          const kind = yield* ctx.effect(transferKind, { from, to })
          if (kind !== "mint") {
            const sender = yield* ctx.Account.get(from)
            yield* ctx.Account.set({ id: from, balance: (sender?.balance ?? 0n) - value })
          }
          if (kind !== "burn") {
            const receiver = yield* ctx.Account.get(to)
            yield* ctx.Account.set({ id: to, balance: (receiver?.balance ?? 0n) + value })
          }
          const token = yield* ctx.Token.get(event.srcAddress)
          const info = token ?? { ...(yield* ctx.effect(tokenInfo, { chainId: event.chainId, address: event.srcAddress })), totalSupply: 0n, transfers: 0 }
          yield* ctx.Token.set({
            id: event.srcAddress,
            name: info.name,
            symbol: info.symbol,
            decimals: info.decimals,
            totalSupply: info.totalSupply + (kind === "mint" ? value : kind === "burn" ? -value : 0n),
            transfers: info.transfers + 1
          })
          yield* ctx.Transfer.set({ id: `${event.chainId}-${event.blockNumber}-${event.logIndex}`, from, to, value, blockNumber: event.blockNumber })
        })
    }
  }
})
