// Real chains: the RPC source against anvil (started by the tests on free ports), in-process on the memory storage.
import * as http from "node:http"
import { Effect, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeFunctionData, type Address } from "viem"
import { Config, Entity, type Event, type HandlerContext, Indexer, RpcSource, Runtime, Storage } from "@chainstore/core"
import { factoryAbi, tokenAbi } from "../contracts/artifacts.js"
import {
  type Anvil,
  balanceOf,
  createChildToken,
  deployFactory,
  deployToken,
  head,
  makeTransfers,
  mine,
  reorg,
  sprayAccounts,
  startAnvil
} from "./support/anvil.js"

const ZERO = "0x0000000000000000000000000000000000000000"
const Balance = Entity.make("Balance", { id: Schema.String, token: Schema.String, holder: Schema.String, amount: Schema.BigInt })
const Child = Entity.make("Child", { id: Schema.String, name: Schema.String })

const transferHandler = {
  Transfer: (event: Event.Event<{ readonly from: string; readonly to: string; readonly value: bigint }>, ctx: HandlerContext.Context<readonly [typeof Balance]>) =>
    Effect.gen(function*() {
      const { from, to, value } = event.params
      for (const [holder, delta] of [[from, -value], [to, value]] as const) {
        if (holder === ZERO) continue
        // Chain first: two fresh chains give the first token deployed from one account the same address.
        const id = `${event.chainId}-${event.srcAddress}-${holder}`
        const row = yield* ctx.Balance.get(id)
        yield* ctx.Balance.set({ id, token: event.srcAddress, holder, amount: (row?.amount ?? 0n) + delta })
      }
    })
}

/** Token balances indexed by a chain's RPC source from `startBlock` to `endBlock`. */
const tokenIndexer = (chains: ReadonlyArray<{ readonly id: number; readonly url: string; readonly token: string; readonly startBlock: number; readonly endBlock: number }>) =>
  Indexer.make({
    entities: [Balance],
    chains: chains.map((c) => ({
      id: c.id,
      source: RpcSource.source({ url: c.url, initialRange: 50, retryBase: "20 millis" }),
      startBlock: c.startBlock,
      endBlock: c.endBlock,
      contracts: [{ name: "Token", abi: tokenAbi, address: c.token }]
    })),
    handlers: { Token: transferHandler }
  })

const balances = Effect.gen(function*() {
  const memory = yield* Storage.MemoryStorage
  return new Map([...(yield* memory.rows("Balance"))].map(([id, row]) => [id, (row as { amount: bigint }).amount]))
})

/** Every holder's indexed balance equals balanceOf on the chain, and the balances add up to the supply. */
const expectMatchesChain = async (anvil: Anvil, token: Address, indexed: ReadonlyMap<string, bigint>, holders: ReadonlyArray<Address>, supply: bigint) => {
  let total = 0n
  for (const holder of holders) {
    const onChain = await balanceOf(anvil, token, holder)
    expect(indexed.get(`${anvil.chainId}-${token.toLowerCase()}-${holder.toLowerCase()}`) ?? 0n, holder).toBe(onChain)
    total += onChain
  }
  expect(total).toBe(supply)
  expect([...indexed].filter(([id]) => id.startsWith(`${anvil.chainId}-${token.toLowerCase()}-`)).reduce((s, [, v]) => s + v, 0n)).toBe(supply)
}

const run = <A>(effect: Effect.Effect<A, unknown, Storage.Storage | Storage.MemoryStorage>, storage = Layer.fresh(Storage.layerMemory)) =>
  Effect.runPromise(effect.pipe(Effect.provide(storage), Effect.provide(Config.layer({ batchSize: 500 }))))

const SUPPLY = 10n ** 24n
let anvil: Anvil
beforeAll(async () => {
  anvil = await startAnvil()
})
afterAll(async () => {
  await anvil?.stop()
})

