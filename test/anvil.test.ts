/** The local-chain helpers against a real anvil: deploys, real transfers, reorgs, snapshots and factory children. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeFunctionData, isAddressEqual, parseEventLogs } from "viem"
import { factoryAbi, tokenAbi } from "../contracts/artifacts.js"
import {
  type Anvil,
  balanceOf,
  batchTransfer,
  createChildToken,
  deployFactory,
  deployToken,
  head,
  makeTransfers,
  mine,
  reorg,
  revert,
  snapshot,
  sprayAccount,
  sprayAccounts,
  startAnvil
} from "./support/anvil.js"

const supply = 10n ** 24n

describe("anvil helpers", () => {
  let anvil: Anvil
  beforeAll(async () => {
    anvil = await startAnvil({ chainId: 1337 })
  })
  afterAll(() => anvil?.stop())

  it("starts on 127.0.0.1 with the asked chain id", async () => {
    expect(anvil.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(await anvil.publicClient.getChainId()).toBe(1337)
  })

  it("makes real transfers: one Transfer log each, balances sum to the supply", async () => {
    const token = await deployToken(anvil, { name: "Test", symbol: "TST", supply })
    expect(await anvil.publicClient.readContract({ address: token.address, abi: tokenAbi, functionName: "symbol" })).toBe("TST")
    const transfers = await makeTransfers(anvil, token.address, { count: 500, accounts: 40, seed: 7, perTx: 120 })
    expect(transfers.transactions).toHaveLength(5)
    expect(transfers.logs).toBe(500)
    expect(transfers.fromBlock).toBe(token.block + 1)
    expect(transfers.toBlock).toBe(token.block + 5)

    const logs = await anvil.publicClient.getContractEvents({ address: token.address, abi: tokenAbi, eventName: "Transfer", fromBlock: BigInt(token.block) })
    expect(logs).toHaveLength(501)
    expect(logs[0]!.args).toEqual({ from: "0x0000000000000000000000000000000000000000", to: anvil.account.address, value: supply })

    const holders = sprayAccounts(40)
    expect(await anvil.publicClient.readContract({ address: token.address, abi: tokenAbi, functionName: "sprayAccount", args: [39n] })).toBe(holders[39])
    const balances = await Promise.all([anvil.account.address, ...holders].map((owner) => balanceOf(anvil, token.address, owner)))
    expect(balances.reduce((a, b) => a + b, 0n)).toBe(supply)
    // The balances on chain are exactly what replaying the logs gives.
    const replayed = new Map<string, bigint>()
    for (const { args } of logs) {
      replayed.set(args.from!, (replayed.get(args.from!) ?? 0n) - args.value!)
      replayed.set(args.to!, (replayed.get(args.to!) ?? 0n) + args.value!)
    }
    for (const [i, owner] of holders.entries()) expect(replayed.get(owner) ?? 0n).toBe(balances[i + 1])

    // The same seed split differently gives the same transfers.
    const other = await deployToken(anvil, { name: "Other", symbol: "OTH", supply })
    await makeTransfers(anvil, other.address, { count: 500, accounts: 40, seed: 7, perTx: 500 })
    for (const owner of holders.slice(0, 5)) expect(await balanceOf(anvil, other.address, owner)).toBe(await balanceOf(anvil, token.address, owner))
  })

  it("batchTransfer pays each recipient", async () => {
    const token = await deployToken(anvil, { name: "Batch", symbol: "BAT", supply })
    const transfers = await batchTransfer(anvil, token.address, [
      { to: sprayAccount(1), value: 5n },
      { to: sprayAccount(2), value: 7n },
      { to: sprayAccount(1), value: 1n }
    ])
    expect(transfers.logs).toBe(3)
    expect(await balanceOf(anvil, token.address, sprayAccount(1))).toBe(6n)
    expect(await balanceOf(anvil, token.address, sprayAccount(2))).toBe(7n)
  })

  it("reorg replaces the last blocks: new hashes, old transactions and logs gone, replayed transactions in place", async () => {
    const token = await deployToken(anvil, { name: "Reorg", symbol: "RRG", supply })
    const transfers = await makeTransfers(anvil, token.address, { count: 60, accounts: 10, perTx: 20 })
    await mine(anvil, 2)
    const top = await head(anvil)
    expect(top).toBe(transfers.toBlock + 2)
    const before = await Promise.all(Array.from({ length: top + 1 }, (_, n) => anvil.publicClient.getBlock({ blockNumber: BigInt(n) })))

    // Depth 3 drops the last spray's block and the two empty ones; one new spray lands in the middle new block.
    const data = encodeFunctionData({ abi: tokenAbi, functionName: "spray", args: [4n, 1000n, 10n] })
    await reorg(anvil, 3, [[{ from: anvil.account.address, to: token.address, data, gas: 1_000_000n }, 1]])
    expect(await head(anvil)).toBe(top)
    const after = await Promise.all(before.map((b) => anvil.publicClient.getBlock({ blockNumber: b.number })))
    for (const [n, b] of after.entries()) {
      if (n <= top - 3) expect(b.hash).toBe(before[n]!.hash)
      else expect(b.hash).not.toBe(before[n]!.hash)
      if (n > 0) expect(b.parentHash).toBe(after[n - 1]!.hash)
      expect(b.timestamp).toBe(before[n]!.timestamp)
    }
    expect(after.slice(top - 2).map((b) => b.transactions.length)).toEqual([0, 1, 0])

    const logs = await anvil.publicClient.getContractEvents({ address: token.address, abi: tokenAbi, eventName: "Transfer", fromBlock: BigInt(token.block) })
    expect(logs).toHaveLength(1 + 40 + 4)
    expect(logs.filter((l) => l.blockNumber === BigInt(top - 1))).toHaveLength(4)
    await expect(anvil.publicClient.getTransactionReceipt({ hash: transfers.transactions[2]! })).rejects.toThrow()
    const balances = await Promise.all([anvil.account.address, ...sprayAccounts(10)].map((owner) => balanceOf(anvil, token.address, owner)))
    expect(balances.reduce((a, b) => a + b, 0n)).toBe(supply)

    // Empty blocks get new hashes too (anvil alone would mine identical ones once the base fee has floored).
    await mine(anvil, 200)
    const last = await anvil.publicClient.getBlock()
    await reorg(anvil, 1)
    expect((await anvil.publicClient.getBlock()).hash).not.toBe(last.hash)
    await expect(reorg(anvil, (await head(anvil)) + 1)).rejects.toThrow(/not within/)
  })

  it("snapshot and revert restore head and balances", async () => {
    const token = await deployToken(anvil, { name: "Snap", symbol: "SNP", supply })
    const id = await snapshot(anvil)
    const top = await head(anvil)
    await makeTransfers(anvil, token.address, { count: 10, accounts: 3 })
    expect(await balanceOf(anvil, token.address, anvil.account.address)).toBeLessThan(supply)
    await revert(anvil, id)
    expect(await head(anvil)).toBe(top)
    expect(await balanceOf(anvil, token.address, anvil.account.address)).toBe(supply)
    await expect(revert(anvil, id)).rejects.toThrow(/no such snapshot/)
  })

  it("factory children are created with the supply minted to the caller, and transfer", async () => {
    const factory = await deployFactory(anvil)
    const a = await createChildToken(anvil, factory.address, "Alpha", "A", supply)
    const b = await createChildToken(anvil, factory.address, "Beta", "B", 2_000n)
    expect(a.address).not.toBe(b.address)
    expect(b.block).toBe(a.block + 1)

    const created = await anvil.publicClient.getContractEvents({ address: factory.address, abi: factoryAbi, eventName: "TokenCreated", fromBlock: BigInt(factory.block) })
    expect(created.map((l) => [l.args.token, l.args.name])).toEqual([
      [a.address, "Alpha"],
      [b.address, "Beta"]
    ])
    expect(await balanceOf(anvil, b.address, anvil.account.address)).toBe(2_000n)

    const transfers = await makeTransfers(anvil, a.address, { count: 25, accounts: 5 })
    expect(transfers.logs).toBe(25)
    const receipt = await anvil.publicClient.getTransactionReceipt({ hash: transfers.transactions[0]! })
    const logs = parseEventLogs({ abi: tokenAbi, eventName: "Transfer", logs: receipt.logs })
    expect(logs.every((l) => isAddressEqual(l.address, a.address) && l.args.from === anvil.account.address)).toBe(true)
    const balances = await Promise.all([anvil.account.address, ...sprayAccounts(5)].map((owner) => balanceOf(anvil, a.address, owner)))
    expect(balances.reduce((x, y) => x + y, 0n)).toBe(supply)
  })

  it("refuses a port already in use instead of talking to whatever listens there", async () => {
    await expect(startAnvil({ port: Number(new URL(anvil.url).port) })).rejects.toThrow(/EADDRINUSE/)
  })

  it("stop ends anvil", async () => {
    const other = await startAnvil()
    await other.stop()
    await expect(fetch(other.url, { method: "POST", body: "{}" })).rejects.toThrow()
    await other.stop()
  })
})
