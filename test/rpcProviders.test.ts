// Hosted-provider behaviour between chainstore and a real anvil chain (test/support/rpcProvider.ts): each fault alone
// and all at once, outages, failover between endpoints and start-up failures. Every run ends with the indexed rows
// equal to the chain, read from anvil directly: each log's row with its block's hash and timestamp, each balance,
// and the hash of every checkpoint written. Heavier seeds with CHAINSTORE_LONG_TESTS=1.
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Fiber, Layer, Metric, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Address, decodeEventLog, type Hex } from "viem"
import { Config, Entity, type Event, Indexer, Metrics, Processor, RpcSource, Runtime, type Source, Storage } from "@chainstore/core"
import { tokenAbi } from "../contracts/artifacts.js"
import { type Anvil, deployToken, head, makeTransfers, mine, receiptOf, startAnvil } from "./support/anvil.js"
import { allFaults, type Faults, type Provider, startProvider, type Stats } from "./support/rpcProvider.js"
import { buildUniswapChain, byId, diffTables, type LpBalanceRow, type PairRow, readChain } from "./support/uniswap.js"
import { cli, dropSchema, freePort, metrics, postgresUrl, query, root, start, waitFor } from "./support/cli.js"

const LONG = process.env.CHAINSTORE_LONG_TESTS === "1"
const ZERO = "0x0000000000000000000000000000000000000000"
const SUPPLY = 10n ** 24n

const Balance = Entity.make("Balance", { id: Schema.String, amount: Schema.BigInt })
const LogRow = Entity.make("LogRow", {
  id: Schema.String,
  event: Schema.String,
  token: Schema.String,
  blockNumber: Schema.Int,
  blockHash: Schema.String,
  blockTimestamp: Schema.Int,
  transactionHash: Schema.String,
  a: Schema.String,
  b: Schema.String,
  value: Schema.BigInt
})

let anvil: Anvil
/** Token A: sprays of 25 transfers, one per block, in groups of 6 with empty blocks between, then a few approvals. */
let tokenA: { readonly address: Address; readonly block: number; readonly end: number }
const providers: Array<Provider> = []

beforeAll(async () => {
  anvil = await startAnvil()
  const deployed = await deployToken(anvil, { name: "A", symbol: "A", supply: SUPPLY })
  for (let i = 0; i < 4; i++) {
    await makeTransfers(anvil, deployed.address, { count: 150, accounts: 30, perTx: 25, seed: i * 1000 })
    await mine(anvil, 3)
  }
  for (let i = 0; i < 3; i++) {
    await receiptOf(anvil, await anvil.walletClient.writeContract({ address: deployed.address, abi: tokenAbi, functionName: "approve", args: [`0x${"0b".repeat(19)}${i}${i}`, BigInt(i + 1)] }))
  }
  await mine(anvil, 2)
  tokenA = { ...deployed, end: await head(anvil) }
})

afterAll(async () => {
  for (const p of providers) await p.close()
  await anvil?.stop()
})

const provider = async (faults: Faults = {}, seed = 1): Promise<Provider> => {
  const p = await startProvider(anvil.url, { faults, seed })
  providers.push(p)
  return p
}

const fault = (stats: Stats, name: string): number => stats.faults.get(name) ?? 0

/** The row of one Transfer (a: from, b: to) or Approval (a: owner, b: spender) log, with its block's hash and timestamp. */
const logRow = (event: Event.Event<unknown>, a: string, b: string, value: bigint): Entity.Type<typeof LogRow> => ({
  id: `${event.blockNumber}-${event.logIndex}`,
  event: event.eventName,
  token: event.srcAddress,
  blockNumber: event.blockNumber,
  blockHash: event.blockHash,
  blockTimestamp: event.blockTimestamp,
  transactionHash: event.transactionHash,
  a,
  b,
  value
})

