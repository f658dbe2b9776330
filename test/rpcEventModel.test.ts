// The RPC source's event model against real anvil chains, compared with viem's own reads of the same chain: wildcard
// events and topic filters on the wire, address lists split into several filters, every selectable block,
// transaction, receipt and log field, block handlers' blocks, and contract reads through Multicall3 (where the chain
// has it, from the block it has it) or plain eth_calls, reverts included; the same fields through a faulty provider.
import * as http from "node:http"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Address, decodeEventLog, encodeErrorResult, encodeFunctionData, getAbiItem, type Hex, multicall3Abi, pad, toEventSelector, toHex } from "viem"
import { RpcSource, type Source } from "@chainstore/core"
import { tokenAbi } from "../contracts/artifacts.js"
import { type Anvil, deployToken, type Deployed, head, makeTransfers, mine, receiptOf, startAnvil } from "./support/anvil.js"
import { allFaults, startProvider } from "./support/rpcProvider.js"

const SUPPLY = 10n ** 24n
const transferEvent = getAbiItem({ abi: tokenAbi, name: "Transfer" })
const transferSelector = toEventSelector(transferEvent)
const approvalSelector = toEventSelector(getAbiItem({ abi: tokenAbi, name: "Approval" }))
const X: Address = "0x00000000000000000000000000000000000a11ce"
const Y: Address = "0x0000000000000000000000000000000000000b0b"
const Z: Address = "0x000000000000000000000000000000000000c0de"
/** A contract that emits an ERC721-style Transfer (same selector as ERC20's, four topics, no data) on any call. */
const NFT: Address = "0x000000000000000000000000000000000000d721"
const MULTICALL3: Address = "0xcA11bde05977b3631167028862bE2a173976CA11"

// viem keeps Multicall3's creation code out of its public entry points; its CommonJS build has it.
const require = createRequire(import.meta.url)
const { multicall3Bytecode } = require(path.join(path.dirname(require.resolve("viem")), "constants", "contracts.js")) as { readonly multicall3Bytecode: Hex }

type Selected = Source.EventInfo["fields"]
const none: Selected = { block: [], transaction: [], log: [] }
const everyField: Selected = {
  block: ["parentHash", "nonce", "sha3Uncles", "logsBloom", "transactionsRoot", "stateRoot", "receiptsRoot", "miner", "difficulty", "extraData", "size", "gasLimit", "gasUsed", "baseFeePerGas", "mixHash"],
  transaction: [
    "from", "to", "value", "input", "index", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "type",
    "status", "gasUsed", "cumulativeGasUsed", "effectiveGasPrice", "contractAddress"
  ],
  log: ["topics", "data"]
}

const tokenContract = (
  name: string,
  addresses: ReadonlyArray<string>,
  events: ReadonlyArray<Source.EventInfo>,
  wildcard = false
): Source.ContractInfo => ({ name, abi: tokenAbi, addresses: addresses.map((a) => a.toLowerCase()), wildcard, events })
const transfer = (fields: Selected = none, topics?: ReadonlyArray<Source.Topics>): Source.EventInfo => ({ name: "Transfer", topics, fields })
const topic = (address: Address): Hex => pad(address.toLowerCase() as Hex, { size: 32 })

type SourceOptions = Omit<RpcSource.Options, "url" | "urls">
const quick: SourceOptions = { retryBase: "10 millis", maxBackoff: "200 millis", initialRange: 20 }

/** `f` with a started source of `chain` at `url`, within a scope. */
const withSource = <A>(url: string, options: SourceOptions, chain: Source.ChainInfo, f: (source: Source.ChainSource) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(RpcSource.source({ ...options, url }).make(chain), f)))

interface Fetched {
  readonly events: Array<Source.FetchResult["events"][number]>
  readonly handlerBlocks: Array<Source.BlockData>
}

/** Everything of [from, to], range after range as the source covers them (prefetching ahead once it knows the head). */
const fetchAll = (source: Source.ChainSource, chain: Source.ChainInfo, from: number, to: number, hashesFrom?: number, prefetch = true) =>
  Effect.gen(function*() {
    if (prefetch) yield* source.head
    const out: Fetched = { events: [], handlerBlocks: [] }
    for (let n = from; n <= to;) {
      const r = yield* source.fetch({ fromBlock: n, toBlock: to, hashesFrom, contracts: chain.contracts, blockHandlers: chain.blockHandlers })
      out.events.push(...r.events)
      out.handlerBlocks.push(...(r.handlerBlocks ?? []))
      n = (r.toBlock ?? to) + 1
    }
    return out
  })

