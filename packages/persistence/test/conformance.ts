/**
 * The Storage contract, run against every implementation: core's in-memory storage, PgStorage on embedded
 * PGlite and PgStorage on a Postgres server. `storageSuite` is what every implementation promises;
 * `sqlSuite` what only the SQL one can (durability across reopen, definition checks, transactions, NULs).
 */
import { assert, type Vitest } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { type Batch, Change, Entity, Errors, type Indexer, Storage } from "@chainstore/core"
import { PgStorage } from "@chainstore/persistence"
import {
  Account,
  account,
  AllTypes,
  allTypes,
  type Backend,
  blockHash,
  countingClient,
  event,
  freshSchema,
  indexer,
  makeIndexer,
  plan,
  set,
  StatementLog,
  withStorage
} from "./fixtures.js"

const byId = <A extends { readonly id: string }>(rows: ReadonlyArray<unknown>): Array<A> =>
  [...(rows as ReadonlyArray<A>)].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

const sortChanges = (changes: ReadonlyArray<Change.Change<unknown>>) =>
  [...changes].sort((a, b) => (a.entityId < b.entityId ? -1 : 1))

const diffOf = (diff: Storage.RollbackDiff, entity: string) =>
  sortChanges(diff.entities.find((e) => e.entity === entity)?.changes ?? [])

const countOf = (status: Storage.Status, entity: string) => status.entityCounts.find((e) => e.entity === entity)?.rows ?? 0


/** History scenario shared by the rollback tests: x exists before the threshold, z is born and y dies inside it. */
const historyScenario = (storage: Storage.Storage["Service"]) =>
  Effect.gen(function*() {
    yield* storage.writeBatch(plan({
      entities: { Account: [set(account("x", 1n), 1n), set(account("y", 5n), 1n)] },
      effects: { headBlock: [{ key: "h0", output: { number: 0 }, checkpointId: 1n }] },
      checkpoints: [{ id: 1n, block: 101, events: 2 }]
    }))
    yield* storage.writeBatch(plan({
      inThreshold: true,
      entities: {
        Account: [
          set(account("x", 2n), 2n),
          set(account("z", 9n), 2n),
          set(account("x", 3n), 3n),
          Change.del("y", 3n)
        ]
      },
      effects: {
        price: [{ key: "p1", output: { usd: 2, source: "x" }, checkpointId: 2n }],
        headBlock: [{ key: "h1", output: { number: 102 }, checkpointId: 2n }]
      },
      checkpoints: [{ id: 2n, block: 102, events: 2 }, { id: 3n, block: 103, events: 1 }],
      items: [event(102, 0, { v: 1n }), event(102, 1, { v: 2n }), event(103, 0, { v: 3n })]
    }))
  })