/** The test indexer: a row per Transfer and Approval log, and balances. */
const indexer = (source: Source.Source, tokens: ReadonlyArray<Address>, startBlock: number, endBlock: number) =>
  Indexer.make({
    entities: [Balance, LogRow],
    chains: [{ id: anvil.chainId, source, startBlock, endBlock, contracts: [{ name: "Token", abi: tokenAbi, address: tokens }] }],
    handlers: {
      Token: {
        Transfer: (event, ctx) =>
          Effect.gen(function*() {
            const { from, to, value } = event.params
            yield* ctx.LogRow.set(logRow(event, from, to, value))
            for (const [holder, delta] of [[from, -value], [to, value]] as const) {
              if (holder === ZERO) continue
              const id = `${event.srcAddress}-${holder}`
              const row = yield* ctx.Balance.get(id)
              yield* ctx.Balance.set({ id, amount: (row?.amount ?? 0n) + delta })
            }
          }),
        Approval: (event, ctx) => ctx.LogRow.set(logRow(event, event.params.owner, event.params.spender, event.params.value))
      }
    }
  })

type SourceOptions = Omit<RpcSource.Options, "url" | "urls">
const quick: SourceOptions = { retryBase: "20 millis", maxBackoff: "400 millis", initialRange: 50, requestTimeout: "10 seconds", outageBudget: "60 seconds" }

const config = Config.layer({ batchSize: 300 })
const runWith = <A, E>(effect: Effect.Effect<A, E, Storage.Storage | Storage.MemoryStorage>, storage = Layer.fresh(Storage.layerMemory)) =>
  Effect.runPromise(effect.pipe(Effect.provide(storage), Effect.provide(config)))

// --- the chain as anvil serves it directly ------------------------------------------------------------------------

const blocks = new Map<number, { readonly hash: string; readonly timestamp: number }>()
const blockOf = async (n: number) => {
  let known = blocks.get(n)
  if (known === undefined) {
    const block = await anvil.publicClient.getBlock({ blockNumber: BigInt(n) })
    blocks.set(n, (known = { hash: block.hash, timestamp: Number(block.timestamp) }))
  }
  return known
}

interface Indexed {
  readonly logRows: ReadonlyMap<string, unknown>
  readonly balances: ReadonlyMap<string, unknown>
  readonly writes: ReadonlyArray<Storage.WritePlan>
}

const indexed = Effect.gen(function*() {
  const memory = yield* Storage.MemoryStorage
  return { logRows: yield* memory.rows("LogRow"), balances: yield* memory.rows("Balance"), writes: yield* memory.writes } satisfies Indexed
})

/** Rows equal the chain: one per log with its block's hash and timestamp, balances summed from the logs, checkpoint hashes. */
const expectEqualsChain = async (got: Indexed, tokens: ReadonlyArray<Address>, fromBlock: number, toBlock: number) => {
  const logs = await anvil.publicClient.getLogs({ address: [...tokens], fromBlock: BigInt(fromBlock), toBlock: BigInt(toBlock) })
  const expected = new Map<string, unknown>()
  const balances = new Map<string, bigint>()
  for (const log of logs) {
    const decoded = decodeEventLog({ abi: tokenAbi, data: log.data, topics: log.topics as [Hex, ...Array<Hex>] })
    const block = await blockOf(Number(log.blockNumber))
    const args = decoded.args as { readonly from?: string; readonly to?: string; readonly owner?: string; readonly spender?: string; readonly value: bigint }
    const id = `${Number(log.blockNumber)}-${log.logIndex}`
    expected.set(id, {
      id,
      event: decoded.eventName,
      token: log.address.toLowerCase(),
      blockNumber: Number(log.blockNumber),
      blockHash: block.hash,
      blockTimestamp: block.timestamp,
      transactionHash: log.transactionHash,
      a: (args.from ?? args.owner)!.toLowerCase(),
      b: (args.to ?? args.spender)!.toLowerCase(),
      value: args.value
    })
    if (decoded.eventName === "Transfer") {
      for (const [holder, delta] of [[args.from!, -args.value], [args.to!, args.value]] as const) {
        if (holder === ZERO) continue
        const key = `${log.address.toLowerCase()}-${holder.toLowerCase()}`
        balances.set(key, (balances.get(key) ?? 0n) + delta)
      }
    }
  }
  expect(logs.length).toBeGreaterThan(0)
  expect(new Map([...got.logRows].sort(([a], [b]) => a.localeCompare(b)))).toEqual(new Map([...expected].sort(([a], [b]) => a.localeCompare(b))))
  expect(new Map([...got.balances].map(([id, row]) => [id, (row as { amount: bigint }).amount]))).toEqual(balances)
  let checkpoints = 0
  for (const write of got.writes) {
    for (const [i, n] of write.batch.checkpointBlockNumbers.entries()) {
      expect(write.batch.checkpointBlockHashes[i], `checkpoint of block ${n}`).toBe((await blockOf(n)).hash)
      checkpoints++
    }
  }
  expect(checkpoints).toBeGreaterThan(0)
}

