/**
 * bench/event-model.ts's indexer: bench/peers/indexer.ts's bookkeeping (per account, from -= value, to += value, one
 * more transfer each) plus the field or handler a variant asks for, so that the variants differ by that alone.
 * EVENT_MODEL: "none" (no selection), "transaction" (event.transaction.from, each account's last sender),
 * "receipt" (transaction from + receipt status and gasUsed), "block" (a block handler on every block writing one row
 * with the block's gasUsed). Reads RPC_URL, TOKEN_ADDRESS, START_BLOCK, END_BLOCK and CHAIN_ID (default 31337).
 */
import { Effect, Redacted, Schema } from "effect"
import { Entity, type HandlerContext, Indexer, RpcSource, SimChain } from "@chainstore/core"

export const Account = Entity.make("Account", { id: Schema.String, balance: Schema.BigInt, transferCount: Schema.Int, lastSender: Schema.String })
export const BlockGas = Entity.make("BlockGas", { id: Schema.String, gasUsed: Schema.BigInt })

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is not set`)
  return value
}

const chain = {
  id: Number(process.env.CHAIN_ID ?? 31337),
  source: RpcSource.source({ url: Redacted.make(env("RPC_URL")) }),
  startBlock: Number(env("START_BLOCK")),
  ...(process.env.END_BLOCK === undefined ? {} : { endBlock: Number(process.env.END_BLOCK) })
}
const contract = { name: "ERC20", abi: SimChain.abi, address: env("TOKEN_ADDRESS").toLowerCase() } as const

/** The same bookkeeping in every variant; `sender` is "" where no transaction field is selected. */
const book = (
  params: { readonly from: string; readonly to: string; readonly value: bigint },
  sender: string,
  ctx: HandlerContext.Context<readonly [typeof Account, typeof BlockGas]>
) =>
  Effect.gen(function*() {
    const { from, to, value } = params
    const a = yield* ctx.Account.get(from)
    yield* ctx.Account.set({ id: from, balance: (a?.balance ?? 0n) - value, transferCount: (a?.transferCount ?? 0) + 1, lastSender: sender })
    const b = yield* ctx.Account.get(to)
    yield* ctx.Account.set({ id: to, balance: (b?.balance ?? 0n) + value, transferCount: (b?.transferCount ?? 0) + 1, lastSender: sender })
  })

const entities = [Account, BlockGas] as const

const variants = {
  none: () =>
    Indexer.make({
      entities,
      chains: [{ ...chain, contracts: [contract] }],
      handlers: { ERC20: { Transfer: (event, ctx) => book(event.params, "", ctx) } }
    }),
  transaction: () =>
    Indexer.make({
      entities,
      chains: [{ ...chain, contracts: [{ ...contract, fields: { transaction: ["from"] } }] }],
      handlers: { ERC20: { Transfer: (event, ctx) => book(event.params, event.transaction.from, ctx) } }
    }),
  receipt: () =>
    Indexer.make({
      entities,
      chains: [{ ...chain, contracts: [{ ...contract, fields: { transaction: ["from", "status", "gasUsed"] } }] }],
      handlers: {
        ERC20: {
          Transfer: (event, ctx) =>
            event.transaction.status === "success" && event.transaction.gasUsed > 0n
              ? book(event.params, event.transaction.from, ctx)
              : Effect.die(new Error(`transaction ${event.transactionHash}: status ${event.transaction.status}`))
        }
      }
    }),
  block: () =>
    Indexer.make({
      entities,
      chains: [{ ...chain, contracts: [contract], onBlock: [{ name: "gas", interval: 1, fields: { block: ["gasUsed"] } }] }],
      handlers: { ERC20: { Transfer: (event, ctx) => book(event.params, "", ctx) } },
      blockHandlers: { gas: (block, ctx) => ctx.BlockGas.set({ id: String(block.block.number), gasUsed: block.block.gasUsed }) }
    })
}

const mode = process.env.EVENT_MODEL ?? "none"
if (!(mode in variants)) throw new Error(`EVENT_MODEL must be one of ${Object.keys(variants).join(", ")}, got ${mode}`)
export default variants[mode as keyof typeof variants]()