export const storageSuite = <R>(it: Vitest.MethodsNonLive<R>, backend: Backend<R>) => {
  it.effect("round-trips every column type: huge and negative bigints, nested JSON, empty arrays, nulls, 1 MB strings", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        const rows: Array<AllTypes> = [
          allTypes("plain"),
          allTypes("huge", { big: 2n ** 64n + 1n, maybeBig: 10n ** 78n - 1n, int: Number.MAX_SAFE_INTEGER, small: -1000, num: -1e300 }),
          allTypes("negative", { big: -(10n ** 78n - 1n), maybeBig: -(2n ** 70n), int: Number.MIN_SAFE_INTEGER, num: Infinity, flag: false, kind: "b" }),
          allTypes("empty", { text: "", tags: [], nested: { amount: 0n, when: new Date(1), items: [] }, plain: { name: "", values: [] }, anything: [], note: "" }),
          allTypes("nulls", { anything: null, maybeBig: null }),
          allTypes("json", {
            anything: { a: { b: { c: [1, [2, [3, { d: "e" }]]] } }, s: "quote\" back\\slash" },
            tags: ["a,b", "{c}", "\"q\"", "NULL", "back\\slash", "ünïcødé ✓ 🚀", " spaced ", ""],
            nested: { amount: -(10n ** 40n), when: new Date("1999-12-31T23:59:59.999Z"), items: [{ k: "π", v: -0.5 }, { k: "e", v: 1e-10 }] }
          }),
          allTypes("megabyte", { text: `${"x".repeat(1024 * 1024)}é` })
        ]
        yield* storage.writeBatch(plan({ entities: { AllTypes: rows.map((r) => set(r, 1n)) }, checkpoints: [{ id: 1n, block: 100 }] }))
        const loaded = yield* storage.loadByIds("AllTypes", [...rows.map((r) => r.id), "missing"])
        assert.deepStrictEqual(byId(loaded), byId(rows))
      })))

  it.effect("loadByField compares with eq, gt and lt on text, bigint and integer columns", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        const rows = [account("a1", 5n, "alice"), account("a2", 10n ** 30n, "bob", 3), account("a3", -3n, "alice"), account("a4", 7n, "Bob")]
        yield* storage.writeBatch(plan({ entities: { Account: rows.map((r) => set(r, 1n)) }, checkpoints: [{ id: 1n, block: 100 }] }))
        const ids = (found: ReadonlyArray<unknown>) => byId<Account>(found).map((a) => a.id)
        assert.deepStrictEqual(ids(yield* storage.loadByField("Account", "owner", "eq", "alice")), ["a1", "a3"])
        assert.deepStrictEqual(ids(yield* storage.loadByField("Account", "balance", "gt", 6n)), ["a2", "a4"])
        assert.deepStrictEqual(ids(yield* storage.loadByField("Account", "balance", "lt", 0n)), ["a3"])
        assert.deepStrictEqual(ids(yield* storage.loadByField("Account", "transfers", "gt", 1)), ["a2"])
        // Code-point order, as JavaScript compares strings: "Bob" < "alice" < "bob".
        assert.deepStrictEqual(ids(yield* storage.loadByField("Account", "owner", "gt", "alice")), ["a2"])
        assert.deepStrictEqual(ids(yield* storage.loadByField("Account", "owner", "lt", "alice")), ["a4"])
      })))

  it.effect("stores hostile ids and values as data", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        const hostile = ["'); drop table \"account\"; --", "a\"b", ";", "\\", "{}", "NULL", ",", "$1", "' OR 1=1 --", "x'); DELETE FROM chainstore_state; --"]
        const rows = hostile.map((id, i) => account(id, BigInt(i), id))
        yield* storage.writeBatch(plan({
          entities: { Account: rows.map((r) => set(r, 1n)) },
          effects: { price: hostile.map((key) => ({ key, output: { usd: 1, source: key }, checkpointId: 1n })) },
          checkpoints: [{ id: 1n, block: 100 }]
        }))
        assert.deepStrictEqual(byId(yield* storage.loadByIds("Account", hostile)), byId(rows))
        assert.deepStrictEqual(byId<Account>(yield* storage.loadByField("Account", "owner", "eq", hostile[0])).map((a) => a.id), [hostile[0]])
        const effects = yield* storage.loadEffectEntries("price", hostile)
        assert.strictEqual(effects.length, hostile.length)
        const status = yield* storage.status
        assert.strictEqual(countOf(status, "Account"), hostile.length)
        assert.strictEqual(status.committedCheckpointId, 1n)
      })))

  it.effect("writes 50,000 rows in one writeBatch", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        const rows = Array.from({ length: 50_000 }, (_, i) => account(`acc-${i}`, BigInt(i) * 10n ** 20n, `owner-${i % 100}`, i))
        yield* storage.writeBatch(plan({ entities: { Account: rows.map((r) => set(r, 1n)) }, checkpoints: [{ id: 1n, block: 100 }] }))
        const sample = [rows[0]!, rows[12_345]!, rows[49_999]!]
        assert.deepStrictEqual(byId(yield* storage.loadByIds("Account", sample.map((r) => r.id))), byId(sample))
        assert.strictEqual(countOf(yield* storage.status, "Account"), 50_000)
      })))

  it.effect("history: an entity first touched inside the threshold keeps its pre-run value; the diff restores it", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        yield* historyScenario(storage)
        const before = yield* storage.readRollbackDiff(1n)
        assert.deepStrictEqual(diffOf(before, "Account"), [
          Change.set("x", account("x", 1n), 0n),
          Change.set("y", account("y", 5n), 0n),
          Change.del("z", 0n)
        ])
        assert.deepStrictEqual(before.chains, [{ chainId: 1, progressBlock: 101, eventsProcessedDiff: 3 }])
        const mid = yield* storage.readRollbackDiff(2n)
        assert.deepStrictEqual(diffOf(mid, "Account"), [Change.set("x", account("x", 2n), 0n), Change.set("y", account("y", 5n), 0n)])
        assert.deepStrictEqual(mid.chains, [{ chainId: 1, progressBlock: 102, eventsProcessedDiff: 1 }])
        assert.deepStrictEqual((yield* storage.readRollbackDiff(3n)).entities.flatMap((e) => e.changes), [])
        assert.strictEqual(yield* storage.rollbackTarget(1, 102), 2n)
        assert.strictEqual(yield* storage.rollbackTarget(1, 105), 3n)
        // Checkpoint 1 was written outside the threshold: no row, so nothing at block 101 to return to.
        assert.strictEqual(yield* storage.rollbackTarget(1, 101), 0n)
        assert.strictEqual(yield* storage.rollbackTarget(10, 500), 0n)
        assert.deepStrictEqual(yield* storage.storedBlockHashes(1, 0), [{ number: 102, hash: blockHash(102) }, { number: 103, hash: blockHash(103) }])
        assert.deepStrictEqual(yield* storage.storedBlockHashes(1, 103), [{ number: 103, hash: blockHash(103) }])
        assert.deepStrictEqual(yield* storage.storedBlockHashes(10, 0), [])
      })))

  it.effect("a staged rollback drops later history, checkpoints and reorg-sensitive effects, then applies the diff", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        yield* historyScenario(storage)
        const diff = yield* storage.readRollbackDiff(1n)
        const diffCheckpoint = 4n
        const restamped = diffOf(diff, "Account").map((c) => ({ ...c, checkpointId: diffCheckpoint }))
        yield* storage.writeBatch(plan({
          inThreshold: true,
          rollback: { targetCheckpointId: 1n, diffCheckpointId: diffCheckpoint },
          entities: { Account: [...restamped, set(account("x", 50n), 5n)] },
          checkpoints: [{ id: 5n, block: 102, hash: "0xnew", events: 1 }]
        }))
        assert.deepStrictEqual(byId(yield* storage.loadByIds("Account", ["x", "y", "z"])), [account("x", 50n), account("y", 5n)])
        assert.deepStrictEqual(yield* storage.storedBlockHashes(1, 0), [{ number: 102, hash: "0xnew" }])
        // The diff's own changes are not history: only x's step at 5 is after the target.
        assert.deepStrictEqual(diffOf(yield* storage.readRollbackDiff(1n), "Account"), [Change.set("x", account("x", 1n), 0n)])
        assert.deepStrictEqual((yield* storage.loadEffectEntries("headBlock", ["h0", "h1"])).map((e) => e.key), ["h0"])
        assert.deepStrictEqual((yield* storage.loadEffectEntries("price", ["p1"])).map((e) => e.key), ["p1"])
        assert.strictEqual((yield* storage.status).committedCheckpointId, 5n)
      })))

  it.effect("registered addresses: loaded per chain oldest first; a rollback forgets those after its target", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        const registration = (chainId: number, address: string, blockNumber: number, checkpointId: bigint): Batch.Registration => ({
          chainId, contractName: "Child", address, blockNumber, logIndex: 0, checkpointId
        })
        const first = [registration(1, "0x01", 101, 1n), registration(1, "0x02", 101, 1n)]
        const second = [registration(1, "0x03", 102, 2n), registration(10, "0x04", 7, 2n)]
        yield* storage.writeBatch(plan({ registrations: first, checkpoints: [{ id: 1n, block: 101 }] }))
        yield* storage.writeBatch(plan({ registrations: second, checkpoints: [{ id: 2n, block: 102 }] }))
        assert.deepStrictEqual(yield* storage.loadAddresses(1), [...first, second[0]!])
        assert.deepStrictEqual(yield* storage.loadAddresses(10), [second[1]!])
        yield* storage.writeBatch(plan({ rollback: { targetCheckpointId: 1n, diffCheckpointId: 3n }, committed: 3n }))
        assert.deepStrictEqual(yield* storage.loadAddresses(1), first)
        assert.deepStrictEqual(yield* storage.loadAddresses(10), [])
      })))

  it.effect("pruneHistory keeps each id's newest row at or below the safe checkpoint", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        for (const n of [1, 2, 3]) {
          yield* storage.writeBatch(plan({
            inThreshold: true,
            entities: { Account: [set(account("p", BigInt(n)), BigInt(n))] },
            checkpoints: [{ id: BigInt(n), block: 100 + n, events: 1 }]
          }))
        }
        yield* storage.pruneHistory(2n)
        assert.deepStrictEqual(diffOf(yield* storage.readRollbackDiff(2n), "Account"), [Change.set("p", account("p", 2n), 0n)])
        // The row at checkpoint 1 is gone: a rollback below the safe checkpoint is no longer possible.
        assert.deepStrictEqual(diffOf(yield* storage.readRollbackDiff(1n), "Account"), [Change.del("p", 0n)])
        assert.deepStrictEqual((yield* storage.storedBlockHashes(1, 0)).map((b) => b.number), [102, 103])
      })))

  it.effect("effect rows: upserted per key, read back as stored JSON", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        yield* storage.writeBatch(plan({
          effects: { price: [{ key: "{\"token\":\"a\"}", output: { usd: 1.25, source: "one" }, checkpointId: 1n }] },
          checkpoints: [{ id: 1n, block: 100 }]
        }))
        yield* storage.writeBatch(plan({
          effects: { price: [{ key: "{\"token\":\"a\"}", output: { usd: 2.5, source: "two" }, checkpointId: 2n }, { key: "k2", output: { usd: 0, source: "" }, checkpointId: 2n }] },
          checkpoints: [{ id: 2n, block: 101 }]
        }))
        const entries = yield* storage.loadEffectEntries("price", ["{\"token\":\"a\"}", "k2", "missing"])
        assert.deepStrictEqual([...entries].sort((a, b) => (a.key < b.key ? -1 : 1)), [
          { key: "k2", output: { usd: 0, source: "" } },
          { key: "{\"token\":\"a\"}", output: { usd: 2.5, source: "two" } }
        ])
        const status = yield* storage.status
        assert.strictEqual(status.effectCounts.find((e) => e.effect === "price")?.rows, 2)
      })))

  it.effect("chains: initial state, progress per write, metadata set once where it should be", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        const chain = (status: Storage.Status | Storage.ResumeState, id: number) => status.chains.find((c) => c.chainId === id)!
        const resume = yield* storage.initialize(indexer)
        assert.deepStrictEqual(chain(resume, 1), {
          chainId: 1, startBlock: 100, endBlock: undefined, progressBlock: 99, sourceBlock: 0, eventsProcessed: 0,
          firstEventBlock: undefined, readyAt: undefined, reorgWindow: 200
        })
        assert.deepStrictEqual(chain(resume, 10), {
          chainId: 10, startBlock: 5, endBlock: 1000, progressBlock: 4, sourceBlock: 0, eventsProcessed: 0,
          firstEventBlock: undefined, readyAt: undefined, reorgWindow: 50
        })
        yield* storage.writeBatch(plan({
          checkpoints: [{ id: 1n, block: 120, events: 30 }],
          progress: [{ chainId: 1, progressBlock: 150, sourceBlock: 200, eventsProcessed: 30, firstEventBlock: 120 }]
        }))
        yield* storage.writeBatch(plan({
          checkpoints: [{ id: 2n, block: 160, events: 5 }],
          progress: [{ chainId: 1, progressBlock: 170, sourceBlock: 210, eventsProcessed: 35, firstEventBlock: 160 }],
          chainMeta: [{ chainId: 10, sourceBlock: 900, bufferBlock: 880, firstEventBlock: 7, readyAt: new Date("2026-01-01T00:00:00Z") }]
        }))
        yield* storage.writeChainMeta([{ chainId: 10, sourceBlock: 950, bufferBlock: 940, firstEventBlock: 9, readyAt: new Date("2026-02-02T00:00:00Z") }])
        const status = yield* storage.status
        assert.strictEqual(status.committedCheckpointId, 2n)
        assert.deepStrictEqual(
          { ...chain(status, 1) },
          { ...chain(resume, 1), progressBlock: 170, sourceBlock: 210, eventsProcessed: 35, firstEventBlock: 120 }
        )
        assert.deepStrictEqual(
          { ...chain(status, 10) },
          { ...chain(resume, 10), sourceBlock: 950, firstEventBlock: 7, readyAt: new Date("2026-01-01T00:00:00Z") }
        )
      })))

  it.effect("initialize is idempotent; reset drops everything and a new initialize starts from scratch", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        yield* storage.writeBatch(plan({
          entities: { Account: [set(account("a", 1n), 1n)] },
          checkpoints: [{ id: 1n, block: 120, events: 1 }],
          progress: [{ chainId: 1, progressBlock: 120, sourceBlock: 130, eventsProcessed: 1, firstEventBlock: 120 }]
        }))
        const again = yield* storage.initialize(indexer)
        assert.strictEqual(again.committedCheckpointId, 1n)
        assert.strictEqual(again.chains.find((c) => c.chainId === 1)?.progressBlock, 120)
        yield* storage.reset
        const fresh = yield* storage.initialize(indexer)
        assert.strictEqual(fresh.committedCheckpointId, 0n)
        assert.strictEqual(fresh.chains.find((c) => c.chainId === 1)?.progressBlock, 99)
        assert.deepStrictEqual(yield* storage.loadByIds("Account", ["a"]), [])
      })))
}