describe("RPC source on anvil", () => {
  it("indexes a few thousand real transfers: every balance equals balanceOf on the chain", async () => {
    const token = await deployToken(anvil, { name: "A", symbol: "A", supply: SUPPLY })
    await makeTransfers(anvil, token.address, { count: 3000, accounts: 120, perTx: 700 })
    await mine(anvil, 3)
    const end = await head(anvil)
    const indexed = await run(Effect.andThen(
      Runtime.run(tokenIndexer([{ id: anvil.chainId, url: anvil.url, token: token.address, startBlock: token.block, endBlock: end }])),
      balances
    ))
    await expectMatchesChain(anvil, token.address, indexed, [anvil.account.address, ...sprayAccounts(120)], SUPPLY)
  })

  it("rolls back a real reorg (anvil_reorg) and ends equal to the chain", async () => {
    const token = await deployToken(anvil, { name: "R", symbol: "R", supply: SUPPLY })
    await makeTransfers(anvil, token.address, { count: 900, accounts: 30, perTx: 300 })
    const storage = Layer.fresh(Storage.layerMemory)
    const holders = [anvil.account.address, ...sprayAccounts(30)]
    const indexed = await run(Effect.gen(function*() {
      yield* Runtime.run(tokenIndexer([{ id: anvil.chainId, url: anvil.url, token: token.address, startBlock: token.block, endBlock: yield* Effect.promise(() => head(anvil)) }]))
      // Replace the last two blocks (two of the spray transactions) with one different transfer.
      const other = holders[7]!
      yield* Effect.promise(() =>
        reorg(anvil, 2, [[{ from: anvil.account.address, to: token.address, data: encodeFunctionData({ abi: tokenAbi, functionName: "transfer", args: [other, 12345n] }) }, 0]])
      )
      yield* Effect.promise(() => mine(anvil, 2))
      yield* Runtime.run(tokenIndexer([{ id: anvil.chainId, url: anvil.url, token: token.address, startBlock: token.block, endBlock: yield* Effect.promise(() => head(anvil)) }]))
      const writes = yield* (yield* Storage.MemoryStorage).writes
      expect(writes.some((w) => w.rollback !== undefined)).toBe(true)
      return yield* balances
    }), storage)
    await expectMatchesChain(anvil, token.address, indexed, holders, SUPPLY)
  })

  it("indexes factory children from their creation block; a reorg that removes a creation removes its registration and events", async () => {
    const factory = await deployFactory(anvil)
    const a = await createChildToken(anvil, factory.address, "Child A", "CA", SUPPLY)
    await makeTransfers(anvil, a.address, { count: 200, accounts: 10, perTx: 100 })
    const b = await createChildToken(anvil, factory.address, "Child B", "CB", SUPPLY)
    await makeTransfers(anvil, b.address, { count: 150, accounts: 10, perTx: 150 })
    await mine(anvil, 1)
    const indexer = (endBlock: number) =>
      Indexer.make({
        entities: [Balance, Child],
        chains: [{
          id: anvil.chainId,
          source: RpcSource.source({ url: anvil.url, initialRange: 5 }),
          startBlock: factory.block,
          endBlock,
          contracts: [{ name: "Factory", abi: factoryAbi, address: factory.address }, { name: "Token", abi: tokenAbi }]
        }],
        handlers: {
          Factory: {
            TokenCreated: (event, ctx) =>
              Effect.andThen(ctx.Child.set({ id: event.params.token.toLowerCase(), name: event.params.name }), ctx.addContract("Token", event.params.token))
          },
          Token: transferHandler
        }
      })
    const holders = [anvil.account.address, ...sprayAccounts(10)]
    await run(Effect.gen(function*() {
      yield* Runtime.run(indexer(yield* Effect.promise(() => head(anvil))))
      const indexed = yield* balances
      yield* Effect.promise(() => expectMatchesChain(anvil, a.address, indexed, holders, SUPPLY))
      yield* Effect.promise(() => expectMatchesChain(anvil, b.address, indexed, holders, SUPPLY))
      // Remove B's creation block and everything after it.
      const depth = (yield* Effect.promise(() => head(anvil))) - b.block + 1
      yield* Effect.promise(() => reorg(anvil, depth))
      yield* Effect.promise(() => mine(anvil, 1))
      yield* Runtime.run(indexer(yield* Effect.promise(() => head(anvil))))
      const after = yield* balances
      yield* Effect.promise(() => expectMatchesChain(anvil, a.address, after, holders, SUPPLY))
      expect([...after.keys()].filter((id) => id.startsWith(`${anvil.chainId}-${b.address.toLowerCase()}-`))).toEqual([])
      const memory = yield* Storage.MemoryStorage
      expect([...(yield* memory.rows("Child")).keys()]).toEqual([a.address.toLowerCase()])
      expect((yield* (yield* Storage.Storage).loadAddresses(anvil.chainId)).map((r) => r.address)).toEqual([a.address.toLowerCase()])
    }))
  })

  it("indexes two chains in one indexer with interleaved, increasing checkpoints", async () => {
    const other = await startAnvil({ chainId: 31338 })
    try {
      const t1 = await deployToken(anvil, { name: "X", symbol: "X", supply: SUPPLY })
      const t2 = await deployToken(other, { name: "Y", symbol: "Y", supply: SUPPLY })
      // Alternate blocks between the chains in time, so a correct merge interleaves them.
      let time = Number((await anvil.publicClient.getBlock()).timestamp) + 100
      const timed: Array<string> = []
      for (let i = 0; i < 4; i++) {
        for (const [chain, token] of [[anvil, t1], [other, t2]] as const) {
          await chain.testClient.setNextBlockTimestamp({ timestamp: BigInt(time++) })
          const transfers = await makeTransfers(chain, token.address, { count: 50, accounts: 8, perTx: 50, seed: i })
          timed.push(`${chain.chainId}:${transfers.fromBlock}`)
        }
      }
      const writes = await run(Effect.gen(function*() {
        yield* Runtime.run(tokenIndexer([
          { id: anvil.chainId, url: anvil.url, token: t1.address, startBlock: t1.block, endBlock: yield* Effect.promise(() => head(anvil)) },
          { id: other.chainId, url: other.url, token: t2.address, startBlock: t2.block, endBlock: yield* Effect.promise(() => head(other)) }
        ]))
        const indexed = yield* balances
        yield* Effect.promise(() => expectMatchesChain(anvil, t1.address, indexed, [anvil.account.address, ...sprayAccounts(8)], SUPPLY))
        yield* Effect.promise(() => expectMatchesChain(other, t2.address, indexed, [other.account.address, ...sprayAccounts(8)], SUPPLY))
        return yield* (yield* Storage.MemoryStorage).writes
      }))
      const ids = writes.flatMap((w) => w.batch.checkpointIds)
      const blocks = writes.flatMap((w) => w.batch.checkpointChainIds.map((chainId, i) => `${chainId}:${w.batch.checkpointBlockNumbers[i]}`))
      expect(ids).toEqual([...ids].sort((x, y) => (x < y ? -1 : 1)))
      expect(new Set(ids).size).toBe(ids.length)
      // The eight timed blocks are checkpointed in time order: chain by chain, alternating.
      expect(blocks.filter((b) => timed.includes(b))).toEqual(timed)
    } finally {
      await other.stop()
    }
  })

  it("ends equal to the chain through a proxy that drops connections, fails and delays requests and refuses wide ranges", async () => {
    const token = await deployToken(anvil, { name: "F", symbol: "F", supply: SUPPLY })
    await makeTransfers(anvil, token.address, { count: 1500, accounts: 40, perTx: 300 })
    await mine(anvil, 2)
    let request = 0
    const faults = { dropped: 0, failed: 0, tooMany: 0, delayed: 0 }
    const proxy = http.createServer((req, res) => {
      let body = ""
      req.on("data", (d) => (body += d))
      req.on("end", () => {
        const n = ++request
        if (n % 5 === 0) {
          faults.dropped++
          return req.socket.destroy()
        }
        if (n % 7 === 0) {
          faults.failed++
          res.writeHead(503).end("busy")
          return
        }
        const call = JSON.parse(body) as { method?: string; id?: number; params?: Array<{ fromBlock: string; toBlock: string }> }
        if (call.method === "eth_getLogs" && Number(call.params![0]!.toBlock) - Number(call.params![0]!.fromBlock) > 3) {
          faults.tooMany++
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: call.id, error: { code: -32005, message: "query returned more than 10000 results" } }))
          return
        }
        const upstream = http.request(anvil.url, { method: "POST", headers: { "content-type": "application/json" } }, (up) => {
          res.writeHead(up.statusCode ?? 502, { "content-type": "application/json" })
          up.pipe(res)
        })
        // Some answers come late.
        if (n % 3 === 0) {
          faults.delayed++
          setTimeout(() => upstream.end(body), 150)
        } else upstream.end(body)
      })
    })
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve))
    const port = (proxy.address() as { port: number }).port
    try {
      const indexed = await run(Effect.andThen(
        Runtime.run(tokenIndexer([{ id: anvil.chainId, url: `http://127.0.0.1:${port}`, token: token.address, startBlock: token.block, endBlock: await head(anvil) }])),
        balances
      ))
      await expectMatchesChain(anvil, token.address, indexed, [anvil.account.address, ...sprayAccounts(40)], SUPPLY)
      expect(faults.dropped).toBeGreaterThan(0)
      expect(faults.failed).toBeGreaterThan(0)
      expect(faults.tooMany).toBeGreaterThan(0)
      expect(faults.delayed).toBeGreaterThan(0)
    } finally {
      proxy.close()
    }
  })

  it("treats a block served once with a different hash as a reorg, and still ends equal to the chain", async () => {
    const token = await deployToken(anvil, { name: "H", symbol: "H", supply: SUPPLY })
    await makeTransfers(anvil, token.address, { count: 300, accounts: 20, perTx: 100 })
    await mine(anvil, 3)
    const target = (await head(anvil)) - 1
    let altered = 0
    const proxy = http.createServer((req, res) => {
      let body = ""
      req.on("data", (d) => (body += d))
      req.on("end", () => {
        const upstream = http.request(anvil.url, { method: "POST", headers: { "content-type": "application/json" } }, (up) => {
          let text = ""
          up.on("data", (d) => (text += d))
          up.on("end", () => {
            const replies = JSON.parse(text) as unknown
            // The first time the empty block `target` is asked for, answer with another hash.
            for (const reply of Array.isArray(replies) ? replies : [replies]) {
              const result = (reply as { result?: { number?: string; hash?: string } | null }).result
              if (altered === 0 && result?.number !== undefined && Number(result.number) === target && result.hash !== undefined) {
                altered++
                result.hash = `0x${"ab".repeat(32)}`
              }
            }
            res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(replies))
          })
        })
        upstream.end(body)
      })
    })
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve))
    const port = (proxy.address() as { port: number }).port
    try {
      const end = await head(anvil)
      const { indexed, rolledBack } = await run(Effect.gen(function*() {
        yield* Runtime.run(tokenIndexer([{ id: anvil.chainId, url: `http://127.0.0.1:${port}`, token: token.address, startBlock: token.block, endBlock: target }]))
        yield* Runtime.run(tokenIndexer([{ id: anvil.chainId, url: `http://127.0.0.1:${port}`, token: token.address, startBlock: token.block, endBlock: end }]))
        const writes = yield* (yield* Storage.MemoryStorage).writes
        return { indexed: yield* balances, rolledBack: writes.some((w) => w.rollback !== undefined) }
      }))
      expect(altered).toBe(1)
      expect(rolledBack).toBe(true)
      await expectMatchesChain(anvil, token.address, indexed, [anvil.account.address, ...sprayAccounts(20)], SUPPLY)
    } finally {
      proxy.close()
    }
  })
})