const indexA = (source: Source.Source, storage?: Layer.Layer<Storage.Storage | Storage.MemoryStorage>) =>
  runWith(Effect.andThen(Runtime.run(indexer(source, [tokenA.address], tokenA.block, tokenA.end)), indexed), storage)

// --- each behaviour alone -----------------------------------------------------------------------------------------

const behaviours: ReadonlyArray<{ readonly name: string; readonly faults: Faults; readonly options?: SourceOptions; readonly check: (s: Stats) => void }> = [
  {
    name: "logs without blockTimestamp: timestamps from the blocks' headers",
    faults: { noTimestamps: true },
    check: (s) => expect(s.calls.get("eth_getBlockByNumber") ?? 0).toBeGreaterThan(0)
  },
  {
    name: "an eth_getLogs range cap (Alchemy's -32600 naming a range that works) shrinks the range",
    faults: { rangeCap: 4 },
    check: (s) => {
      expect(fault(s, "rangeCap")).toBeGreaterThan(0)
      expect(s.widestLogs).toBeLessThanOrEqual(4)
    }
  },
  {
    name: "a result cap (-32005 query returned more than N results) shrinks the range",
    faults: { resultCap: 60 },
    check: (s) => expect(fault(s, "resultCap")).toBeGreaterThan(0)
  },
  {
    name: "CDN HTML 503 pages, dropped connections and cut-off JSON are retried",
    faults: { html503: 0.3, drop: 0.3, malformed: 0.3 },
    check: (s) => expect([fault(s, "html503"), fault(s, "drop"), fault(s, "malformed")].every((n) => n > 0)).toBe(true)
  },
  {
    name: "requests that hang 40 s (header batches, eth_blockNumber) time out and are retried, not taken as 'too large'",
    faults: { noTimestamps: true, hang: 0.25, hangMs: 40_000 },
    options: { ...quick, requestTimeout: "400 millis" },
    check: (s) => expect(fault(s, "hang")).toBeGreaterThan(0)
  },
  {
    name: "a batch larger than allowed (one error object back) is split and the limit learned",
    faults: { noTimestamps: true, maxBatch: 3 },
    check: (s) => {
      expect(fault(s, "maxBatch")).toBeGreaterThan(0)
      // Learned: a few refusals, not one per batch.
      expect(fault(s, "maxBatch")).toBeLessThanOrEqual(6)
    }
  },
  {
    name: "a batch larger than allowed (HTTP 413) is split",
    faults: { noTimestamps: true, maxBatch: 4, batchRefusal: "http-413" },
    check: (s) => expect(fault(s, "maxBatch")).toBeGreaterThan(0)
  },
  {
    name: "a batch larger than allowed (one error with id null inside an array) is split",
    faults: { noTimestamps: true, maxBatch: 5, batchRefusal: "error-array" },
    check: (s) => expect(fault(s, "maxBatch")).toBeGreaterThan(0)
  },
  {
    name: "HTTP 429 (also on header batches) waits as Retry-After says and sends the same request again",
    faults: { noTimestamps: true, http429: 0.25, retryAfter: 0 },
    check: (s) => expect(fault(s, "http429")).toBeGreaterThan(0)
  },
  {
    name: "Infura's rate-limit body (-32005 project ID request rate exceeded, backoff_seconds) waits and retries",
    faults: { noTimestamps: true, infuraRateLimit: 0.2, backoffSeconds: 0.05 },
    check: (s) => expect(fault(s, "infuraRateLimit")).toBeGreaterThan(0)
  },
  {
    name: "per-item 429s inside a batch reply are fetched again item by item, never skipped",
    faults: { noTimestamps: true, itemRateLimit: 0.25 },
    check: (s) => expect(fault(s, "itemRateLimit")).toBeGreaterThan(0)
  },
  {
    name: "null blocks (a node behind the load balancer) are fetched again, never defaulted",
    faults: { noTimestamps: true, nullBlock: 0.25 },
    check: (s) => expect(fault(s, "nullBlock")).toBeGreaterThan(0)
  },
  {
    name: "another block than the one asked for, short batches and reordered replies are fetched again",
    faults: { noTimestamps: true, wrongBlock: 0.15, dropItem: 0.15, reorder: true },
    check: (s) => expect(fault(s, "wrongBlock") * fault(s, "dropItem")).toBeGreaterThan(0)
  },
  {
    name: "a header whose hash disagrees with the logs of its block: fetched again (or rolled back as a reorg)",
    faults: { noTimestamps: true, wrongHash: 0.3 },
    check: (s) => expect(fault(s, "wrongHash")).toBeGreaterThan(0)
  },
  {
    name: "eth_getLogs answering none near the head (a lagging node): blocks whose logsBloom holds ours are asked by hash",
    faults: { lagLogs: 1, lagBlocks: 25, unknownBlockHash: 0.3 },
    check: (s) => expect(fault(s, "lagLogs")).toBeGreaterThan(0)
  }
]

