/**
 * The ChainCache contract, run against every implementation: core's in-memory cache, PgChainCache on embedded PGlite
 * and PgChainCache on a Postgres server (whose cache schema every test of the database shares: each test takes its
 * own chain ids). Then what only PgChainCache does: reading nothing before its first use, the size limit, a range's
 * logs as one compressed payload, and a cache schema of another format made anew.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, layer, type Vitest } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { ChainCache, type RpcClient } from "@chainstore/core"
import { Embedded, PgChainCache } from "@chainstore/persistence"
import { postgresClient } from "./fixtures.js"

let nextChain = 50_000 + Math.floor(Math.random() * 1_000_000) * 10
/** A chain id no other test (of this run or another on the same database) uses. */
const freshChain = () => nextChain++

const hash = (n: number, fork = 0): string => `0x${fork.toString(16).padStart(2, "0")}${n.toString(16).padStart(62, "0")}`
const log = (block: number, index: number, fork = 0): RpcClient.Log => ({
  address: "0x00000000000000000000000000000000000000aa",
  topics: [`0x${"dd".repeat(32)}`],
  data: `0x${index.toString(16).padStart(64, "0")}`,
  blockNumber: `0x${block.toString(16)}`,
  blockHash: hash(block, fork) as RpcClient.Log["blockHash"],
  logIndex: `0x${index.toString(16)}`,
  transactionHash: `0x${"ab".repeat(32)}`,
  transactionIndex: "0x0"
})
const randomHex = (bytes: number): RpcClient.Log["data"] => `0x${Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex")}`
const range = (filterKey: string, fromBlock: number, toBlock: number, logs: ReadonlyArray<RpcClient.Log>): ChainCache.NewRange =>
  ({ filterKey, fromBlock, toBlock, toHash: hash(toBlock), logs })

const cache = ChainCache.ChainCache