const changedAccount = Entity.make("Account", {
  id: Schema.String,
  owner: Schema.String,
  balance: Schema.String,
  transfers: Schema.Int,
  extra: Schema.Boolean
})

/** Runs `body` on a fresh schema with a raw SqlClient at hand, dropping the schema afterwards. */
const withSchema = <R, A, E, R2>(backend: Backend<R>, body: (schema: string, sql: SqlClient.SqlClient) => Effect.Effect<A, E, R2>) => {
  const schema = freshSchema()
  return Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* body(schema, sql)
  }).pipe(Effect.ensuring(backend.drop(schema)))
}

const open = (schema: string) => Effect.provide(PgStorage.layer({ schema }))

const initializeWith = (def: Indexer.Indexer) =>
  Effect.gen(function*() {
    const storage = yield* Storage.Storage
    return yield* storage.initialize(def)
  })

const schemaExists = (sql: SqlClient.SqlClient, schema: string) =>
  Effect.map(sql<{ readonly n: string }>`SELECT count(*)::text AS n FROM information_schema.schemata WHERE schema_name = ${schema}`, (rows) => rows[0]?.n === "1")

export const sqlSuite = (it: Vitest.MethodsNonLive<SqlClient.SqlClient>, backend: Backend<SqlClient.SqlClient>) => {
  it.effect("resume state after close and reopen equals the state before", () =>
    withSchema(backend, (schema) =>
      Effect.gen(function*() {
        const before = yield* Effect.gen(function*() {
          const storage = yield* Storage.Storage
          yield* storage.initialize(indexer)
          yield* historyScenario(storage)
          yield* storage.writeChainMeta([{ chainId: 10, sourceBlock: 900, bufferBlock: 880, firstEventBlock: 7, readyAt: new Date(5_000) }])
          return { status: yield* storage.status, rows: byId(yield* storage.loadByIds("Account", ["x", "y", "z"])) }
        }).pipe(open(schema))
        const after = yield* Effect.gen(function*() {
          const storage = yield* Storage.Storage
          const resume = yield* storage.initialize(indexer)
          return { resume, status: yield* storage.status, rows: byId(yield* storage.loadByIds("Account", ["x", "y", "z"])) }
        }).pipe(open(schema))
        assert.deepStrictEqual(after.status, before.status)
        assert.deepStrictEqual(after.resume, { committedCheckpointId: before.status.committedCheckpointId, chains: before.status.chains })
        assert.deepStrictEqual(after.rows, before.rows)
        assert.strictEqual(after.resume.committedCheckpointId, 3n)
      })))

  it.effect("a changed entity definition is refused with a message naming the difference and the reset command", () =>
    withSchema(backend, (schema) =>
      Effect.gen(function*() {
        yield* initializeWith(indexer).pipe(open(schema))
        const error = yield* Effect.flip(
          initializeWith(makeIndexer({ entities: [changedAccount] })).pipe(open(schema))
        )
        assert.instanceOf(error, Errors.StorageError)
        assert.include(error.message, `schema "${schema}" holds tables of different entity definitions`)
        assert.include(error.message, `column "account"."balance" changed type from numeric(78,0) to text`)
        assert.include(error.message, `column "account"."extra" was added`)
        assert.include(error.message, `table "all_types" is stored but no entity defines it any more`)
        assert.include(error.message, "chainstore db reset")
        // Refused before anything changed: the original definitions still open.
        yield* initializeWith(indexer).pipe(open(schema))
      })))

  it.effect("hostile identifiers are refused with a typed error before any SQL runs", () =>
    withSchema(backend, (schema, sql) =>
      Effect.gen(function*() {
        const hostileSchema = "x\"; DROP SCHEMA public CASCADE; --"
        const bySchema = yield* Effect.flip(initializeWith(indexer).pipe(open(hostileSchema)))
        assert.instanceOf(bySchema, Errors.StorageError)
        assert.include(bySchema.message, hostileSchema)
        const byReset = yield* Effect.flip(Effect.gen(function*() {
          const storage = yield* Storage.Storage
          yield* storage.reset
        }).pipe(open(hostileSchema)))
        assert.instanceOf(byReset, Errors.StorageError)
        assert.include(byReset.message, hostileSchema)
        const cases: ReadonlyArray<readonly [Entity.Any, string]> = [
          [Entity.make("Bad\"; DROP TABLE x; --", { id: Schema.String }), "Bad\"; DROP TABLE x; --"],
          [Entity.make("Fine", { id: Schema.String, "bad-field": Schema.String }), "Fine.bad-field"],
          [Entity.make("A".repeat(45), { id: Schema.String }), "A".repeat(45)],
          [Entity.make("Fine", { id: Schema.String, someField: Schema.String, some_field: Schema.String }), "some_field"]
        ]
        for (const [entity, named] of cases) {
          const error = yield* Effect.flip(initializeWith(makeIndexer({ entities: [entity] })).pipe(open(schema)))
          assert.instanceOf(error, Errors.StorageError)
          assert.include(error.message, named)
        }
        assert.isFalse(yield* schemaExists(sql, schema))
        assert.isFalse(yield* schemaExists(sql, hostileSchema))
        assert.isTrue(yield* schemaExists(sql, "public"))
      })))

  it.effect("a transaction failing half way leaves no rows and the committed checkpoint unchanged", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        yield* storage.writeBatch(plan({
          inThreshold: true,
          entities: { Account: [set(account("kept", 1n), 1n)] },
          checkpoints: [{ id: 1n, block: 101, events: 1 }]
        }))
        // Entities, history, raw events and effects go in before the checkpoint rows; checkpoint 1 again violates its key.
        const error = yield* Effect.flip(storage.writeBatch(plan({
          inThreshold: true,
          entities: { Account: [set(account("kept", 2n), 2n), set(account("new", 2n), 2n)], AllTypes: [set(allTypes("t"), 2n)] },
          effects: { price: [{ key: "k", output: { usd: 1, source: "s" }, checkpointId: 2n }] },
          items: [event(102, 0, { v: 1n })],
          checkpoints: [{ id: 2n, block: 102, events: 1 }, { id: 1n, block: 103, events: 0 }],
          progress: [{ chainId: 1, progressBlock: 103, sourceBlock: 110, eventsProcessed: 2, firstEventBlock: 101 }],
          committed: 2n
        })))
        assert.instanceOf(error, Errors.StorageError)
        assert.isFalse(error.isRetryable)
        assert.deepStrictEqual(yield* storage.loadByIds("Account", ["kept", "new"]), [account("kept", 1n)])
        assert.deepStrictEqual(yield* storage.loadByIds("AllTypes", ["t"]), [])
        assert.deepStrictEqual(yield* storage.loadEffectEntries("price", ["k"]), [])
        const status = yield* storage.status
        assert.strictEqual(status.committedCheckpointId, 1n)
        assert.strictEqual(status.chains.find((c) => c.chainId === 1)?.progressBlock, 99)
        assert.deepStrictEqual(diffOf(yield* storage.readRollbackDiff(0n), "Account"), [Change.del("kept", 0n)])
      })))

  it.effect("NUL bytes are stripped from the offending table's rows only; the rest of the write lands intact", () =>
    withStorage(backend, (storage, schema) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* storage.writeBatch(plan({
          inThreshold: true,
          entities: {
            AllTypes: [set(allTypes("nul", { text: "a\u0000b", tags: ["c\u0000d"], anything: { deep: ["e\u0000f"] } }), 1n)],
            Account: [set(account("clean\u0001", 1n, "own\\u0000er"), 1n)]
          },
          effects: { price: [{ key: "k", output: { usd: 1, source: "keep\\u0000this" }, checkpointId: 1n }] },
          items: [event(101, 0, { note: "x\u0000y", nested: { list: ["p\u0000q", { r: "s\u0000" }] }, amount: 10n ** 30n })],
          checkpoints: [{ id: 1n, block: 101, events: 1 }]
        }))
        assert.deepStrictEqual(
          yield* storage.loadByIds("AllTypes", ["nul"]),
          [allTypes("nul", { text: "ab", tags: ["cd"], anything: { deep: ["ef"] } })]
        )
        // Other tables of the same write keep their values byte for byte (escaped text is not a NUL).
        assert.deepStrictEqual(yield* storage.loadByIds("Account", ["clean\u0001"]), [account("clean\u0001", 1n, "own\\u0000er")])
        assert.deepStrictEqual(yield* storage.loadEffectEntries("price", ["k"]), [{ key: "k", output: { usd: 1, source: "keep\\u0000this" } }])
        const raw = yield* sql.unsafe<{ readonly params: unknown; readonly checkpoint_id: string }>(
          `SELECT params, checkpoint_id::text AS checkpoint_id FROM "${schema}".chainstore_raw_events`
        )
        assert.deepStrictEqual(raw, [{ params: { note: "xy", nested: { list: ["pq", { r: "s" }] }, amount: (10n ** 30n).toString() }, checkpoint_id: "1" }])
        assert.deepStrictEqual(diffOf(yield* storage.readRollbackDiff(0n), "AllTypes"), [Change.del("nul", 0n)])
      })))

  it.effect("raw events: one row per item with its checkpoint; a rollback removes those after the target", () =>
    withStorage(backend, (storage, schema) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* historyScenario(storage)
        const rows = () =>
          sql.unsafe<{ readonly event_id: string; readonly block_number: string; readonly log_index: number; readonly params: unknown; readonly transaction_fields: unknown; readonly checkpoint_id: string }>(
            `SELECT event_id, block_number::text AS block_number, log_index, params, transaction_fields, checkpoint_id::text AS checkpoint_id FROM "${schema}".chainstore_raw_events ORDER BY event_id`
          )
        assert.deepStrictEqual(yield* rows(), [
          { event_id: "1-102-0", block_number: "102", log_index: 0, params: { v: "1" }, transaction_fields: { hash: `0x${"ab".repeat(32)}` }, checkpoint_id: "2" },
          { event_id: "1-102-1", block_number: "102", log_index: 1, params: { v: "2" }, transaction_fields: { hash: `0x${"ab".repeat(32)}` }, checkpoint_id: "2" },
          { event_id: "1-103-0", block_number: "103", log_index: 0, params: { v: "3" }, transaction_fields: { hash: `0x${"ab".repeat(32)}` }, checkpoint_id: "3" }
        ])
        yield* storage.writeBatch(plan({ rollback: { targetCheckpointId: 2n, diffCheckpointId: 4n }, committed: 4n }))
        assert.deepStrictEqual((yield* rows()).map((r) => r.event_id), ["1-102-0", "1-102-1"])
      })))

  it.effect("a write of 50,000 rows takes as many statements as one of 1,000: round trips grow with tables, not rows", () =>
    withSchema(backend, (schema) =>
      Effect.gen(function*() {
        const storage = yield* Storage.Storage
        const log = yield* StatementLog
        yield* storage.initialize(indexer)
        const write = (n: number, from: bigint) =>
          Effect.gen(function*() {
            yield* log.clear
            const rows = Array.from({ length: n }, (_, i) => account(`acc-${i}`, BigInt(i), `o${i % 7}`, i))
            yield* storage.writeBatch(plan({
              inThreshold: true,
              entities: { Account: [...rows.map((r) => set(r, from)), ...rows.slice(0, n / 10).map((r) => Change.del<unknown>(r.id, from + 1n))] },
              effects: { price: rows.slice(0, n / 2).map((r) => ({ key: r.id, output: { usd: 1, source: "s" }, checkpointId: from })) },
              items: Array.from({ length: n }, (_, i) => event(100 + Number(from), i, { i: BigInt(i) })),
              checkpoints: [{ id: from, block: 100 + Number(from), events: n }, { id: from + 1n, block: 101 + Number(from), events: 0 }],
              progress: [{ chainId: 1, progressBlock: 101 + Number(from), sourceBlock: 200, eventsProcessed: n, firstEventBlock: 100 }]
            }))
            return yield* log.statements
          })
        const small = yield* write(1_000, 1n)
        const large = yield* write(50_000, 3n)
        assert.strictEqual(large.length, small.length)
        // One statement per step and table, whatever the row count.
        const kinds = large.map((s) => s.replace(/"[^"]*"\./g, "").match(/^(BEGIN|COMMIT|INSERT INTO "\w+|DELETE FROM "\w+|UPDATE "\w+)/)?.[0].replace(/"/g, ""))
        assert.deepStrictEqual(kinds, [
          "BEGIN",
          "INSERT INTO chainstore_history_account", // backfill of first-touched ids at checkpoint 0
          "INSERT INTO chainstore_history_account", // this run's steps
          "DELETE FROM account",
          "INSERT INTO account",
          "INSERT INTO chainstore_raw_events",
          "DELETE FROM chainstore_effect_price",
          "INSERT INTO chainstore_effect_price",
          "INSERT INTO chainstore_checkpoints",
          "UPDATE chainstore_chains",
          "UPDATE chainstore_state",
          "COMMIT"
        ])
        assert.strictEqual(countOf(yield* storage.status, "Account"), 45_000)
      }).pipe(Effect.provide(PgStorage.layer({ schema }).pipe(Layer.provideMerge(countingClient))))))
}
