/**
 * Write path benchmark: rows/s of PgStorage.writeBatch against a plain unnest INSERT of the same rows through
 * the same client, on Postgres and on embedded PGlite. Run: `npx tsx bench/write.ts [rows]`.
 * CHAINSTORE_BENCH_DATABASE_URL overrides the Postgres URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Redacted, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Batch, Change, Entity, Indexer, Source, Storage } from "@chainstore/core"
import { Embedded, PgStorage } from "@chainstore/persistence"

const rows = Number(process.argv[2] ?? 200_000)
const repeats = 5
const url = process.env.CHAINSTORE_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

const Account = Entity.make("Account", { id: Schema.String, owner: Schema.String, balance: Schema.BigInt, transfers: Schema.Int })
type Account = Entity.Type<typeof Account>

const indexer = Indexer.make({
  entities: [Account],
  chains: [{ id: 1, source: Source.memory([]).source, startBlock: 0, contracts: [] }],
  handlers: {}
})

const accounts: ReadonlyArray<Account> = Array.from({ length: rows }, (_, i) => ({
  id: `0x${i.toString(16).padStart(40, "0")}`,
  owner: `0x${(i % 1000).toString(16).padStart(40, "0")}`,
  balance: BigInt(i) * 10n ** 18n + 123456789n,
  transfers: i % 97
}))

const plan = (inThreshold: boolean, checkpoint: bigint): Storage.WritePlan => ({
  rollback: undefined,
  batch: {
    ...Batch.empty,
    isInReorgThreshold: inThreshold,
    checkpointIds: [checkpoint],
    checkpointChainIds: [1],
    checkpointBlockNumbers: [Number(checkpoint)],
    checkpointBlockHashes: [`0x0${checkpoint}`],
    checkpointEventsProcessed: [0]
  },
  entities: [{ entity: "Account", changes: accounts.map((a) => Change.set<unknown>(a.id, a, checkpoint)) }],
  effects: [],
  chainMeta: undefined,
  committedCheckpointId: checkpoint
})

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    yield* effect
    return performance.now() - start
  })

/** The baseline: the same rows into an empty table with one unnest INSERT, arrays bound by the driver. */
const plainInsert = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`DROP TABLE IF EXISTS bench_plain`)
  yield* sql.unsafe(`CREATE TABLE bench_plain (id text PRIMARY KEY, owner text NOT NULL, balance numeric(78,0) NOT NULL, transfers bigint NOT NULL)`)
  const ms = yield* timed(Effect.suspend(() => {
    const ids: Array<string> = []
    const owners: Array<string> = []
    const balances: Array<string> = []
    const transfers: Array<number> = []
    for (const a of accounts) {
      ids.push(a.id)
      owners.push(a.owner)
      balances.push(a.balance.toString())
      transfers.push(a.transfers)
    }
    return sql.unsafe(
      `INSERT INTO bench_plain (id, owner, balance, transfers) SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::int8[])`,
      [ids, owners, balances, transfers]
    )
  }))
  yield* sql.unsafe(`DROP TABLE bench_plain`)
  return ms
})

/**
 * writeBatch of the same rows into a fresh schema (initialize not timed); `existing` writes them once first,
 * so the timed write replaces rows that are already there.
 */
/** The database's own ceiling: as many rows generated server-side, nothing sent over the wire. */
const serverSide = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`DROP TABLE IF EXISTS bench_server`)
  yield* sql.unsafe(`CREATE TABLE bench_server (id text PRIMARY KEY, owner text NOT NULL, balance numeric(78,0) NOT NULL, transfers bigint NOT NULL)`)
  const ms = yield* timed(sql.unsafe(
    `INSERT INTO bench_server SELECT '0x' || lpad(to_hex(i), 40, '0'), '0x' || lpad(to_hex(i % 997), 40, '0'), (i::numeric * 1000000007), i % 1000 FROM generate_series(1, $1::int) AS i`,
    [rows]
  ))
  yield* sql.unsafe(`DROP TABLE bench_server`)
  return ms
})

const storageWrite = (inThreshold: boolean, existing = false) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const schema = `bench_${Date.now().toString(36)}`
    const ms = yield* Effect.gen(function*() {
      const storage = yield* Storage.Storage
      yield* storage.initialize(indexer)
      if (existing) yield* storage.writeBatch(plan(inThreshold, 1n))
      const p = plan(inThreshold, existing ? 2n : 1n)
      return yield* timed(storage.writeBatch(p))
    }).pipe(Effect.provide(PgStorage.layer({ schema })))
    yield* sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`)
    return ms
  })

const best = <E, R>(run: Effect.Effect<number, E, R>) =>
  Effect.map(Effect.forEach(Array.from({ length: repeats }), () => run), (times) => Math.min(...times))

const measure = (backend: string) =>
  Effect.gen(function*() {
    yield* plainInsert // warm-up: connections, prepared statements, JIT
    const plain = yield* best(plainInsert)
    const ceiling = yield* best(serverSide)
    const write = yield* best(storageWrite(false))
    const replace = yield* best(storageWrite(false, true))
    const history = yield* best(storageWrite(true))
    const rate = (ms: number) => Math.round(rows / (ms / 1000))
    return {
      backend,
      plain: rate(plain),
      ceiling: rate(ceiling),
      write: rate(write),
      replace: rate(replace),
      history: rate(history),
      ratio: plain / write,
      replaceRatio: plain / replace,
      historyRatio: plain / history
    }
  })

const program = Effect.gen(function*() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "chainstore-bench-"))
  const results = [
    yield* measure("Postgres 15").pipe(Effect.provide(Embedded.layerPostgres({ url: Redacted.make(url) }))),
    yield* measure("embedded PGlite (worker + socket)").pipe(
      Effect.provide(Layer.fresh(Embedded.layerEmbedded({ dataDir }))),
      Effect.ensuring(Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
    )
  ]
  console.log(`${rows} rows (id, owner, numeric balance, integer), best of ${repeats}, node ${process.version}, ${os.cpus().length} cpus`)
  console.log("| backend | server-side generate_series rows/s | plain unnest INSERT rows/s | writeBatch, new rows | ratio | writeBatch, rows already stored | ratio | writeBatch + history (reorg threshold) | ratio |")
  console.log("|---|---|---|---|---|---|---|---|---|")
  for (const r of results) {
    console.log(
      `| ${r.backend} | ${r.ceiling} | ${r.plain} | ${r.write} | ${r.ratio.toFixed(2)} | ${r.replace} | ${r.replaceRatio.toFixed(2)} | ${r.history} | ${r.historyRatio.toFixed(2)} |`
    )
  }
})

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
