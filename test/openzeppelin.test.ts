/** The OpenZeppelin token chain fixture against a real anvil: what it builds, and that its readers agree with the chain. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeFunctionResult, encodeFunctionData, multicall3Abi } from "viem"
import { erc20PresetMinterPauserAbi } from "../contracts/artifacts.js"
import { type Anvil, multicall3Address, startAnvil } from "./support/anvil.js"
import { type TokenChain, balancesOf, buildTokenChain, senderOf, totalSupplyAt, transferLogs, zeroAddress } from "./support/openzeppelin.js"

describe("OpenZeppelin token chain", () => {
  let anvil: Anvil
  let chain: TokenChain
  beforeAll(async () => {
    anvil = await startAnvil()
    chain = await buildTokenChain(anvil, { seed: 14 })
  })
  afterAll(() => anvil?.stop())

  it("deploys 3 ERC20 presets and 1 ERC721 preset after Multicall3 and spreads ~60 blocks of activity over several senders", () => {
    expect(chain.erc20).toHaveLength(3)
    expect(chain.fromBlock).toBe(chain.multicall3.block)
    expect(chain.toBlock - chain.fromBlock).toBe(60)
    for (const token of [...chain.erc20, chain.erc721]) expect(token.block).toBeGreaterThan(chain.fromBlock)
    // The last ERC20 comes a third of the way in.
    expect(chain.erc20[2]!.block).toBeGreaterThan(chain.erc20[0]!.block + 10)
    const perBlock = [...chain.blockTransactions.values()]
    expect(perBlock).toHaveLength(60)
    expect(perBlock.filter((n) => n >= 3).length).toBeGreaterThan(10)
    expect(perBlock).toContain(0)
    expect(chain.holders).toHaveLength(12)
    expect(chain.senders.length).toBeGreaterThanOrEqual(8)
  })

  it("balances sum to totalSupply per token, at the head and at an older block; supply changes over time", async () => {
    const middle = Math.floor((chain.erc20[2]!.block + chain.toBlock) / 2)
    for (const token of [...chain.erc20, chain.erc721]) {
      for (const block of [middle, chain.toBlock]) {
        const balances = await balancesOf(anvil, token.address, chain.holders, block)
        expect([...balances.values()].reduce((a, b) => a + b, 0n)).toBe(await totalSupplyAt(anvil, token.address, block))
      }
      expect(await totalSupplyAt(anvil, token.address, middle)).not.toBe(await totalSupplyAt(anvil, token.address, chain.toBlock))
    }
  })

  it("wildcard Transfer logs: 4 topics for the ERC721, 3 for the ERC20s; replaying them gives the balances; args filter on topics", async () => {
    const logs = await transferLogs(anvil, { fromBlock: chain.fromBlock, toBlock: chain.toBlock })
    const addresses = new Set(logs.map((log) => log.address))
    expect(addresses).toEqual(new Set([...chain.erc20, chain.erc721].map((t) => t.address)))
    for (const log of logs) {
      expect(log.topics).toHaveLength(log.address === chain.erc721.address ? 4 : 3)
      expect(log.standard).toBe(log.address === chain.erc721.address ? "ERC721" : "ERC20")
    }
    // Mints, burns, transfers and transferFroms all happened.
    expect(logs.some((log) => log.from === zeroAddress && log.standard === "ERC20")).toBe(true)
    expect(logs.some((log) => log.to === zeroAddress && log.standard === "ERC20")).toBe(true)
    expect(logs.some((log) => log.to === zeroAddress && log.standard === "ERC721")).toBe(true)

    for (const token of chain.erc20) {
      const replayed = new Map<string, bigint>()
      for (const log of logs) {
        if (log.address !== token.address || log.standard !== "ERC20") continue
        replayed.set(log.from, (replayed.get(log.from) ?? 0n) - log.value)
        replayed.set(log.to, (replayed.get(log.to) ?? 0n) + log.value)
      }
      const balances = await balancesOf(anvil, token.address, chain.holders)
      for (const holder of chain.holders) expect(replayed.get(holder) ?? 0n).toBe(balances.get(holder))
    }

    const mints = await transferLogs(anvil, { fromBlock: chain.fromBlock, toBlock: chain.toBlock, args: { from: zeroAddress } })
    expect(mints).toEqual(logs.filter((log) => log.from === zeroAddress))
    const ofToken = await transferLogs(anvil, { address: chain.erc20[1]!.address, fromBlock: chain.fromBlock, toBlock: chain.toBlock })
    expect(ofToken).toEqual(logs.filter((log) => log.address === chain.erc20[1]!.address))
  })

  it("transaction senders vary and differ from the Transfer's from when a spender moves an allowance", async () => {
    const logs = await transferLogs(anvil, { address: chain.erc20.map((t) => t.address), fromBlock: chain.fromBlock, toBlock: chain.toBlock })
    const senders = await Promise.all(logs.map((log) => senderOf(anvil, log.transactionHash)))
    expect(new Set(senders).size).toBeGreaterThanOrEqual(8)
    expect(logs.some((log, i) => log.from !== zeroAddress && log.from !== senders[i])).toBe(true)
  })

  it("Multicall3 aggregate3 at the canonical address returns the same totalSupply as a direct call at an old block", async () => {
    const token = chain.erc20[0]!.address
    const old = chain.erc20[0]!.block + 5
    const direct = await totalSupplyAt(anvil, token, old)
    expect(direct).not.toBe(await totalSupplyAt(anvil, token, chain.toBlock))
    const callData = encodeFunctionData({ abi: erc20PresetMinterPauserAbi, functionName: "totalSupply" })
    const { data } = await anvil.publicClient.call({
      to: multicall3Address,
      data: encodeFunctionData({ abi: multicall3Abi, functionName: "aggregate3", args: [[{ target: token, allowFailure: false, callData }]] }),
      blockNumber: BigInt(old)
    })
    const [result] = decodeFunctionResult({ abi: multicall3Abi, functionName: "aggregate3", data: data! })
    expect(result!.success).toBe(true)
    expect(decodeFunctionResult({ abi: erc20PresetMinterPauserAbi, functionName: "totalSupply", data: result!.returnData })).toBe(direct)
    // viem's own multicall (aggregate3 too) finds it there.
    const [viaViem] = await anvil.publicClient.multicall({
      contracts: [{ address: token, abi: erc20PresetMinterPauserAbi, functionName: "totalSupply" }],
      multicallAddress: multicall3Address,
      blockNumber: BigInt(old),
      allowFailure: false
    })
    expect(viaViem).toBe(direct)
  })

  it("is deterministic: the same seed sends the same transactions, another seed others", async () => {
    const build = async (seed: number) => {
      const fresh = await startAnvil()
      try {
        return await buildTokenChain(fresh, { seed, blocks: 15 })
      } finally {
        await fresh.stop()
      }
    }
    const [a, b, c] = await Promise.all([build(3), build(3), build(4)])
    expect(a.transactions).toEqual(b.transactions)
    expect(a.erc20.map((t) => t.address)).toEqual(b.erc20.map((t) => t.address))
    expect(c.transactions).not.toEqual(a.transactions)
  })
})