const fetchWith = (url: string, options: SourceOptions, chain: Source.ChainInfo, from: number, to: number, hashesFrom?: number, prefetch = true): Promise<Fetched> =>
  withSource(url, options, chain, (source) => fetchAll(source, chain, from, to, hashesFrom, prefetch))

/** An event's transaction with its selected fields. */
const tx = (event: Fetched["events"][number]) => event.transaction as unknown as Readonly<Record<string, unknown>>

const chainOf = (anvil: Anvil, contracts: ReadonlyArray<Source.ContractInfo>, blockHandlers: ReadonlyArray<Source.BlockHandlerInfo> = []): Source.ChainInfo =>
  ({ chainId: anvil.chainId, contracts, blockHandlers })

const positions = (events: ReadonlyArray<{ readonly blockNumber: number; readonly logIndex: number }>) => events.map((e) => `${e.blockNumber}:${e.logIndex}`)
const logPositions = (logs: ReadonlyArray<{ readonly blockNumber: bigint | null; readonly logIndex: number | null }>) =>
  [...new Set(logs.map((l) => `${l.blockNumber}:${l.logIndex}`))].sort(byPosition)
const byPosition = (a: string, b: string) => {
  const [ab, al] = a.split(":").map(Number)
  const [bb, bl] = b.split(":").map(Number)
  return ab! - bb! || al! - bl!
}

// --- a JSON-RPC proxy that records the calls and may change replies ---------------------------------------------

interface Call {
  readonly id: number
  readonly method: string
  readonly params: ReadonlyArray<unknown>
}
type Reply = { readonly id: number; readonly result?: unknown; readonly error?: unknown }

interface Proxy {
  readonly url: string
  readonly calls: Array<Call>
  readonly close: () => Promise<void>
}

const proxies: Array<Proxy> = []

/** A proxy in front of `upstream` recording every call; `tamper` may replace a call's reply. */
const recordingProxy = async (upstream: string, tamper: (call: Call, reply: Reply) => Reply = (_, r) => r): Promise<Proxy> => {
  const calls: Array<Call> = []
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (d: Buffer) => chunks.push(d))
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Call | Array<Call>
      const list = Array.isArray(body) ? body : [body]
      calls.push(...list)
      fetch(upstream, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(list) })
        .then((r) => r.json() as Promise<Array<Reply>>)
        .then((replies) => {
          const out = list.map((call) => tamper(call, replies.find((r) => r.id === call.id)!))
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(Array.isArray(body) ? out : out[0]))
        })
        .catch((error: unknown) => res.writeHead(502).end(String(error)))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const proxy: Proxy = {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
  proxies.push(proxy)
  return proxy
}

const count = (proxy: Proxy, method: string) => proxy.calls.filter((c) => c.method === method).length

// --- the chains ---------------------------------------------------------------------------------------------------

let anvil: Anvil
/** A second chain, without Multicall3. */
let plain: Anvil
let t1: Deployed
let t2: Deployed
let t3: Deployed
let plainToken: Deployed
/** The block with several transactions (one legacy) and the ERC721-style log. */
let busyBlock: number
/** A block before Multicall3, after every token's deployment. */
let oldBlock: number
/** The first block with Multicall3. */
let multicallFrom: number
let end: number

const transferCall = (token: Address, to: Address, value: bigint, nonce: number, legacy = false) =>
  anvil.walletClient.writeContract({
    address: token,
    abi: tokenAbi,
    functionName: "transfer",
    args: [to, value],
    gas: 100_000n,
    nonce,
    ...(legacy ? { type: "legacy" as const, gasPrice: 3_000_000_000n } : {})
  })

