/**
 * examples/erc20 as it is, except that with RPC_INITIAL_RANGE set its RpcSource starts at that many blocks per
 * eth_getLogs instead of the default (bench/peers.ts's "chainstore-example-r<N>" variant). Same handlers, entities,
 * effects and chain settings.
 */
import { Redacted } from "effect"
import { RpcSource } from "@chainstore/core"
import example from "../../examples/erc20/indexer.js"

const url = process.env.RPC_URL
const range = process.env.RPC_INITIAL_RANGE

export default url === undefined || range === undefined
  ? example
  : { ...example, chains: example.chains.map((chain) => ({ ...chain, source: RpcSource.source({ url: Redacted.make(url), initialRange: Number(range) }) })) }
