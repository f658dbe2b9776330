// Ponder 0.16.10 side of bench/peers.ts: one ERC20's Transfer events from a local anvil.
// RPC_URL, TOKEN_ADDRESS, START_BLOCK (and CHAIN_ID, default 31337) come from the environment.
import { createConfig } from "ponder"
import { TokenAbi } from "./abis/Token"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is not set`)
  return value
}

export default createConfig({
  chains: { anvil: { id: Number(process.env.CHAIN_ID ?? 31337), rpc: env("RPC_URL"), disableCache: true } },
  contracts: {
    Token: { chain: "anvil", abi: TokenAbi, address: env("TOKEN_ADDRESS") as `0x${string}`, startBlock: Number(env("START_BLOCK")) }
  }
})