beforeAll(async () => {
  ;[anvil, plain] = await Promise.all([startAnvil(), startAnvil({ chainId: 31338 })])
  t1 = await deployToken(anvil, { name: "T1", symbol: "T1", supply: SUPPLY })
  t2 = await deployToken(anvil, { name: "T2", symbol: "T2", supply: SUPPLY })
  t3 = await deployToken(anvil, { name: "T3", symbol: "T3", supply: SUPPLY })
  await makeTransfers(anvil, t1.address, { count: 60, accounts: 6, perTx: 30 })
  await makeTransfers(anvil, t2.address, { count: 20, accounts: 6, perTx: 20 })
  await mine(anvil, 2)
  // LOG4(0, 0, selector, from, to, tokenId); STOP.
  const word = (h: Hex) => h.slice(2).padStart(64, "0")
  await anvil.testClient.setCode({ address: NFT, bytecode: `0x7f${word(toHex(77))}7f${word(topic(Y))}7f${word(topic(X))}7f${word(transferSelector)}60006000a400` })
  // One block with several transactions: a legacy one, two of one token, the ERC721-style log.
  await anvil.testClient.setAutomine(false)
  let nonce = await anvil.publicClient.getTransactionCount({ address: anvil.account.address, blockTag: "pending" })
  const hashes = [
    await transferCall(t1.address, X, 5n, nonce++, true),
    await transferCall(t2.address, Y, 7n, nonce++),
    await transferCall(t3.address, X, 9n, nonce++),
    await transferCall(t2.address, Z, 1n, nonce++),
    await anvil.walletClient.sendTransaction({ to: NFT, data: "0x", gas: 50_000n, nonce: nonce++ })
  ]
  await mine(anvil, 1)
  await anvil.testClient.setAutomine(true)
  for (const hash of hashes) busyBlock = Number((await receiptOf(anvil, hash)).blockNumber)
  await mine(anvil, 2)
  oldBlock = await head(anvil)
  // Multicall3 at its canonical address from here on: deployed, its code copied there.
  const deployed = await receiptOf(anvil, await anvil.walletClient.deployContract({ abi: multicall3Abi, bytecode: multicall3Bytecode }))
  const code = await anvil.publicClient.getCode({ address: deployed.contractAddress! })
  await anvil.testClient.setCode({ address: MULTICALL3, bytecode: code! })
  await mine(anvil, 1)
  multicallFrom = await head(anvil)
  await makeTransfers(anvil, t3.address, { count: 10, accounts: 3, perTx: 10 })
  await receiptOf(anvil, await transferCall(t1.address, X, 11n, await anvil.publicClient.getTransactionCount({ address: anvil.account.address })))
  await mine(anvil, 2)
  end = await head(anvil)

  plainToken = await deployToken(plain, { name: "P", symbol: "P", supply: SUPPLY })
  await makeTransfers(plain, plainToken.address, { count: 10, accounts: 3, perTx: 10 })
}, 60_000)

afterAll(async () => {
  for (const p of proxies) await p.close()
  await Promise.all([anvil?.stop(), plain?.stop()])
})