const suite = (it: Vitest.MethodsNonLive<ChainCache.ChainCache>) => {
  it.effect("serves the logs of the parts asked, in order, and says which ranges are there", () =>
    Effect.gen(function*() {
      const c = yield* cache
      const chain = freshChain()
      yield* c.store(chain, { ranges: [range("f", 10, 19, [log(12, 0), log(12, 3), log(15, 1)]), range("g", 10, 19, [log(13, 0)])], entries: [] })
      yield* c.store(chain, { ranges: [range("f", 20, 29, [log(20, 0), log(29, 2)])], entries: [] })
      const ranges = yield* c.ranges(chain, "f", 12, 25)
      assert.deepStrictEqual(ranges.map((r) => [r.fromBlock, r.toBlock, r.toHash]), [[10, 19, hash(19)], [20, 29, hash(29)]])
      assert.deepStrictEqual(yield* c.ranges(chain, "f", 30, 40), [])
      assert.deepStrictEqual(yield* c.ranges(freshChain(), "f", 0, 100), [])
      const read = yield* c.logs([{ rangeId: ranges[0]!.id, fromBlock: 12, toBlock: 19 }, { rangeId: ranges[1]!.id, fromBlock: 20, toBlock: 25 }])
      assert.deepStrictEqual([...read.present].sort(), ranges.map((r) => r.id).sort())
      assert.deepStrictEqual(read.logs, [log(12, 0), log(12, 3), log(15, 1), log(20, 0)])
      const missing = yield* c.logs([{ rangeId: ranges[0]!.id + 1_000_000, fromBlock: 0, toBlock: 100 }])
      assert.strictEqual(missing.present.size, 0)
    }))

  it.effect("a log reads back with exactly the fields it was stored with, whatever they are; parts of one range each read their blocks", () =>
    Effect.gen(function*() {
      const c = yield* cache
      const chain = freshChain()
      const topic = (n: number) => `0x${n.toString(16).padStart(64, "0")}` as const
      const logs: ReadonlyArray<RpcClient.Log> = [
        { ...log(3, 0), topics: [] },
        { ...log(3, 1), topics: [topic(1), topic(2), topic(3), topic(4)], data: "0x", removed: false },
        { ...log(4, 0), address: "0x00000000000000000000000000000000000000Bb", removed: true, blockTimestamp: "0x10" },
        { ...log(4, 1), blockTimestamp: "0x10", transactionHash: `0x${"cd".repeat(32)}`, transactionIndex: "0x1", data: randomHex(96) },
        { ...log(6, 5), topics: [`0x${"ee".repeat(32)}`, topic(7)] }
      ]
      yield* c.store(chain, { ranges: [range("f", 1, 9, logs)], entries: [] })
      const [stored] = yield* c.ranges(chain, "f", 0, 10)
      assert.strictEqual(stored!.logCount, logs.length)
      const id = stored!.id
      assert.deepStrictEqual((yield* c.logs([{ rangeId: id, fromBlock: 1, toBlock: 9 }])).logs, logs)
      assert.deepStrictEqual((yield* c.logs([{ rangeId: id, fromBlock: 5, toBlock: 9 }, { rangeId: id, fromBlock: 1, toBlock: 3 }])).logs, [...logs.slice(0, 2), logs[4]!])
      assert.deepStrictEqual((yield* c.logs([{ rangeId: id, fromBlock: 4, toBlock: 4 }])).logs, logs.slice(2, 4))
      assert.deepStrictEqual((yield* c.logs([{ rangeId: id, fromBlock: 5, toBlock: 5 }])).logs, [])
    }))

  it.effect("a stored range replaces the ranges of its filter it overlaps; dropFrom drops every range reaching that block", () =>
    Effect.gen(function*() {
      const c = yield* cache
      const chain = freshChain()
      yield* c.store(chain, { ranges: [range("f", 1, 10, [log(5, 0)]), range("f", 11, 20, [log(15, 0)]), range("g", 1, 30, [])], entries: [] })
      yield* c.store(chain, { ranges: [range("f", 8, 12, [log(9, 0, 1)])], entries: [] })
      assert.deepStrictEqual((yield* c.ranges(chain, "f", 0, 100)).map((r) => [r.fromBlock, r.toBlock]), [[8, 12]])
      assert.strictEqual((yield* c.ranges(chain, "g", 0, 100)).length, 1)
      yield* c.dropFrom(chain, 12)
      assert.deepStrictEqual(yield* c.ranges(chain, "f", 0, 100), [])
      assert.deepStrictEqual(yield* c.ranges(chain, "g", 0, 100), [])
    }))

  it.effect("entries are per chain and kind, the first value stored stays, and they go with their range", () =>
    Effect.gen(function*() {
      const c = yield* cache
      const chain = freshChain()
      const header = { number: "0x5", hash: hash(5), parentHash: hash(4), timestamp: "0x10" }
      yield* c.store(chain, { ranges: [range("f", 1, 9, [])], entries: [{ kind: "header", key: hash(5), value: header }] })
      yield* c.store(chain, { ranges: [], entries: [{ kind: "header", key: hash(5), value: { other: true } }, { kind: "call", key: "k", value: { _tag: "Success", data: "0x01" } }] })
      assert.deepStrictEqual([...(yield* c.entries(chain, "header", [hash(5), hash(6)]))], [[hash(5), header]])
      assert.deepStrictEqual([...(yield* c.entries(chain, "call", ["k"]))], [["k", { _tag: "Success", data: "0x01" }]])
      assert.strictEqual((yield* c.entries(chain, "transaction", [hash(5)])).size, 0)
      assert.strictEqual((yield* c.entries(freshChain(), "header", [hash(5)])).size, 0)
      yield* c.dropFrom(chain, 0)
      assert.strictEqual((yield* c.entries(chain, "header", [hash(5)])).size, 0)
      assert.strictEqual((yield* c.entries(chain, "call", ["k"])).size, 1)
    }))

  it.effect("status counts per chain and merges what the ranges cover; clear empties one chain", () =>
    Effect.gen(function*() {
      const c = yield* cache
      const [chain, other] = [freshChain(), freshChain()]
      yield* c.store(chain, {
        ranges: [range("f", 1, 10, [log(2, 0), log(3, 0)]), range("g", 5, 20, [log(6, 0)])],
        entries: [{ kind: "transaction", key: "t1", value: {} }, { kind: "receipt", key: "t1", value: {} }, { kind: "header", key: "h", value: {} }]
      })
      yield* c.store(chain, { ranges: [range("f", 30, 40, [])], entries: [{ kind: "call", key: "c", value: { _tag: "Reverted", data: "0x" } }] })
      yield* c.store(other, { ranges: [range("f", 1, 1, [])], entries: [] })
      const status = (yield* c.status).find((s) => s.chainId === chain)!
      assert.deepStrictEqual({ ...status, bytes: 0 }, {
        chainId: chain,
        filters: 2,
        ranges: 3,
        covered: [{ fromBlock: 1, toBlock: 20 }, { fromBlock: 30, toBlock: 40 }],
        logs: 3,
        headers: 1,
        transactions: 1,
        receipts: 1,
        calls: 1,
        bytes: 0
      })
      assert.isAbove(status.bytes, 0)
      yield* c.clear(chain)
      const after = yield* c.status
      assert.isUndefined(after.find((s) => s.chainId === chain))
      assert.isDefined(after.find((s) => s.chainId === other))
      assert.strictEqual((yield* c.entries(chain, "call", ["c"])).size, 0)
    }))
}