describe("an RPC provider's faults, each alone: the indexed rows equal the chain", () => {
  for (const b of behaviours) {
    it(b.name, async () => {
      const p = await provider(b.faults)
      const got = await indexA(RpcSource.source({ ...(b.options ?? quick), url: p.url }))
      await expectEqualsChain(got, [tokenA.address], tokenA.block, tokenA.end)
      b.check(p.stats)
    })
  }
})

describe("every fault at once", () => {
  for (const seed of LONG ? Array.from({ length: 24 }, (_, i) => i + 1) : [1, 2, 3, 4]) {
    it(`seed ${seed}: the indexed rows equal the chain`, async () => {
      const p = await provider(allFaults, seed)
      const got = await indexA(RpcSource.source({ ...quick, url: p.url, requestTimeout: "400 millis", maxBatch: 20 }))
      await expectEqualsChain(got, [tokenA.address], tokenA.block, tokenA.end)
      // Several kinds of fault hit the run.
      expect(p.stats.faults.size).toBeGreaterThanOrEqual(4)
    })
  }
})

// --- outages ------------------------------------------------------------------------------------------------------

const gauge = (metric: Metric.Metric<number, Metric.GaugeState<number>>) =>
  Effect.runSync(Metric.value(Metric.withAttributes(metric, { chain: String(anvil.chainId) }))).value

/** Polls `effect` until `predicate` holds (a condition, not an ordering sleep). */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, predicate: (a: A) => boolean, timeoutMs = 20_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const value = yield* effect
      if (predicate(value)) return value
      if (Date.now() > deadline) return yield* Effect.die(new Error("condition not met in time"))
      yield* Effect.sleep("20 millis")
    }
  })

