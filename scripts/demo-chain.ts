/**
 * A local chain to index by hand: anvil on 127.0.0.1, a Token with thousands of real transfers, then it waits for Ctrl-C.
 * Usage: npm run demo:chain -- [--port 8545] [--transfers 5000] [--accounts 200]
 */
import { parseArgs } from "node:util"
import { deployToken, head, makeTransfers, mine, serveAnvil } from "../test/support/anvil.js"

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8545" },
    transfers: { type: "string", default: "5000" },
    accounts: { type: "string", default: "200" }
  }
})

const count = (name: keyof typeof values): number => {
  const n = Number(values[name])
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${values[name]}`)
  return n
}

const anvil = await serveAnvil(count("port"))

const started = performance.now()
const token = await deployToken(anvil, { name: "Demo Token", symbol: "DEMO", supply: 10n ** 27n })
const transfers = await makeTransfers(anvil, token.address, { count: count("transfers"), accounts: count("accounts"), perTx: 1_000 })
// Empty blocks after the transfers, so the end of the range is not the block that holds the last event.
await mine(anvil, 5)
const end = await head(anvil)

console.error(
  `anvil ${anvil.url} (chain id ${anvil.chainId}): Token ${token.address} deployed in block ${token.block}, ` +
    `${transfers.logs} transfers in blocks ${transfers.fromBlock}..${transfers.toBlock} (+1 mint), head ${end}, ` +
    `${((performance.now() - started) / 1000).toFixed(1)} s`
)
console.log(`RPC_URL=${anvil.url} TOKEN_ADDRESS=${token.address} START_BLOCK=${token.block} END_BLOCK=${end}`)
console.error("anvil keeps running; Ctrl-C stops it")