/** The size limit holds for the whole database: run only where this file owns it (not on the shared server). */
const limitSuite = (it: Vitest.MethodsNonLive<SqlClient.SqlClient>) => {
  it.effect("past the size limit the oldest-stored ranges go, with their logs and entries", () =>
    Effect.gen(function*() {
      const c = yield* PgChainCache.make({ maxBytes: 50_000 })
      const chain = freshChain()
      // Random data: the payloads are compressed, so the limit is reached only by what does not compress.
      const many = (from: number) => Array.from({ length: 50 }, (_, i) => ({ ...log(from, i), data: randomHex(128) }))
      yield* c.store(chain, { ranges: [range("f", 1, 9, many(1))], entries: [{ kind: "header", key: "old", value: {} }] })
      for (let n = 10; n < 100; n += 10) yield* c.store(chain, { ranges: [range("f", n, n + 9, many(n))], entries: [] })
      const kept = yield* c.ranges(chain, "f", 0, 1_000)
      assert.isAbove(kept.length, 1)
      assert.isBelow(kept.length, 10)
      // The newest survive: the ranges kept end at the last one stored.
      assert.strictEqual(kept.at(-1)!.toBlock, 99)
      assert.strictEqual((yield* c.entries(chain, "header", ["old"])).size, 0)
      assert.isAtMost((yield* c.status).reduce((n, s) => n + s.bytes, 0), 50_000)
      yield* c.clear(chain)
    }))
}

/** How PgChainCache keeps logs: one payload per range, compressed by it, which the database stores as it is. */
const payloadSuite = (it: Vitest.MethodsNonLive<ChainCache.ChainCache | SqlClient.SqlClient>) => {
  it.effect("a range's logs are one compressed payload in its row, stored out of line as they are (EXTERNAL)", () =>
    Effect.gen(function*() {
      const c = yield* cache
      const sql = yield* SqlClient.SqlClient
      const chain = freshChain()
      const logs = Array.from({ length: 1_000 }, (_, i) => log(1 + Math.floor(i / 100), i % 100))
      yield* c.store(chain, { ranges: [range("f", 1, 10, logs)], entries: [] })
      const rows = yield* sql<{ readonly bytes: number; readonly stored: number; readonly storage: string }>`SELECT r.bytes::int AS bytes,
  octet_length(r.payload) AS stored, (SELECT attstorage FROM pg_attribute WHERE attrelid = ${`${PgChainCache.schema}.ranges`}::regclass AND attname = 'payload') AS storage
FROM ${sql(PgChainCache.schema)}.ranges r WHERE r.chain_id = ${chain}`
      assert.strictEqual(rows.length, 1)
      assert.strictEqual(rows[0]!.storage, "e")
      // Far smaller than the logs' JSON, and what the size limit counts.
      assert.isBelow(rows[0]!.stored, JSON.stringify(logs).length / 10)
      assert.isAtLeast(rows[0]!.bytes, rows[0]!.stored)
      yield* c.clear(chain)
    }))
}