describe("outages", () => {
  it("an outage longer than the retry base is waited out: the RPC shows as unavailable, what is processed is committed, rows equal the chain", async () => {
    const p = await provider({ noTimestamps: true })
    const source = RpcSource.source({ ...quick, url: p.url, initialRange: 3, retryBase: "50 millis", maxBackoff: "300 millis" })
    const got = await runWith(Effect.gen(function*() {
      const processor = yield* Processor.Processor
      const memory = yield* Storage.MemoryStorage
      const run = yield* Effect.forkChild(processor.run)
      // Down once something is processed and written.
      yield* memory.awaitWrites(1)
      p.setOutage(true)
      yield* Effect.promise(() => p.waitFor((s) => fault(s, "outage") >= 8))
      expect(gauge(Metrics.rpcUnavailable)).toBe(1)
      expect(gauge(Metrics.rpcUnavailableSince)).toBeGreaterThan(0)
      // While the endpoint is down, everything processed gets written.
      const processed = (yield* processor.chains)[0]!.processedBlock
      yield* eventually(memory.writes, (writes) => writes.some((w) => w.batch.progress.some((c) => c.progressBlock >= processed)))
      p.setOutage(false)
      yield* Fiber.join(run)
      expect(gauge(Metrics.rpcUnavailable)).toBe(0)
      return yield* indexed
    }).pipe(Effect.provide(Runtime.layer(indexer(source, [tokenA.address], tokenA.block, tokenA.end)))))
    await expectEqualsChain(got, [tokenA.address], tokenA.block, tokenA.end)
    expect(fault(p.stats, "outage")).toBeGreaterThanOrEqual(8)
  })

  it("an outage past the budget ends the run with one clear line; a rerun resumes and ends equal to the chain", async () => {
    const p = await provider({ noTimestamps: true })
    const secret = `${p.url}/v3/KEY-0123456789abcdef`
    const storage = Layer.fresh(Storage.layerMemory)
    const failure = await runWith(Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(Runtime.run(indexer(RpcSource.source({ ...quick, url: secret, initialRange: 3, outageBudget: "1500 millis" }), [tokenA.address], tokenA.block, tokenA.end)))
      yield* Effect.promise(() => p.waitFor((s) => (s.calls.get("eth_getLogs") ?? 0) >= 4))
      p.setOutage(true)
      const started = Date.now()
      const error = yield* Effect.flip(Fiber.join(fiber))
      return { error, seconds: (Date.now() - started) / 1000 }
    }), storage)
    expect(failure.error._tag).toBe("SourceError")
    expect(failure.error.message).toMatch(
      /^RPC http:\/\/127\.0\.0\.1:\d+: eth_\w+ failed after \d+ attempts: HTTP 503 \(HTML page "503 Service Temporarily Unavailable"\) \(failing for \d+\.\ds, since [^)]*\); a rerun resumes from the last committed block$/
    )
    expect(failure.error.message).not.toContain("KEY-0123456789abcdef")
    expect(failure.seconds).toBeGreaterThanOrEqual(1.5)
    expect(failure.seconds).toBeLessThan(10)
    p.setOutage(false)
    const got = await indexA(RpcSource.source({ ...quick, url: secret }), storage)
    await expectEqualsChain(got, [tokenA.address], tokenA.block, tokenA.end)
  })
})

// --- several endpoints --------------------------------------------------------------------------------------------

describe("several endpoints per chain", () => {
  it("fails over to the second while the first is down, and comes back to the first once it recovers", async () => {
    const first = await provider({ noTimestamps: true })
    // A slow second endpoint: the run is still going when the first comes back.
    const second = await provider({ noTimestamps: true, delayMs: 100 })
    const source = RpcSource.source({ ...quick, urls: [first.url, second.url], initialRange: 2, maxRange: 2, retryBase: "50 millis", maxBackoff: "200 millis" })
    let firstAtRecovery = 0
    const got = await runWith(Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(Runtime.run(indexer(source, [tokenA.address], tokenA.block, tokenA.end)))
      yield* Effect.promise(() => first.waitFor((s) => (s.calls.get("eth_getLogs") ?? 0) >= 3))
      first.setOutage(true)
      yield* Effect.promise(() => second.waitFor((s) => (s.calls.get("eth_getLogs") ?? 0) >= 3))
      first.setOutage(false)
      firstAtRecovery = first.stats.calls.get("eth_getLogs") ?? 0
      yield* Fiber.join(fiber)
      return yield* indexed
    }))
    await expectEqualsChain(got, [tokenA.address], tokenA.block, tokenA.end)
    expect(fault(first.stats, "outage")).toBeGreaterThan(0)
    expect(first.stats.calls.get("eth_getLogs") ?? 0).toBeGreaterThan(firstAtRecovery + 2)
  })

  it("fails over when the first endpoint lags (null blocks)", async () => {
    const first = await provider({ noTimestamps: true, nullBlock: 1 })
    const second = await provider({ noTimestamps: true })
    const got = await indexA(RpcSource.source({ ...quick, urls: [first.url, second.url] }))
    await expectEqualsChain(got, [tokenA.address], tokenA.block, tokenA.end)
    expect(fault(first.stats, "nullBlock")).toBeGreaterThan(0)
    expect(second.stats.calls.get("eth_getBlockByNumber") ?? 0).toBeGreaterThan(0)
  })

  it("fails over when the first endpoint rate-limits every request", async () => {
    const first = await provider({ noTimestamps: true })
    const second = await provider({ noTimestamps: true })
    const source = RpcSource.source({ ...quick, urls: [first.url, second.url], initialRange: 2, maxRange: 2 })
    const got = await runWith(Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(Runtime.run(indexer(source, [tokenA.address], tokenA.block, tokenA.end)))
      yield* Effect.promise(() => first.waitFor((s) => (s.calls.get("eth_getLogs") ?? 0) >= 2))
      first.setFaults({ noTimestamps: true, http429: 1, retryAfter: 1 })
      yield* Fiber.join(fiber)
      return yield* indexed
    }))
    await expectEqualsChain(got, [tokenA.address], tokenA.block, tokenA.end)
    expect(fault(first.stats, "http429")).toBeGreaterThan(0)
    expect(second.stats.calls.get("eth_getLogs") ?? 0).toBeGreaterThan(5)
  })
})

