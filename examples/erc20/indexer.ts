/**
 * ERC20 example: balances, supply and transfer counts of one token, plus every transfer as a row.
 * By default it indexes a simulated chain (1000 blocks × 100 Transfers); `chainstore run --sim k=v,...` changes it.
 * With RPC_URL and TOKEN_ADDRESS set (optional CHAIN_ID, default 31337; START_BLOCK; END_BLOCK) it indexes that
 * token on a real chain through JSON-RPC, and reads its name, symbol and decimals from the contract.
 */
import { Effect, Redacted, Schema } from "effect"
import { createPublicClient, http } from "viem"
import { Entity, ExternalEffect, Indexer, RpcSource, SimChain } from "@chainstore/core"

export const erc20Abi = [
  { type: "function", name: "name", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "string" }] },
  { type: "function", name: "symbol", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "string" }] },
  { type: "function", name: "decimals", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "uint8" }] },
  ...SimChain.abi
] as const

export const Account = Entity.make("Account", { id: Entity.Address, balance: Schema.BigInt })
export const Token = Entity.make("Token", {
  id: Entity.Address,
  name: Schema.String,
  symbol: Schema.String,
  decimals: Schema.Int,
  totalSupply: Schema.BigInt,
  transfers: Schema.Int
})
// `from` and `to` hold Account ids: the query API resolves them as nested accounts, and gives each Account its
// transfers as reverse lists (`transfersByFrom`, `transfersByTo`). References are indexed.
export const Transfer = Entity.make("Transfer", {
  id: Schema.String,
  from: Entity.Address,
  to: Entity.Address,
  value: Schema.BigInt,
  blockNumber: Schema.Int
}, { references: { from: "Account", to: "Account" } })

const ZERO = "0x0000000000000000000000000000000000000000"
const rpcUrl = process.env.RPC_URL
const token = (process.env.TOKEN_ADDRESS ?? "0x5f5e100000000000000000000000000000000001").toLowerCase()
const client = rpcUrl === undefined ? undefined : createPublicClient({ transport: http(rpcUrl) })

/**
 * Token metadata: read from the contract on a real chain, a deterministic local answer on the simulated one.
 * Persisted, so a restart never asks again.
 */
export const tokenInfo = ExternalEffect.make({
  name: "tokenInfo",
  input: Schema.Struct({ chainId: Schema.Int, address: Schema.String }),
  output: Schema.Struct({ name: Schema.String, symbol: Schema.String, decimals: Schema.Int }),
  rateLimit: { calls: 20, per: "1 second" },
  run: ({ address }) =>
    client === undefined
      ? Effect.succeed({ name: `Token ${address.slice(2, 8)}`, symbol: `T${address.slice(-4).toUpperCase()}`, decimals: 18 })
      : Effect.tryPromise(async () => {
        const contract = { address: address as `0x${string}`, abi: erc20Abi } as const
        const [name, symbol, decimals] = await Promise.all([
          client.readContract({ ...contract, functionName: "name" }),
          client.readContract({ ...contract, functionName: "symbol" }),
          client.readContract({ ...contract, functionName: "decimals" })
        ])
        return { name, symbol, decimals }
      })
})

/** Whether an address is the zero address's counterpart in a mint/burn: cheap, so kept in memory only. */
export const transferKind = ExternalEffect.make({
  name: "transferKind",
  input: Schema.Struct({ from: Schema.String, to: Schema.String }),
  output: Schema.Literals(["mint", "burn", "transfer"]),
  cache: false,
  run: ({ from, to }) => Effect.succeed(from === ZERO ? "mint" as const : to === ZERO ? "burn" as const : "transfer" as const)
})

const contracts = [{ name: "ERC20", abi: erc20Abi, address: token }] as const

export default Indexer.make({
  entities: [Account, Token, Transfer],
  effects: [tokenInfo, transferKind],
  chains: [
    rpcUrl === undefined
      ? { id: 1337, source: SimChain.source({ blocks: 1000, eventsPerBlock: 100 }), startBlock: 1, contracts }
      : {
        id: Number(process.env.CHAIN_ID ?? 31337),
        source: RpcSource.source({ url: Redacted.make(rpcUrl) }),
        startBlock: Number(process.env.START_BLOCK ?? 0),
        ...(process.env.END_BLOCK === undefined ? {} : { endBlock: Number(process.env.END_BLOCK) }),
        contracts
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