describe("RpcSource: events on the wire", () => {
  it("a wildcard event is every Transfer of the chain that decodes as one: equal to eth_getLogs without an address; ERC721-style logs skipped", async () => {
    const proxy = await recordingProxy(anvil.url)
    const chain = chainOf(anvil, [tokenContract("ERC20", [], [transfer()], true)])
    const { events } = await fetchWith(proxy.url, quick, chain, 0, end)
    const all = await anvil.publicClient.getLogs({ event: transferEvent, fromBlock: 0n, toBlock: BigInt(end) })
    // The ERC721-style log is on the wire (same selector) but is not an ERC20 Transfer.
    expect(all.some((l) => l.address.toLowerCase() === NFT && (l.topics as ReadonlyArray<Hex>).length === 4)).toBe(true)
    const erc20 = all.filter((l) => l.topics.length === 3)
    expect(positions(events)).toEqual(logPositions(erc20))
    expect(new Set(events.map((e) => e.srcAddress))).toEqual(new Set([t1.address, t2.address, t3.address].map((a) => a.toLowerCase())))
    for (const [i, e] of events.entries()) {
      const args = decodeEventLog({ abi: tokenAbi, eventName: "Transfer", topics: erc20[i]!.topics, data: erc20[i]!.data }).args
      expect(e.params).toEqual({ from: args.from.toLowerCase(), to: args.to.toLowerCase(), value: args.value })
      expect(e.contractName).toBe("ERC20")
      expect(e.transaction).toEqual({ hash: erc20[i]!.transactionHash })
      expect(e.log).toEqual({})
    }
    // Nothing selected: no transaction or receipt fetched, and the events of a block share one block object.
    expect(count(proxy, "eth_getTransactionByHash") + count(proxy, "eth_getTransactionReceipt") + count(proxy, "eth_getBlockReceipts")).toBe(0)
    const inBusy = events.filter((e) => e.blockNumber === busyBlock)
    expect(inBusy.length).toBe(4)
    expect(new Set(inBusy.map((e) => e.block)).size).toBe(1)
    // Wildcard filters carry no address.
    expect(proxy.calls.filter((c) => c.method === "eth_getLogs").every((c) => (c.params[0] as { address?: unknown }).address === undefined)).toBe(true)
  })

  it("a topic filter (from X, or to Y) fetches what eth_getLogs with those topics answers, over address chunks of 2", async () => {
    const proxy = await recordingProxy(anvil.url)
    const filters: ReadonlyArray<Source.Topics> = [[[transferSelector], [topic(X)]], [[transferSelector], null, [topic(Y)]]]
    const tokens = [t1.address, t2.address, t3.address]
    const chain = chainOf(anvil, [tokenContract("Token", tokens, [transfer(none, filters)])])
    const { events } = await fetchWith(proxy.url, { ...quick, addressesPerFilter: 2 }, chain, 0, end)
    const from = await anvil.publicClient.getLogs({ address: tokens, event: transferEvent, args: { from: X }, fromBlock: 0n, toBlock: BigInt(end) })
    const to = await anvil.publicClient.getLogs({ address: tokens, event: transferEvent, args: { to: Y }, fromBlock: 0n, toBlock: BigInt(end) })
    expect(events.length).toBeGreaterThan(0)
    expect(positions(events)).toEqual(logPositions([...from, ...to]))
    for (const e of events) expect(e.params.from === X || e.params.to === Y).toBe(true)
    // Per OR-branch and per chunk of two addresses: four filters, the topics on the wire.
    const sent = proxy.calls.filter((c) => c.method === "eth_getLogs").map((c) => c.params[0] as { address: ReadonlyArray<string>; topics: ReadonlyArray<unknown> })
    expect(new Set(sent.map((f) => JSON.stringify([f.address, f.topics]))).size).toBe(4)
    expect(sent.every((f) => f.address.length <= 2 && f.topics.length >= 2)).toBe(true)
  })

  it("a topic filter on a wildcard event (to X): any token's logs to X, equal to eth_getLogs with that topic and no address", async () => {
    const filters: ReadonlyArray<Source.Topics> = [[[transferSelector], null, [topic(X)]]]
    const chain = chainOf(anvil, [tokenContract("ERC20", [], [transfer(none, filters)], true)])
    const { events } = await fetchWith(anvil.url, quick, chain, 0, end)
    const expected = (await anvil.publicClient.getLogs({ event: transferEvent, args: { to: X }, fromBlock: 0n, toBlock: BigInt(end) }))
      .filter((l) => (l.topics as ReadonlyArray<Hex>).length === 3)
    expect(new Set(expected.map((l) => l.address)).size).toBe(2)
    expect(positions(events)).toEqual(logPositions(expected))
  })

  it("many addresses go in chunks (here 2 per filter) and give what one eth_getLogs over all of them gives", async () => {
    const proxy = await recordingProxy(anvil.url)
    const strangers = Array.from({ length: 5 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, "0")}`)
    const chain = chainOf(anvil, [tokenContract("Token", [t1.address, ...strangers, t2.address, t3.address], [transfer()])])
    const { events } = await fetchWith(proxy.url, { ...quick, addressesPerFilter: 2 }, chain, 0, end)
    const expected = await anvil.publicClient.getLogs({ address: [t1.address, t2.address, t3.address], event: transferEvent, fromBlock: 0n, toBlock: BigInt(end) })
    expect(positions(events)).toEqual(logPositions(expected))
    const sent = proxy.calls.filter((c) => c.method === "eth_getLogs").map((c) => (c.params[0] as { address: ReadonlyArray<string> }).address)
    expect(Math.max(...sent.map((a) => a.length))).toBe(2)
    expect(new Set(sent.map((a) => a.join())).size).toBe(4)
  })

  it("a block whose logs are too many for one reply is asked by address, then by topic value, and gives the same logs", async () => {
    // A provider that refuses any eth_getLogs with several addresses or several values of a topic.
    const proxy = await recordingProxy(anvil.url, (call, reply) => {
      if (call.method !== "eth_getLogs") return reply
      const filter = call.params[0] as { readonly address?: ReadonlyArray<string>; readonly topics?: ReadonlyArray<ReadonlyArray<string> | null> }
      const wide = (filter.address?.length ?? 0) > 1 || (filter.topics ?? []).some((t) => t !== null && t.length > 1)
      return wide ? { id: call.id, error: { code: -32005, message: "query returned more than 10000 results" } } : reply
    })
    const approvals = { name: "Approval", topics: undefined, fields: none }
    const chain = chainOf(anvil, [
      tokenContract("Token", [t1.address, t2.address], [transfer(), approvals]),
      tokenContract("ERC20", [], [transfer(), approvals], true)
    ])
    const { events } = await fetchWith(proxy.url, { ...quick, initialRange: 1 }, chain, busyBlock, busyBlock)
    const expected = (await anvil.publicClient.getLogs({ event: transferEvent, fromBlock: BigInt(busyBlock), toBlock: BigInt(busyBlock) })).filter((l) => l.topics.length === 3)
    expect(positions(events)).toEqual(logPositions(expected))
    // t1 and t2's logs decode as Token's (their contract), t3's as the wildcard ERC20's.
    expect(events.map((e) => e.contractName)).toEqual(expected.map((l) => (l.address.toLowerCase() === t3.address.toLowerCase() ? "ERC20" : "Token")))
    const answered = proxy.calls.filter((c) => c.method === "eth_getLogs").map((c) => c.params[0] as { address?: ReadonlyArray<string>; topics: ReadonlyArray<ReadonlyArray<string>> })
    expect(answered.some((f) => f.address?.length === 1 && f.topics[0]!.length === 1 && f.topics[0]![0] === approvalSelector)).toBe(true)
    expect(answered.some((f) => f.address === undefined && f.topics[0]!.length === 1)).toBe(true)
  })
})

describe("RpcSource: selected fields", () => {
  const expectFieldsEqualViem = async (events: Fetched["events"]) => {
    const blocks = new Map<number, Awaited<ReturnType<typeof anvil.publicClient.getBlock>>>()
    const logs = await anvil.publicClient.getLogs({ fromBlock: BigInt(events[0]!.blockNumber), toBlock: BigInt(events.at(-1)!.blockNumber) })
    for (const e of events) {
      let block = blocks.get(e.blockNumber)
      if (block === undefined) blocks.set(e.blockNumber, (block = await anvil.publicClient.getBlock({ blockNumber: BigInt(e.blockNumber) })))
      expect(e.block, `block ${e.blockNumber}`).toEqual({
        number: Number(block.number),
        hash: block.hash,
        timestamp: Number(block.timestamp),
        parentHash: block.parentHash,
        nonce: block.nonce,
        sha3Uncles: block.sha3Uncles,
        logsBloom: block.logsBloom,
        transactionsRoot: block.transactionsRoot,
        stateRoot: block.stateRoot,
        receiptsRoot: block.receiptsRoot,
        miner: block.miner.toLowerCase(),
        difficulty: block.difficulty,
        extraData: block.extraData,
        size: block.size,
        gasLimit: block.gasLimit,
        gasUsed: block.gasUsed,
        baseFeePerGas: block.baseFeePerGas ?? null,
        mixHash: block.mixHash
      })
      const hash = e.transactionHash as Hex
      const tx = await anvil.publicClient.getTransaction({ hash })
      const receipt = await anvil.publicClient.getTransactionReceipt({ hash })
      expect(e.transaction, `transaction ${hash}`).toEqual({
        hash,
        from: tx.from.toLowerCase(),
        to: tx.to?.toLowerCase() ?? null,
        value: tx.value,
        input: tx.input,
        index: tx.transactionIndex,
        gas: tx.gas,
        gasPrice: tx.gasPrice ?? null,
        maxFeePerGas: tx.maxFeePerGas ?? null,
        maxPriorityFeePerGas: tx.maxPriorityFeePerGas ?? null,
        nonce: tx.nonce,
        type: Number(tx.typeHex),
        status: receipt.status,
        gasUsed: receipt.gasUsed,
        cumulativeGasUsed: receipt.cumulativeGasUsed,
        effectiveGasPrice: receipt.effectiveGasPrice,
        contractAddress: receipt.contractAddress?.toLowerCase() ?? null
      })
      const log = logs.find((l) => Number(l.blockNumber) === e.blockNumber && l.logIndex === e.logIndex)!
      expect(e.log).toEqual({ topics: log.topics, data: log.data })
    }
  }

  it("every block, transaction, receipt and log field equals viem's getBlock, getTransaction, getTransactionReceipt and getLogs", async () => {
    const proxy = await recordingProxy(anvil.url)
    const chain = chainOf(anvil, [tokenContract("Token", [t1.address, t2.address, t3.address], [transfer(everyField)])])
    const { events } = await fetchWith(proxy.url, quick, chain, t1.block, end, undefined, false)
    expect(events.length).toBe(3 + 60 + 20 + 4 + 10 + 1)
    // Contract creations (to null, a contract address), a legacy transaction (gasPrice, no max fees), EIP-1559 ones.
    expect(events.some((e) => tx(e).to === null && tx(e).contractAddress !== null)).toBe(true)
    expect(events.some((e) => tx(e).type === 0 && tx(e).maxFeePerGas === null)).toBe(true)
    expect(events.some((e) => tx(e).type === 2)).toBe(true)
    await expectFieldsEqualViem(events)
    // Several transactions in a block: the block with its transactions and its receipts at once; one: by hash.
    expect(proxy.calls.some((c) => c.method === "eth_getBlockByNumber" && c.params[0] === toHex(busyBlock) && c.params[1] === true)).toBe(true)
    expect(proxy.calls.filter((c) => c.method === "eth_getBlockReceipts").map((c) => c.params[0])).toEqual([toHex(busyBlock)])
    expect(count(proxy, "eth_getTransactionByHash")).toBeGreaterThan(0)
    expect(count(proxy, "eth_getTransactionReceipt")).toBeGreaterThan(0)
    // The transaction's index alone comes from the log: nothing more fetched.
    const onlyIndex = await recordingProxy(anvil.url)
    const indexed = await fetchWith(onlyIndex.url, quick, chainOf(anvil, [tokenContract("Token", [t2.address], [transfer({ block: [], transaction: ["index"], log: [] })])]), t2.block, end)
    expect(indexed.events.map((e) => tx(e).index)).toEqual(events.filter((e) => e.srcAddress === t2.address.toLowerCase()).map((e) => tx(e).index))
    expect(count(onlyIndex, "eth_getTransactionByHash") + count(onlyIndex, "eth_getTransactionReceipt") + count(onlyIndex, "eth_getBlockReceipts")).toBe(0)
  })

  it("an endpoint without eth_getBlockReceipts: receipts one by one, remembered; fields still equal", async () => {
    const proxy = await recordingProxy(anvil.url, (call, reply) => (call.method === "eth_getBlockReceipts" ? { id: call.id, error: { code: -32601, message: "Method not found" } } : reply))
    const chain = chainOf(anvil, [tokenContract("Token", [t1.address, t2.address, t3.address], [transfer(everyField)])])
    const { events } = await withSource(proxy.url, quick, chain, (source) =>
      Effect.gen(function*() {
        const first = yield* fetchAll(source, chain, busyBlock, busyBlock, undefined, false)
        yield* fetchAll(source, chain, busyBlock, busyBlock, undefined, false)
        return first
      }))
    expect(events.length).toBe(4)
    await expectFieldsEqualViem(events)
    expect(count(proxy, "eth_getBlockReceipts")).toBe(1)
    expect(count(proxy, "eth_getTransactionReceipt")).toBe(8)
  })

  it("a receipt lacking a selected field is fetched again, then an error naming the block, the transaction and the field", async () => {
    const proxy = await recordingProxy(anvil.url, (call, reply) => {
      if (call.method !== "eth_getTransactionReceipt" || typeof reply.result !== "object" || reply.result === null) return reply
      const { effectiveGasPrice: _, ...rest } = reply.result as Record<string, unknown>
      return { ...reply, result: rest }
    })
    const chain = chainOf(anvil, [tokenContract("Token", [t1.address], [transfer({ block: [], transaction: ["effectiveGasPrice"], log: [] })])])
    const error = await withSource(proxy.url, { ...quick, retryBase: "1 millis" }, chain, (source) =>
      Effect.flip(source.fetch({ fromBlock: t1.block, toBlock: t1.block, hashesFrom: undefined, contracts: chain.contracts, blockHandlers: [] })))
    const receipt = await anvil.publicClient.getTransactionReceipt({ hash: (await anvil.publicClient.getBlock({ blockNumber: BigInt(t1.block) })).transactions[0]! })
    expect(error.message).toContain(`block ${t1.block}`)
    expect(error.message).toContain(receipt.transactionHash)
    expect(error.message).toContain("effectiveGasPrice is missing")
    expect(count(proxy, "eth_getTransactionReceipt")).toBe(5)
  })

  it("block handlers' blocks, with the fields they select, equal viem's getBlock; one header per block", async () => {
    const proxy = await recordingProxy(anvil.url)
    const blockHandlers: ReadonlyArray<Source.BlockHandlerInfo> = [
      { name: "every3", startBlock: t1.block + 1, endBlock: end - 2, interval: 3, fields: ["stateRoot", "miner", "gasUsed"] },
      { name: "every5", startBlock: t1.block, endBlock: undefined, interval: 5, fields: ["gasLimit", "baseFeePerGas"] }
    ]
    const chain = chainOf(anvil, [tokenContract("Token", [t1.address], [transfer({ block: ["gasUsed"], transaction: [], log: [] })])], blockHandlers)
    const { events, handlerBlocks } = await fetchWith(proxy.url, quick, chain, t1.block, end, undefined, false)
    const expected = new Set<number>()
    for (let n = t1.block + 1; n <= end - 2; n += 3) expected.add(n)
    for (let n = t1.block; n <= end; n += 5) expected.add(n)
    expect(handlerBlocks.map((b) => b.number)).toEqual([...expected].sort((a, b) => a - b))
    for (const b of handlerBlocks) {
      const block = await anvil.publicClient.getBlock({ blockNumber: BigInt(b.number) })
      expect(b).toEqual({
        number: b.number,
        hash: block.hash,
        timestamp: Number(block.timestamp),
        stateRoot: block.stateRoot,
        miner: block.miner.toLowerCase(),
        gasLimit: block.gasLimit,
        gasUsed: block.gasUsed,
        baseFeePerGas: block.baseFeePerGas
      })
    }
    expect(events.length).toBeGreaterThan(0)
    const headers = proxy.calls.filter((c) => c.method === "eth_getBlockByNumber").map((c) => c.params[0])
    expect(new Set(headers).size).toBe(headers.length)
  })
})

describe("RpcSource: readContracts", () => {
  const erc20 = [...tokenAbi]
  const totalSupply = encodeFunctionData({ abi: erc20, functionName: "totalSupply" })
  const balanceOfX = encodeFunctionData({ abi: erc20, functionName: "balanceOf", args: [X] })
  const overdraw = encodeFunctionData({ abi: erc20, functionName: "transfer", args: [X, 10n ** 30n] })
  const balanceError = encodeErrorResult({ abi: [{ type: "error", name: "Error", inputs: [{ type: "string", name: "message" }] }], errorName: "Error", args: ["balance"] })
  const word = (n: bigint): Hex => pad(toHex(n), { size: 32 })
  const read = (chain: Anvil, address: Address, functionName: "totalSupply" | "balanceOf", blockNumber: number) =>
    functionName === "totalSupply" ?
      chain.publicClient.readContract({ address, abi: tokenAbi, functionName, blockNumber: BigInt(blockNumber) }) :
      chain.publicClient.readContract({ address, abi: tokenAbi, functionName, args: [X], blockNumber: BigInt(blockNumber) })
  const isAggregate3 = (c: Call) => c.method === "eth_call" && (c.params[0] as { to: string }).to === MULTICALL3.toLowerCase()

  it("through Multicall3 where the chain has it, by block hash or number; plain calls before its deployment; reverts as results", async () => {
    const proxy = await recordingProxy(anvil.url)
    const endHash = (await anvil.publicClient.getBlock({ blockNumber: BigInt(end) })).hash
    const calls: ReadonlyArray<Source.ContractCall> = [
      { to: t1.address, data: totalSupply, blockNumber: end, blockHash: undefined },
      { to: t2.address, data: totalSupply, blockNumber: end, blockHash: endHash },
      { to: t1.address, data: balanceOfX, blockNumber: end, blockHash: endHash },
      { to: t1.address, data: overdraw, blockNumber: end, blockHash: endHash },
      { to: t1.address, data: balanceOfX, blockNumber: oldBlock, blockHash: undefined },
      { to: t3.address, data: totalSupply, blockNumber: oldBlock, blockHash: undefined },
      { to: t1.address, data: overdraw, blockNumber: oldBlock, blockHash: undefined }
    ]
    const [results, older] = await withSource(proxy.url, quick, chainOf(anvil, []), (source) =>
      Effect.all([
        source.readContracts!(calls),
        source.readContracts!([
          { to: t1.address, data: balanceOfX, blockNumber: oldBlock - 1, blockHash: undefined },
          { to: t2.address, data: balanceOfX, blockNumber: oldBlock - 1, blockHash: undefined }
        ])
      ]))
    expect(results).toEqual([
      { _tag: "Success", data: word(await read(anvil, t1.address, "totalSupply", end)) },
      { _tag: "Success", data: word(await read(anvil, t2.address, "totalSupply", end)) },
      { _tag: "Success", data: word(await read(anvil, t1.address, "balanceOf", end)) },
      { _tag: "Reverted", data: balanceError },
      { _tag: "Success", data: word(await read(anvil, t1.address, "balanceOf", oldBlock)) },
      { _tag: "Success", data: word(await read(anvil, t3.address, "totalSupply", oldBlock)) },
      { _tag: "Reverted", data: balanceError }
    ])
    expect(await read(anvil, t1.address, "balanceOf", oldBlock)).not.toBe(await read(anvil, t1.address, "balanceOf", end))
    expect(older).toEqual([
      { _tag: "Success", data: word(await read(anvil, t1.address, "balanceOf", oldBlock - 1)) },
      { _tag: "Success", data: word(await read(anvil, t2.address, "balanceOf", oldBlock - 1)) }
    ])
    // Once for the chain: Multicall3 is there. The three calls at the end block's hash in one aggregate3 (EIP-1898), the
    // one by number plain; at the old block aggregate3 answered nothing, so plain calls, and none tried below it again.
    expect(count(proxy, "eth_getCode")).toBe(1)
    const aggregated = proxy.calls.filter(isAggregate3)
    expect(aggregated.map((c) => c.params[1])).toEqual([{ blockHash: endHash }, toHex(oldBlock)])
    expect(multicallFrom).toBeGreaterThan(oldBlock)
    const plainCalls = proxy.calls.filter((c) => c.method === "eth_call" && !isAggregate3(c))
    expect(plainCalls.map((c) => c.params[1])).toEqual([toHex(end), toHex(oldBlock), toHex(oldBlock), toHex(oldBlock), toHex(oldBlock - 1), toHex(oldBlock - 1)])
  })

  it("without Multicall3: plain eth_calls in batches, reverts (with and without revert data) as results", async () => {
    const proxy = await recordingProxy(plain.url)
    const at = await head(plain)
    const calls: ReadonlyArray<Source.ContractCall> = [
      { to: plainToken.address, data: totalSupply, blockNumber: at, blockHash: undefined },
      { to: plainToken.address, data: balanceOfX, blockNumber: plainToken.block, blockHash: undefined },
      { to: plainToken.address, data: overdraw, blockNumber: at, blockHash: undefined },
      { to: plainToken.address, data: "0x", blockNumber: at, blockHash: undefined }
    ]
    const results = await withSource(proxy.url, quick, chainOf(plain, []), (source) => source.readContracts!(calls))
    expect(results).toEqual([
      { _tag: "Success", data: word(await read(plain, plainToken.address, "totalSupply", at)) },
      { _tag: "Success", data: word(await read(plain, plainToken.address, "balanceOf", plainToken.block)) },
      { _tag: "Reverted", data: balanceError },
      { _tag: "Reverted", data: "0x" }
    ])
    expect(proxy.calls.filter(isAggregate3)).toEqual([])
    expect(count(proxy, "eth_call")).toBe(4)
  })
})

describe("RpcSource: through a faulty provider", () => {
  // More seeds with CHAINSTORE_LONG_TESTS=1.
  const seeds = process.env.CHAINSTORE_LONG_TESTS === "1" ? Array.from({ length: 30 }, (_, i) => i + 1) : [11]
  it.each(seeds)("every fault of the table at once (seed %i): the same events, fields and handler blocks as directly", async (seed) => {
    const provider = await startProvider(anvil.url, { faults: allFaults, seed })
    try {
      const chain = chainOf(
        anvil,
        [tokenContract("Token", [t1.address, t2.address], [transfer(everyField)]), tokenContract("ERC20", [], [transfer({ block: ["miner"], transaction: ["status", "from"], log: ["data"] })], true)],
        [{ name: "every4", startBlock: t1.block, endBlock: undefined, interval: 4, fields: ["gasUsed", "parentHash"] }]
      )
      const direct = await fetchWith(anvil.url, quick, chain, t1.block, end, end - 8)
      const faulty = await fetchWith(provider.url, { ...quick, requestTimeout: "400 millis", maxBatch: 20 }, chain, t1.block, end, end - 8)
      expect(faulty.events.length).toBe(direct.events.length)
      expect(faulty.events).toEqual(direct.events)
      expect(faulty.handlerBlocks).toEqual(direct.handlerBlocks)
      expect(new Set(direct.events.map((e) => e.contractName))).toEqual(new Set(["Token", "ERC20"]))
      expect([...provider.stats.faults.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    } finally {
      await provider.close()
    }
  })
})