// --- start-up -----------------------------------------------------------------------------------------------------

describe("at start-up, a clear error within seconds and nothing written", () => {
  const startup = async (url: string, expected: RegExp) => {
    const started = Date.now()
    const result = await runWith(Effect.gen(function*() {
      const error = yield* Effect.flip(Runtime.run(indexer(RpcSource.source({ ...quick, url, startupBudget: "2 seconds" }), [tokenA.address], tokenA.block, tokenA.end)))
      return { error, writes: (yield* (yield* Storage.MemoryStorage).writes).length }
    }))
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(result.writes).toBe(0)
    expect(result.error.message).toMatch(expected)
    expect(result.error.message).not.toContain("KEY-secret")
    expect(result.error.message.split("\n")).toHaveLength(1)
  }

  it("an unreachable URL", async () => {
    const port = await freePort()
    await startup(`http://127.0.0.1:${port}/KEY-secret`, new RegExp(`^RPC http://127\\.0\\.0\\.1:${port}: eth_blockNumber failed after \\d+ attempts: .*ECONNREFUSED.*at start-up`))
  })

  it("401 and 403", async () => {
    for (const status of [401, 403]) {
      const p = await provider({ status })
      await startup(`${p.url}/KEY-secret`, new RegExp(`^RPC http://127\\.0\\.0\\.1:\\d+: eth_blockNumber failed: HTTP ${status} `))
      expect(p.stats.requests).toBe(1)
    }
  })

  it("a chain id other than the configured one", async () => {
    const p = await provider({ chainId: 1 })
    await startup(p.url, /serves chain 1, but it is configured for chain 31337/)
  })
})

// --- one block past the provider's result cap ---------------------------------------------------------------------

/** Sends `writes` (from the anvil account, consecutive nonces) and mines them into one block. */
const inOneBlock = async (writes: ReadonlyArray<(nonce: number) => Promise<Hex>>): Promise<number> => {
  await anvil.testClient.setAutomine(false)
  try {
    let nonce = await anvil.publicClient.getTransactionCount({ address: anvil.account.address, blockTag: "pending" })
    const hashes: Array<Hex> = []
    for (const write of writes) hashes.push(await write(nonce++))
    await mine(anvil, 1)
    const receipts = await Promise.all(hashes.map((h) => receiptOf(anvil, h)))
    return Number(receipts[0]!.blockNumber)
  } finally {
    await anvil.testClient.setAutomine(true)
  }
}

const spray = (token: Address, n: number, seed: number) => (nonce: number) =>
  anvil.walletClient.writeContract({ address: token, abi: tokenAbi, functionName: "spray", args: [BigInt(n), BigInt(seed), 10n], gas: BigInt(n) * 30_000n + 200_000n, nonce })
const approve = (token: Address, i: number) => (nonce: number) =>
  anvil.walletClient.writeContract({ address: token, abi: tokenAbi, functionName: "approve", args: [`0x${(i + 1).toString(16).padStart(40, "0")}`, 1n], nonce })

