/**
 * The minimal chainstore indexer of bench/peers.ts: exactly the bookkeeping the Ponder and HyperIndex indexers do
 * (bench/ponder, bench/envio) — per account, from -= value, to += value, one more transfer each, the zero address
 * included — and nothing else (no Transfer rows, no Token row, no effects).
 * Reads RPC_URL, TOKEN_ADDRESS, START_BLOCK, END_BLOCK and CHAIN_ID (default 31337) like examples/erc20, and the
 * optional RPC_INITIAL_RANGE.
 */
import { Effect, Redacted, Schema } from "effect"
import { Entity, Indexer, RpcSource, SimChain } from "@chainstore/core"

// The ERC20 Transfer event, as the simulated chain emits it.
const transferAbi = SimChain.abi

export const Account = Entity.make("Account", { id: Schema.String, balance: Schema.BigInt, transferCount: Schema.Int })

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is not set`)
  return value
}

export default Indexer.make({
  entities: [Account],
  chains: [
    {
      id: Number(process.env.CHAIN_ID ?? 31337),
      // RPC_INITIAL_RANGE (bench/peers.ts's "-r<N>" variants): blocks per eth_getLogs to start with instead of RpcSource's default.
      source: RpcSource.source({
        url: Redacted.make(env("RPC_URL")),
        ...(process.env.RPC_INITIAL_RANGE === undefined ? {} : { initialRange: Number(process.env.RPC_INITIAL_RANGE) })
      }),
      startBlock: Number(env("START_BLOCK")),
      ...(process.env.END_BLOCK === undefined ? {} : { endBlock: Number(process.env.END_BLOCK) }),
      contracts: [{ name: "ERC20", abi: transferAbi, address: env("TOKEN_ADDRESS").toLowerCase() }]
    }
  ],
  handlers: {
    ERC20: {
      Transfer: (event, ctx) =>
        Effect.gen(function*() {
          const { from, to, value } = event.params
          const sender = yield* ctx.Account.get(from)
          yield* ctx.Account.set({ id: from, balance: (sender?.balance ?? 0n) - value, transferCount: (sender?.transferCount ?? 0) + 1 })
          const receiver = yield* ctx.Account.get(to)
          yield* ctx.Account.set({ id: to, balance: (receiver?.balance ?? 0n) + value, transferCount: (receiver?.transferCount ?? 0) + 1 })
        })
    }
  }
})
