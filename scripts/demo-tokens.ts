/**
 * A local chain for examples/tokens: anvil on 127.0.0.1 with Multicall3 at its canonical address, three
 * OpenZeppelin ERC20 presets and an ERC721 preset, ~60 blocks of mints, transfers, transferFroms and burns from
 * several accounts; then it waits for Ctrl-C.
 * Usage: npm run demo:tokens -- [--port 8545] [--seed 1] [--blocks 60]
 */
import { parseArgs } from "node:util"
import { mine, serveAnvil } from "../test/support/anvil.js"
import { buildTokenChain } from "../test/support/openzeppelin.js"

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8545" },
    seed: { type: "string", default: "1" },
    blocks: { type: "string", default: "60" }
  }
})

const integer = (name: keyof typeof values, min: number): number => {
  const n = Number(values[name])
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer of at least ${min}, got ${values[name]}`)
  return n
}

const anvil = await serveAnvil(integer("port", 1))

const started = performance.now()
const chain = await buildTokenChain(anvil, { seed: integer("seed", 0), blocks: integer("blocks", 6) })
// Empty blocks after the activity, so the end of the range is not the block that holds the last event.
await mine(anvil, 5)
const end = chain.toBlock + 5

console.error(
  `anvil ${anvil.url} (chain id ${anvil.chainId}): Multicall3 at ${chain.multicall3.address} from block ${chain.multicall3.block}; ` +
    chain.erc20.map((t) => `${t.symbol} ${t.address} (block ${t.block})`).join(", ") +
    `; ERC721 ${chain.erc721.symbol} ${chain.erc721.address} (block ${chain.erc721.block}); ` +
    `${chain.transactions.length} transactions from ${chain.senders.length} accounts in blocks ${chain.fromBlock + 1}..${chain.toBlock}, head ${end}, ` +
    `${((performance.now() - started) / 1000).toFixed(1)} s`
)
console.log(`RPC_URL=${anvil.url} CHAIN_ID=${anvil.chainId} START_BLOCK=0 END_BLOCK=${end}`)
console.error("anvil keeps running; Ctrl-C stops it")
