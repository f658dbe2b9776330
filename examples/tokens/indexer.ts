/**
 * Tokens example: every ERC20 of a chain, found through its Transfer events (a wildcard contract: no address), with
 * balances, every transfer (its transaction's sender and its block's base fee selected as extra fields), and every
 * 7 blocks a snapshot of each token's totalSupply read from the contract at that block. Indexes a real chain through
 * JSON-RPC: RPC_URL is required; CHAIN_ID (default 31337), START_BLOCK (default 0) and END_BLOCK are optional.
 * `npm run demo:tokens` starts a local anvil with OpenZeppelin presets to index and prints these variables.
 */
import { Effect, Redacted, Schema } from "effect"
import { Entity, Indexer, RpcSource } from "@chainstore/core"

/**
 * The ERC20 Transfer event. An ERC721 Transfer has the same signature topic but indexes its third input (4 topics,
 * no data): it does not decode as this event and is not an ERC20 transfer.
 */
export const erc20Abi = [
  {
    anonymous: false,
    inputs: [
      { indexed: true, internalType: "address", name: "from", type: "address" },
      { indexed: true, internalType: "address", name: "to", type: "address" },
      { indexed: false, internalType: "uint256", name: "value", type: "uint256" }
    ],
    name: "Transfer",
    type: "event"
  }
] as const

export const totalSupplyAbi = [
  { type: "function", name: "totalSupply", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "uint256" }] }
] as const

/** A contract seen emitting an ERC20 Transfer; `firstBlock` is indexed so the block handler can list the tokens seen so far. */
export const Token = Entity.make("Token", {
  id: Entity.Address,
  firstBlock: Schema.Int,
  transfers: Schema.Int,
  /** Minted minus burnt, as the Transfer events tell it (from or to the zero address). */
  supplyFromEvents: Schema.BigInt
}, { indexes: ["firstBlock"] })

/** One holder's balance of one token: `<token>-<holder>`. The zero address is not a holder. */
export const Balance = Entity.make("Balance", {
  id: Schema.String,
  token: Entity.Address,
  holder: Entity.Address,
  balance: Schema.BigInt
}, { references: { token: "Token" } })

/** One Transfer event: `<chainId>-<block>-<logIndex>`. `sender` sent the transaction (a spender's transferFrom moves another's tokens). */
export const Transfer = Entity.make("Transfer", {
  id: Schema.String,
  token: Entity.Address,
  from: Entity.Address,
  to: Entity.Address,
  value: Schema.BigInt,
  sender: Entity.Address,
  blockNumber: Schema.Int,
  /** null on a chain before London. */
  baseFeePerGas: Schema.NullOr(Schema.BigInt)
}, { references: { token: "Token" } })

/**
 * A token's totalSupply() at a block, read from the contract: `<token>-<block>`. null when the call reverts (a
 * contract emitting the Transfer event without an ERC20 totalSupply). `fromEvents` is the supply the events gave by then.
 */
export const SupplySnapshot = Entity.make("SupplySnapshot", {
  id: Schema.String,
  token: Entity.Address,
  blockNumber: Schema.Int,
  totalSupply: Schema.NullOr(Schema.BigInt),
  fromEvents: Schema.BigInt
}, { references: { token: "Token" } })

const ZERO = "0x0000000000000000000000000000000000000000"
const rpcUrl = process.env.RPC_URL
if (rpcUrl === undefined) {
  throw new Error("examples/tokens indexes a real chain: set RPC_URL (optional: CHAIN_ID, START_BLOCK, END_BLOCK); `npm run demo:tokens` starts one")
}
const chainId = Number(process.env.CHAIN_ID ?? 31337)

export default Indexer.make({
  entities: [Token, Balance, Transfer, SupplySnapshot],
  chains: [{
    id: chainId,
    source: RpcSource.source({ url: Redacted.make(rpcUrl) }),
    startBlock: Number(process.env.START_BLOCK ?? 0),
    ...(process.env.END_BLOCK === undefined ? {} : { endBlock: Number(process.env.END_BLOCK) }),
    contracts: [{
      name: "ERC20",
      abi: erc20Abi,
      // No address: the Transfer events of every contract of the chain.
      wildcard: true,
      fields: { transaction: ["from"] },
      events: { Transfer: { fields: { block: ["baseFeePerGas"] } } }
    }],
    onBlock: [{ name: "supply", interval: 7 }]
  }],
  handlers: {
    ERC20: {
      Transfer: (event, ctx) =>
        Effect.gen(function*() {
          const { from, to, value } = event.params
          const token = event.srcAddress
          for (const [holder, delta] of [[from, -value], [to, value]] as const) {
            if (holder === ZERO) continue
            const id = `${token}-${holder}`
            // Read after the previous write: a transfer to oneself nets to zero.
            const row = yield* ctx.Balance.get(id)
            yield* ctx.Balance.set({ id, token, holder, balance: (row?.balance ?? 0n) + delta })
          }
          const seen = yield* ctx.Token.get(token)
          const minted = from === ZERO ? value : 0n
          const burnt = to === ZERO ? value : 0n
          yield* ctx.Token.set({
            id: token,
            firstBlock: seen?.firstBlock ?? event.block.number,
            transfers: (seen?.transfers ?? 0) + 1,
            supplyFromEvents: (seen?.supplyFromEvents ?? 0n) + minted - burnt
          })
          yield* ctx.Transfer.set({
            id: `${event.chainId}-${event.block.number}-${event.logIndex}`,
            token,
            from,
            to,
            value,
            sender: event.transaction.from,
            blockNumber: event.block.number,
            baseFeePerGas: event.block.baseFeePerGas
          })
        })
    }
  },
  blockHandlers: {
    // Runs after the block's events, so a token first seen in this block is listed too.
    supply: (block, ctx) =>
      Effect.gen(function*() {
        const { number } = block.block
        const tokens = yield* ctx.Token.getWhere("firstBlock", "lt", number + 1)
        for (const token of tokens) {
          const totalSupply = yield* ctx.readContract({ address: token.id as `0x${string}`, abi: totalSupplyAbi, functionName: "totalSupply" }).pipe(
            Effect.catchTag("ContractReadError", () => Effect.succeed(null))
          )
          yield* ctx.SupplySnapshot.set({ id: `${token.id}-${number}`, token: token.id, blockNumber: number, totalSupply, fromEvents: token.supplyFromEvents })
        }
      })
  }
})