layer(ChainCache.layerMemory)("ChainCache contract: in memory", (it) => suite(it))

// Created by the layer when the suite runs.
const dataDir = path.join(os.tmpdir(), `cs-chaincache-${process.pid}-${Date.now().toString(36)}`)
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }))

layer(PgChainCache.layer().pipe(Layer.provideMerge(Embedded.layerEmbedded({ dataDir }))), { timeout: "60 seconds" })("ChainCache contract: PgChainCache on embedded PGlite", (it) => {
  it.effect("status and clear read nothing and create nothing before the first use", () =>
    Effect.gen(function*() {
      const c = yield* cache
      assert.deepStrictEqual(yield* c.status, [])
      yield* c.clear(undefined)
      const sql = yield* SqlClient.SqlClient
      const found = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${PgChainCache.schema}`
      assert.strictEqual(found[0]!.n, 0)
    }))
  suite(it)
  limitSuite(it)
  payloadSuite(it)
  it.effect("a cache schema of another format is dropped and made anew at the first use; status and clear see none before", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`DROP SCHEMA ${PgChainCache.schema} CASCADE`)
      yield* sql.unsafe(`CREATE SCHEMA ${PgChainCache.schema}`)
      // An earlier layout: one row per log.
      yield* sql.unsafe(`CREATE TABLE ${PgChainCache.schema}.ranges (id bigserial PRIMARY KEY, chain_id bigint NOT NULL, filter_key text, from_block bigint,
  to_block bigint, to_hash text, log_count integer NOT NULL DEFAULT 0, bytes bigint NOT NULL)`)
      yield* sql.unsafe(`CREATE TABLE ${PgChainCache.schema}.logs (range_id bigint NOT NULL, block_number bigint NOT NULL, log_index integer NOT NULL, payload text NOT NULL)`)
      const chain = freshChain()
      yield* sql.unsafe(`INSERT INTO ${PgChainCache.schema}.ranges (chain_id, filter_key, from_block, to_block, to_hash, bytes) VALUES (${chain}, 'f', 1, 9, '${hash(9)}', 10)`)
      const c = yield* PgChainCache.make()
      assert.deepStrictEqual(yield* c.status, [])
      yield* c.clear(chain)
      assert.deepStrictEqual(yield* c.ranges(chain, "f", 0, 100), [])
      yield* c.store(chain, { ranges: [range("f", 1, 9, [log(2, 0)])], entries: [] })
      assert.deepStrictEqual((yield* c.logs((yield* c.ranges(chain, "f", 0, 100)).map((r) => ({ rangeId: r.id, fromBlock: 1, toBlock: 9 })))).logs, [log(2, 0)])
      const tables = yield* sql<{ readonly name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ${PgChainCache.schema} ORDER BY 1`
      assert.deepStrictEqual(tables.map((t) => t.name), ["entries", "ranges"])
      yield* c.clear(chain)
    }))
})

layer(PgChainCache.layer().pipe(Layer.provideMerge(postgresClient)), { timeout: "30 seconds" })("ChainCache contract: PgChainCache on Postgres", (it) => {
  suite(it)
  payloadSuite(it)
})
