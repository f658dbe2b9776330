import { assert, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Redacted } from "effect"
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "effect/sql"
import { Errors, Storage } from "@chainstore/core"
import { Embedded, PgStorage } from "@chainstore/persistence"
import { sqlSuite, storageSuite } from "./conformance.js"
import { freshSchema, indexer, postgresClient, postgresUrl, sqlBackend } from "./fixtures.js"

const backend = sqlBackend("postgres")

layer(postgresClient, { timeout: "30 seconds" })("Storage contract: PgStorage on Postgres", (it) => {
  storageSuite(it, backend)
  sqlSuite(it, backend)

  it.effect("a second writer on the same schema is refused at once, naming the schema", () => {
    const schema = freshSchema()
    const initialize = Effect.gen(function*() {
      const storage = yield* Storage.Storage
      return yield* storage.initialize(indexer)
    })
    return Effect.gen(function*() {
      yield* initialize
      const second = yield* Effect.flip(initialize.pipe(Effect.provide(PgStorage.layer({ schema }))))
      assert.instanceOf(second, Errors.StorageError)
      assert.include(second.message, `schema "${schema}" is in use by another chainstore process`)
    }).pipe(Effect.provide(PgStorage.layer({ schema })), Effect.ensuring(backend.drop(schema)))
  })

  it.effect("a session the server terminates (pg_terminate_backend) mid-query is a retryable StorageError", () => {
    const schema = freshSchema()
    const application = `cs-test-${schema}`
    const waiting = (sql: SqlClient.SqlClient) =>
      sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${application} AND wait_event_type = 'Lock'`
    return Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const built = yield* Layer.build(PgStorage.layer({ schema }).pipe(
        Layer.provide(PgClient.layer({ url: postgresUrl, applicationName: application }))
      ))
      const storage = Context.get(built, Storage.Storage)
      yield* storage.initialize(indexer)
      // The load waits on a lock held here, so it is mid-query when its session is terminated.
      const error = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`LOCK TABLE "${schema}"."account" IN ACCESS EXCLUSIVE MODE`)
        const load = yield* Effect.forkChild(Effect.flip(storage.loadByIds("Account", ["a"])))
        yield* waiting(sql).pipe(Effect.repeat({ until: (rows) => (rows[0]?.n ?? 0) > 0 }))
        yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${application} AND wait_event_type = 'Lock'`
        return yield* Fiber.join(load)
      }))
      assert.instanceOf(error, Errors.StorageError)
      assert.isTrue(error.isRetryable, error.message)
      assert.match(error.message, /57P01|ConnectionError/)
    }).pipe(Effect.scoped, Effect.ensuring(backend.drop(schema)))
  })
})

layer(Layer.empty)("Postgres client errors", (it) => {
  it.effect("a failed connection never shows the password", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`SELECT 1`
      }).pipe(Effect.provide(Embedded.layerPostgres({ url: Redacted.make("postgres://postgres:hunter2-secret@127.0.0.1:1/test") }))))
      assert.notInclude(JSON.stringify(error), "hunter2-secret")
      assert.notInclude(String(error), "hunter2-secret")
    }))
})