describe("one block whose logs pass the provider's result cap", () => {
  it("is fetched split by address, then by topic; rows equal the chain", async () => {
    const b = await deployToken(anvil, { name: "B", symbol: "B", supply: SUPPLY })
    const c = await deployToken(anvil, { name: "C", symbol: "C", supply: SUPPLY })
    const mixed = await inOneBlock([spray(b.address, 40, 1), spray(c.address, 40, 2)])
    const topics = await inOneBlock([spray(b.address, 25, 3), ...Array.from({ length: 25 }, (_, i) => approve(b.address, i))])
    const p = await provider({ resultCap: 45 })
    const got = await runWith(Effect.andThen(Runtime.run(indexer(RpcSource.source({ ...quick, url: p.url }), [b.address, c.address], b.block, topics)), indexed))
    await expectEqualsChain(got, [b.address, c.address], b.block, topics)
    expect(mixed).toBeLessThan(topics)
    expect(fault(p.stats, "resultCap")).toBeGreaterThan(0)
  })

  it("fails naming the block and the cap when one address and topic alone pass it, instead of looping", async () => {
    const d = await deployToken(anvil, { name: "D", symbol: "D", supply: SUPPLY })
    const dense = await inOneBlock([spray(d.address, 60, 4)])
    const p = await provider({ resultCap: 45 })
    const error = await runWith(Effect.flip(Runtime.run(indexer(RpcSource.source({ ...quick, url: p.url }), [d.address], d.block, dense))))
    expect(error.message).toMatch(new RegExp(`the logs of block ${dense} for ${d.address.toLowerCase()} and topic 0x[0-9a-f]{64} exceed the provider's limit of 45 results even alone`))
  })
})

// --- the command line ---------------------------------------------------------------------------------------------

describe("chainstore run", () => {
  it("shows the RPC as unavailable in /metrics during an outage; after the budget, one line and exit 1; a rerun resumes and finishes", async () => {
    const p = await provider({ noTimestamps: true })
    const dir = fs.mkdtempSync(path.join(root, "test/.tmp-rpc-"))
    const schema = `cs_rpc_${Math.random().toString(36).slice(2, 10)}`
    fs.writeFileSync(path.join(dir, "package.json"), `{ "type": "module" }`)
    fs.writeFileSync(path.join(dir, "indexer.ts"), `import { Effect, Schema } from "effect"
import { Entity, Indexer, RpcSource, SimChain } from "@chainstore/core"
const Account = Entity.make("Account", { id: Schema.String, balance: Schema.BigInt })
export default Indexer.make({
  entities: [Account],
  chains: [{
    id: ${anvil.chainId},
    source: RpcSource.source({ url: process.env.RPC_URL!, initialRange: 3, retryBase: "50 millis", maxBackoff: "300 millis", outageBudget: "3 seconds" }),
    startBlock: ${tokenA.block},
    endBlock: ${tokenA.end},
    contracts: [{ name: "Token", abi: SimChain.abi, address: "${tokenA.address.toLowerCase()}" }]
  }],
  handlers: { Token: { Transfer: (event, ctx) => Effect.gen(function*() {
    for (const [id, delta] of [[event.params.from, -event.params.value], [event.params.to, event.params.value]] as const) {
      const row = yield* ctx.Account.get(id)
      yield* ctx.Account.set({ id, balance: (row?.balance ?? 0n) + delta })
    }
  }) } }
})
`)
    try {
      const port = await freePort()
      const args = ["run", path.join(dir, "indexer.ts"), "--db", postgresUrl, "--schema", schema]
      const env = { RPC_URL: `${p.url}/v2/KEY-cli-secret` }
      const running = start([...args, "--metrics-port", String(port)], { cwd: dir, env })
      const exitedEarly = running.done.then((r) => Promise.reject(new Error(`chainstore exited before the outage (${r.code}): ${r.stderr}`)))
      await Promise.race([p.waitFor((s) => (s.calls.get("eth_getLogs") ?? 0) >= 3), exitedEarly])
      p.setOutage(true)
      const text = await waitFor(() => metrics(port), (t) => new RegExp(`chainstore_rpc_unavailable\\{chain="${anvil.chainId}"\\} 1\\b`).test(t), 10_000, 50)
      for (const series of ["chainstore_rpc_requests{", "chainstore_rpc_errors{", "chainstore_rpc_retries{", "chainstore_rpc_latency_ms_bucket{", "chainstore_rpc_logs_range_blocks{", "chainstore_rpc_batch_size{", "chainstore_rpc_unavailable_since_seconds{"]) {
        expect(text, series).toContain(series)
      }
      expect(text).toMatch(/chainstore_rpc_requests\{[^}]*method="eth_getLogs"[^}]*\}/)
      expect(text).toMatch(/chainstore_rpc_errors\{[^}]*class="Transient"[^}]*\}/)
      const failed = await running.done
      expect(failed.code).toBe(1)
      const lines = failed.stderr.split("\n").filter((l) => l.startsWith("chainstore:"))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^chainstore: SourceError: RPC http:\/\/127\.0\.0\.1:\d+: eth_\w+ failed after \d+ attempts: HTTP 503 .*; a rerun resumes from the last committed block$/)
      expect(failed.stdout + failed.stderr).not.toContain("KEY-cli-secret")
      p.setOutage(false)
      const again = await cli([...args, "--metrics-port", "0"], { cwd: dir, env })
      expect(again.code, again.stderr).toBe(0)
      const rows = await query({ _tag: "postgres", schema }, (sql, s) => sql.unsafe<{ id: string; balance: string }>(`select id, balance::text as balance from "${s}".account`))
      const got = await indexA(RpcSource.source({ ...quick, url: anvil.url }))
      const expected = [...got.balances].map(([id, row]) => [id.split("-")[1]!, (row as { amount: bigint }).amount] as const).filter(([, v]) => v !== 0n)
      expect(new Map(rows.map((r) => [r.id, BigInt(r.balance)] as const).filter(([id, v]) => id !== ZERO && v !== 0n))).toEqual(new Map(expected))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
      await dropSchema(schema)
    }
  })
})

