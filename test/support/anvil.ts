/** A real local chain for tests and benchmarks: starts anvil on 127.0.0.1, deploys contracts/Token.sol and Factory.sol, makes real transfers, mines and reorgs. */
import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as net from "node:net"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import {
  type Address,
  type Chain,
  type Hash,
  type Hex,
  type PublicClient,
  type TestClient,
  type Transport,
  type WalletClient,
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  encodeAbiParameters,
  getAddress,
  http,
  keccak256,
  multicall3Abi,
  parseEventLogs,
  slice,
  toHex
} from "viem"
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts"
import { factoryAbi, factoryBytecode, tokenAbi, tokenBytecode } from "../../contracts/artifacts.js"

// The native binary that node_modules/.bin/anvil (a node wrapper) runs: killing the wrapper with SIGKILL would orphan anvil on its port.
export const anvilBin = createRequire(import.meta.url).resolve(
  `@foundry-rs/anvil-${process.platform}-${process.arch === "x64" ? "amd64" : process.arch}/bin/anvil${process.platform === "win32" ? ".exe" : ""}`
)

/** Anvil's default account #0 (funded with 10000 ETH, public test key). */
export const defaultPrivateKey = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

/** High enough that a block holds ~100k real transfers. */
export const blockGasLimit = 3_000_000_000n

/** Upper bound of the gas of one transfer in spray/batchTransfer (measured: ~25.4k to a fresh recipient, ~3.7k to one already paid in the same transaction). */
const gasPerTransfer = 30_000n
const gasBase = 200_000n

export interface Anvil {
  readonly url: string
  readonly chainId: number
  readonly chain: Chain
  readonly account: PrivateKeyAccount
  readonly publicClient: PublicClient<Transport, Chain>
  readonly walletClient: WalletClient<Transport, Chain, PrivateKeyAccount>
  readonly testClient: TestClient<"anvil", Transport, Chain>
  /** Stops anvil (SIGTERM, then SIGKILL after 5 s); safe to call twice. */
  readonly stop: () => Promise<void>
}

export interface AnvilOptions {
  readonly chainId?: number
  /** Seconds between blocks (interval mining); default: one block per transaction (automine). */
  readonly blockTime?: number
  /** Default: a free port. */
  readonly port?: number
}

/** Binds 127.0.0.1:port (0: any) and releases it: the port that was free, or an EADDRINUSE rejection. */
const freePort = (port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const chainIdAt = async (url: string): Promise<number | undefined> => {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(1_000)
    })
    const body = (await response.json()) as { result?: string }
    return body.result === undefined ? undefined : Number(body.result)
  } catch {
    return undefined
  }
}

/** Starts anvil on 127.0.0.1 and resolves once it answers eth_chainId; it is killed on stop() or when this process exits. */
export const startAnvil = async (options: AnvilOptions = {}): Promise<Anvil> => {
  const chainId = options.chainId ?? 31337
  // Anvil failing to bind a taken port would leave whatever listens there answering the readiness check, so the port is checked first;
  // one picked by listening on 0 can still be taken before anvil binds it, so a failed start is retried on a new port.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(options.port ?? 0)
    try {
      return await launch(chainId, port, options.blockTime)
    } catch (error) {
      if (options.port !== undefined || attempt >= 3) throw error
    }
  }
}

// Anvils not stopped yet: killed when this process exits (process.exit included) without calling stop().
const live = new Set<ChildProcess>()
const killLive = () => {
  for (const child of live) child.kill("SIGKILL")
}
// A signal only ends this process when nobody else listens to it: then kill the anvils and let the default effect happen.
const onSignal = (signal: NodeJS.Signals) => {
  if (process.listenerCount(signal) > 1) return
  killLive()
  process.off(signal, onSignal)
  process.kill(process.pid, signal)
}
const guard = (child: ChildProcess) => {
  live.add(child)
  if (!process.listeners("exit").includes(killLive)) process.on("exit", killLive)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) if (!process.listeners(signal).includes(onSignal)) process.on(signal, onSignal)
}

