import { assert, layer } from "@effect/vitest"
import { Context, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { Catalog, Reader, ReadSql } from "@chainstore/api"
import { api, drop, erc20, executor, freshSchema, index, postgres, run } from "./fixtures.js"

const sim = { blocks: 30, eventsPerBlock: 10, accounts: 12, seed: 5 }
const window = 5

/** Everything the API can say about the data, as of `block` (undefined: now). */
const everything = (block: number | undefined) => {
  const at = block === undefined ? "" : `, block: { number: ${block} }`
  return `{
    accounts(first: 1000, orderBy: balance${at}) { totalCount nodes { id balance transfersByTo(first: 1000) { totalCount nodes { id value } } } }
    transfers(first: 1000, orderBy: block, orderDirection: desc${at}) { totalCount nodes { id block from { id balance } to { id } } }
  }`
}

layer(postgres, { timeout: "90 seconds" })("Reader: time-travel and snapshots on Postgres", (it) => {
  it.effect("as of a block inside the reorg window equals a run stopped there, history pruned; blocks outside it are refused", () => {
    const full = freshSchema()
    const stopped = [26, 28].map((block) => ({ block, schema: freshSchema() }))
    return Effect.gen(function*() {
      const indexer = erc20(sim, { reorgWindow: window })
      yield* index(indexer, full)
      for (const s of stopped) yield* index(erc20(sim, { reorgWindow: window, endBlock: s.block }), s.schema)
      const api = yield* executor(indexer, full)
      const sql = yield* SqlClient.SqlClient
      // History was pruned down to the window: no checkpoint is left from the blocks before it.
      const oldest = yield* sql.unsafe<{ block: number }>(`SELECT min(block_number)::int AS block FROM "${full}".chainstore_checkpoints`)
      assert.isAtLeast(oldest[0]!.block, 30 - window - 1)
      for (const s of stopped) {
        const travelled = yield* run(api, everything(s.block))
        const reference = yield* run(yield* executor(erc20(sim, { reorgWindow: window, endBlock: s.block }), s.schema), everything(undefined))
        assert.deepStrictEqual(travelled, reference)
        assert.strictEqual(reference.data.transfers.totalCount, s.block * 10)
      }
      const now = yield* run(api, everything(undefined))
      assert.deepStrictEqual(yield* run(api, everything(30)), now)
      const meta = yield* run(api, `{ _meta { chains { historyFromBlock committedBlock headBlock } } }`)
      assert.deepStrictEqual(meta.data._meta.chains, [{ historyFromBlock: 30 - window, committedBlock: 30, headBlock: 30 }])
      const outside = yield* run(api, `{ accounts(block: { number: 20 }) { totalCount } }`)
      assert.strictEqual(outside.errors?.[0]?.extensions?.code, "BLOCK_OUT_OF_RANGE")
      assert.match(outside.errors?.[0]?.message ?? "", /block 20 of chain 1337 is outside the history window: blocks 25 to 30 can be queried/)
      const unknownChain = yield* run(api, `{ accounts(block: { number: 28, chainId: 5 }) { totalCount } }`)
      assert.match(unknownChain.errors?.[0]?.message ?? "", /no chain 5/)
    }).pipe(Effect.scoped, Effect.ensuring(Effect.forEach([full, ...stopped.map((s) => s.schema)], drop)))
  })

  it.effect("a request reads one snapshot: a write committed while it runs is not in it", () => {
    const schema = freshSchema()
    return Effect.gen(function*() {
      const indexer = erc20({ ...sim, blocks: 5 })
      yield* index(indexer, schema)
      const reader = Context.get(yield* api(indexer, schema), Reader.Reader)
      const sql = yield* SqlClient.SqlClient
      const runPromise = Effect.runPromiseWith(yield* Effect.context<SqlClient.SqlClient>())
      const insert = () => runPromise(
        sql.unsafe(`INSERT INTO "${schema}".transfer (id, "from", "to", value, block) VALUES ('x', '0x1', '0x2', 1, 99)`)
      )
      const count = ReadSql.count(schema, Catalog.entity(reader.catalog, "Transfer"), undefined, undefined)
      const [first, second] = yield* reader.read(async (session) => {
        const first = await session.query<{ count: unknown }>(count)
        // Another connection commits a row between two reads of the request.
        await insert()
        const second = await session.query<{ count: unknown }>(count)
        return [Number(first[0]!.count), Number(second[0]!.count)] as const
      })
      assert.strictEqual(second, first)
      const later = yield* reader.read((session) => session.query<{ count: unknown }>(count))
      assert.strictEqual(Number(later[0]!.count), first + 1)
    }).pipe(Effect.scoped, Effect.ensuring(drop(schema)))
  })

  it.effect("a request slower than its timeout ends with a TIMEOUT error, and the next request is served", () => {
    const schema = freshSchema()
    return Effect.gen(function*() {
      const indexer = erc20({ ...sim, blocks: 5 })
      yield* index(indexer, schema)
      const slow = yield* executor(indexer, schema, { requestTimeout: "1 millis" })
      const result = yield* run(slow, `{ accounts { nodes { transfersByTo { nodes { from { id } } } } } }`)
      assert.deepStrictEqual(result.errors?.map((e) => e.extensions?.code), ["TIMEOUT"])
      assert.isNull(result.data)
      const fine = yield* run(yield* executor(indexer, schema), `{ transfers { totalCount } }`)
      assert.deepStrictEqual(fine, { data: { transfers: { totalCount: 50 } } })
      // The live clock: the timeout is a real one.
    }).pipe(Effect.scoped, TestClock.withLive, Effect.ensuring(drop(schema)))
  })
})