/** `faults` with every probability times `factor`. */
const scaled = (faults: Faults, factor: number): Faults =>
  Object.fromEntries(Object.entries(faults).map(([k, v]) => [k, typeof v === "number" && v > 0 && v < 1 ? v * factor : v])) as Faults

describe("examples/uniswap-v2 (pairs registered from PairCreated) through a provider with every fault", () => {
  it("ends with the tables the chain's own getters give", async () => {
    const chainOf = await startAnvil({ chainId: 31339 })
    const schema = `cs_rpc_uni_${Math.random().toString(36).slice(2, 10)}`
    try {
      const uniswap = await buildUniswapChain(chainOf)
      // The example's RpcSource is at its defaults (200 ms first backoff, 30 s request timeout): faults at half the
      // rates of the tests above keep the run short; hangs are left to them.
      const p = await startProvider(chainOf.url, { faults: { ...scaled(allFaults, 0.5), hang: 0 }, seed: 7 })
      providers.push(p)
      const result = await cli(["run", path.join(root, "examples/uniswap-v2"), "--db", postgresUrl, "--schema", schema, "--metrics-port", "0", "--end-block", String(uniswap.endBlock)], {
        cwd: root,
        env: { RPC_URL: p.url, CHAIN_ID: String(chainOf.chainId), UNISWAP_FACTORY: uniswap.factory, START_BLOCK: String(uniswap.factoryBlock) },
        timeoutMs: 100_000
      })
      expect(result.code, result.stderr.slice(-3000)).toBe(0)
      const indexed = await query({ _tag: "postgres", schema }, (sql, s) =>
        Effect.all({
          pairs: sql.unsafe<PairRow>(
            `select id, token0, token1, "index"::int as "index", reserve0::text as reserve0, reserve1::text as reserve1,
              total_supply::text as total_supply, created_at_block::int as created_at_block from "${s}".pair`
          ),
          balances: sql.unsafe<LpBalanceRow>(`select id, pair, holder, balance::text as balance from "${s}".lp_balance`)
        }))
      const expected = await readChain(chainOf, uniswap, uniswap.endBlock)
      expect(diffTables({ pairs: byId(indexed.pairs), balances: byId(indexed.balances) }, expected)).toEqual([])
      expect([...p.stats.faults.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(10)
    } finally {
      await dropSchema(schema)
      await chainOf.stop()
    }
  }, 300_000)
})