const launch = async (chainId: number, port: number, blockTime: number | undefined): Promise<Anvil> => {
  const args = ["--host", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId), "--gas-limit", String(blockGasLimit), "--silent"]
  if (blockTime !== undefined) args.push("--block-time", String(blockTime))
  const child = spawn(anvilBin, args, { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4_000)))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  let running = true
  void exited.then(() => {
    running = false
    live.delete(child)
  })
  guard(child)

  const stop = async () => {
    if (!running) return
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000)
    await exited
    clearTimeout(timer)
  }

  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 15_000
  for (;;) {
    const answered = await chainIdAt(url)
    if (answered === chainId) break
    if (answered !== undefined || !running || Date.now() > deadline) {
      await stop()
      throw new Error(`anvil did not start on ${url} (answered chain id ${answered}, running ${running}): ${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  const chain = defineChain({
    id: chainId,
    name: "Anvil",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [url] } }
  })
  // Big sprays outgrow viem's defaults: seconds to execute (10 s timeout), receipts and getLogs answers over 10 MB (~630 bytes a log).
  const transport = http(url, { timeout: 300_000, retryCount: 0, maxResponseBodySize: false })
  const account = privateKeyToAccount(defaultPrivateKey)
  // The chain only moves when we make it, so poll often and never serve a cached block number.
  const local = { chain, transport, pollingInterval: 20, cacheTime: 0 }
  return {
    url,
    chainId,
    chain,
    account,
    publicClient: createPublicClient(local),
    walletClient: createWalletClient({ ...local, account }),
    testClient: createTestClient({ ...local, mode: "anvil" }),
    stop
  }
}

/** Starts anvil on `port` for a demo to leave running: Ctrl-C (or SIGTERM) stops it and exits. */
export const serveAnvil = async (port: number): Promise<Anvil> => {
  const anvil = await startAnvil({ port })
  const stop = async () => {
    await anvil.stop()
    process.exit(0)
  }
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
  return anvil
}

export interface Deployed {
  readonly address: Address
  /** Block of the deploying transaction. */
  readonly block: number
}

/** The receipt of a transaction once mined; a reverted one is an error naming its block. */
export const receiptOf = async (anvil: Anvil, hash: Hash) => {
  const receipt = await anvil.publicClient.waitForTransactionReceipt({ hash })
  if (receipt.status !== "success") throw new Error(`transaction ${hash} reverted in block ${receipt.blockNumber}`)
  return receipt
}

/** Deploys Token; the whole supply goes to `holder` (default: the anvil account). */
export const deployToken = async (
  anvil: Anvil,
  options: { readonly name: string; readonly symbol: string; readonly supply: bigint; readonly holder?: Address }
): Promise<Deployed> => {
  const hash = await anvil.walletClient.deployContract({
    abi: tokenAbi,
    bytecode: tokenBytecode,
    args: [options.name, options.symbol, options.supply, options.holder ?? anvil.account.address]
  })
  const receipt = await receiptOf(anvil, hash)
  return { address: receipt.contractAddress!, block: Number(receipt.blockNumber) }
}

export const deployFactory = async (anvil: Anvil): Promise<Deployed> => {
  const hash = await anvil.walletClient.deployContract({ abi: factoryAbi, bytecode: factoryBytecode })
  const receipt = await receiptOf(anvil, hash)
  return { address: receipt.contractAddress!, block: Number(receipt.blockNumber) }
}

/** Creates a child Token through the factory (supply minted to the anvil account); its address comes from the TokenCreated log. */
export const createChildToken = async (anvil: Anvil, factory: Address, name: string, symbol: string, supply: bigint): Promise<Deployed> => {
  const hash = await anvil.walletClient.writeContract({ address: factory, abi: factoryAbi, functionName: "createToken", args: [name, symbol, supply] })
  const receipt = await receiptOf(anvil, hash)
  const [created] = parseEventLogs({ abi: factoryAbi, eventName: "TokenCreated", logs: receipt.logs })
  if (created === undefined) throw new Error(`createToken ${hash} emitted no TokenCreated`)
  return { address: created.args.token, block: Number(receipt.blockNumber) }
}

/** Where Multicall3 lives on nearly every chain (and where code looking for it checks). */
export const multicall3Address: Address = "0xcA11bde05977b3631167028862bE2a173976CA11"

export interface Multicall3 extends Deployed {
  /** The canonical address, which holds the runtime code from `block` on. */
  readonly address: Address
  /** Where the creation transaction put it (also working). */
  readonly createdAt: Address
}

/**
 * viem's Multicall3 creation code (viem 2.x, constants/contracts.js). No entry of viem's package.json exports map
 * exports it (the "viem" entry exports multicall3Abi, not the bytecode), so the file is located through the exported
 * "viem/package.json" and imported by its file URL, which the exports map does not restrict.
 */
const multicall3Bytecode = async (): Promise<Hex> => {
  const file = path.join(path.dirname(createRequire(import.meta.url).resolve("viem/package.json")), "_esm", "constants", "contracts.js")
  const { multicall3Bytecode } = (await import(pathToFileURL(file).href)) as { readonly multicall3Bytecode?: unknown }
  if (typeof multicall3Bytecode !== "string" || !/^0x[0-9a-f]+$/i.test(multicall3Bytecode)) throw new Error(`${file} exports no multicall3Bytecode`)
  return multicall3Bytecode as Hex
}

/**
 * Deploys Multicall3 from the anvil account (automine must be on), then copies its runtime code to the canonical
 * address with anvil_setCode. anvil_setCode changes the head block's state without mining: the code is there at the
 * deploying block (the head) and every later one, at both addresses; `block` is that block.
 */
export const deployMulticall3 = async (anvil: Anvil): Promise<Multicall3> => {
  const hash = await anvil.walletClient.deployContract({ abi: multicall3Abi, bytecode: await multicall3Bytecode() })
  const receipt = await receiptOf(anvil, hash)
  const createdAt = receipt.contractAddress!
  const block = Number(receipt.blockNumber)
  const code = await anvil.publicClient.getCode({ address: createdAt })
  if (code === undefined) throw new Error(`Multicall3 creation ${hash} left no code at ${createdAt}`)
  const top = await head(anvil)
  if (top !== block) throw new Error(`Multicall3 deployed in block ${block} but the head is ${top}: the canonical address would get its code later`)
  await anvil.testClient.setCode({ address: multicall3Address, bytecode: code })
  return { address: multicall3Address, createdAt, block }
}

/** The k-th spray recipient, as Token.sprayAccount(k) computes it. */
export const sprayAccount = (k: number): Address =>
  getAddress(slice(keccak256(encodeAbiParameters([{ type: "string" }, { type: "uint256" }], ["chainstore.spray", BigInt(k)])), 12))

/** All `accounts` spray recipients. */
export const sprayAccounts = (accounts: number): Array<Address> => Array.from({ length: accounts }, (_, k) => sprayAccount(k))

export interface Transfers {
  readonly fromBlock: number
  readonly toBlock: number
  readonly transactions: ReadonlyArray<Hash>
  /** Transfer logs in the receipts (one per transfer). */
  readonly logs: number
}

/** Makes `count` real transfers from the anvil account to `sprayAccount(0 .. accounts-1)`, `perTx` (default 1000) per spray transaction; same seed, same transfers. */
export const makeTransfers = async (
  anvil: Anvil,
  token: Address,
  options: { readonly count: number; readonly accounts: number; readonly seed?: number; readonly perTx?: number }
): Promise<Transfers> => {
  const perTx = options.perTx ?? 1_000
  if (options.count < 1 || perTx < 1) throw new Error(`makeTransfers needs count and perTx >= 1, got ${options.count} and ${perTx}`)
  if (BigInt(perTx) * gasPerTransfer + gasBase > blockGasLimit) throw new Error(`perTx ${perTx} does not fit in one block`)
  // Explicit nonces let all transactions be sent before any receipt is awaited.
  let nonce = await anvil.publicClient.getTransactionCount({ address: anvil.account.address, blockTag: "pending" })
  const transactions: Array<Hash> = []
  for (let done = 0; done < options.count; done += perTx) {
    const n = Math.min(perTx, options.count - done)
    transactions.push(
      await anvil.walletClient.writeContract({
        address: token,
        abi: tokenAbi,
        functionName: "spray",
        args: [BigInt(n), BigInt((options.seed ?? 0) + done), BigInt(options.accounts)],
        gas: BigInt(n) * gasPerTransfer + gasBase,
        nonce: nonce++
      })
    )
  }
  return collect(anvil, transactions)
}

/** One batchTransfer transaction from the anvil account. */
export const batchTransfer = async (anvil: Anvil, token: Address, transfers: ReadonlyArray<{ readonly to: Address; readonly value: bigint }>): Promise<Transfers> => {
  const hash = await anvil.walletClient.writeContract({
    address: token,
    abi: tokenAbi,
    functionName: "batchTransfer",
    args: [transfers.map((t) => t.to), transfers.map((t) => t.value)],
    gas: BigInt(transfers.length) * gasPerTransfer + gasBase
  })
  return collect(anvil, [hash])
}

const collect = async (anvil: Anvil, transactions: Array<Hash>): Promise<Transfers> => {
  let fromBlock = Number.POSITIVE_INFINITY
  let toBlock = 0
  let logs = 0
  for (const hash of transactions) {
    const receipt = await receiptOf(anvil, hash)
    fromBlock = Math.min(fromBlock, Number(receipt.blockNumber))
    toBlock = Math.max(toBlock, Number(receipt.blockNumber))
    logs += parseEventLogs({ abi: tokenAbi, eventName: "Transfer", logs: receipt.logs }).length
  }
  return { fromBlock, toBlock, transactions, logs }
}

export const balanceOf = (anvil: Anvil, token: Address, owner: Address): Promise<bigint> =>
  anvil.publicClient.readContract({ address: token, abi: tokenAbi, functionName: "balanceOf", args: [owner] })

export const head = async (anvil: Anvil): Promise<number> => Number(await anvil.publicClient.getBlockNumber())

/** Mines n empty blocks (anvil_mine). */
export const mine = (anvil: Anvil, n: number): Promise<void> => anvil.testClient.mine({ blocks: n })

/** A transaction replayed by anvil_reorg: sent from an anvil dev account (anvil signs it) or raw signed bytes. */
export type ReorgTransaction =
  | { readonly from: Address; readonly to?: Address; readonly data?: Hex; readonly value?: bigint; readonly gas?: bigint; readonly nonce?: number }
  | Hex

/**
 * anvil_reorg on anvil 1.7.1: drops blocks head-depth+1 .. head with their transactions (not returned to the mempool, receipts
 * gone, nonces and balances rolled back) and logs, then mines `depth` new blocks at the same heights and timestamps, the first
 * one a child of the kept block, holding `transactions` at their block offsets (0 = first new block; omitted nonces are filled in).
 * Identical empty blocks would get identical hashes (same timestamps, base fee floored at 7 wei), so the first new block's base
 * fee is bumped by 1 wei: every block from head-depth+1 on gets a new hash. Old hashes are unknown to eth_getBlockByHash/eth_getLogs.
 */
export const reorg = async (anvil: Anvil, depth: number, transactions: ReadonlyArray<readonly [ReorgTransaction, number]> = []): Promise<void> => {
  const top = await head(anvil)
  if (!Number.isInteger(depth) || depth < 1 || depth > top) throw new Error(`reorg depth ${depth} is not within 1 .. head ${top}`)
  const first = await anvil.publicClient.getBlock({ blockNumber: BigInt(top - depth + 1) })
  await anvil.testClient.setNextBlockBaseFeePerGas({ baseFeePerGas: (first.baseFeePerGas ?? 0n) + 1n })
  const params = [
    depth,
    transactions.map(([tx, offset]) => [
      typeof tx === "string"
        ? tx
        : {
            ...tx,
            ...(tx.value === undefined ? {} : { value: toHex(tx.value) }),
            ...(tx.gas === undefined ? {} : { gas: toHex(tx.gas) }),
            ...(tx.nonce === undefined ? {} : { nonce: toHex(tx.nonce) })
          },
      offset
    ])
  ]
  // viem has no typed anvil_reorg, so the request goes through the untyped EIP-1193 entry point.
  await (anvil.testClient.request as (args: { method: string; params: unknown }) => Promise<unknown>)({ method: "anvil_reorg", params })
}

/** evm_snapshot: an id to revert to. */
export const snapshot = (anvil: Anvil): Promise<Hex> => anvil.testClient.snapshot()

/** evm_revert: back to the snapshot's state and head; the snapshot (and later ones) is consumed, a second revert to it fails. */
export const revert = async (anvil: Anvil, id: Hex): Promise<void> => {
  // viem's testClient.revert drops anvil's answer, which is false for an unknown or consumed snapshot.
  const reverted: unknown = await anvil.testClient.request({ method: "evm_revert", params: [id] })
  if (reverted !== true) throw new Error(`evm_revert ${id}: no such snapshot`)
}
