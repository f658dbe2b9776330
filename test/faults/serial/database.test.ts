// The database fails under a running indexer: backends killed inside writes, killed on every attempt, and the
// whole cluster stopped. Runs alone (vitest.serial.config.ts): it disturbs every connection to the server.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Duration, Effect, Fiber, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, describe, expect, it } from "vitest"
import { Config, Runtime } from "@chainstore/core"
import { Embedded, PgStorage } from "@chainstore/persistence"
import { cli, dropSchema, exampleTables, example, postgresUrl, root, start, tempDir, waitFor } from "../../support/cli.js"

const cwd = tempDir("cs-db-faults-")
const schemas: Array<string> = []
afterAll(async () => {
  for (const schema of schemas) await dropSchema(schema)
})
const newSchema = () => {
  const schema = `cs_dbf_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return schema
}
const sim = "blocks=300,eventsPerBlock=100,accounts=500,seed=5"
const runArgs = (schema: string, simText = sim) =>
  ["run", example, "--sim", simText, "--db", postgresUrl, "--schema", schema, "--metrics-port", "0"]

/** Terminates backends working inside a transaction on `schema`'s tables (the writer), from another session. */
const killWriters = (sql: SqlClient.SqlClient, schema: string) =>
  Effect.map(
    sql.unsafe<{ pid: number }>(
      `select pg_terminate_backend(pid) as killed, pid from pg_stat_activity
       where datname = 'test' and pid <> pg_backend_pid() and xact_start is not null
         and query ilike $1 and query ~* '^\\s*(insert|delete|update)'`,
      [`%"${schema}"%`]
    ),
    (rows) => rows.length
  )

const admin = Embedded.layerPostgres({ url: Redacted.make(postgresUrl), maxConnections: 1 })

const pgCluster = (action: "start" | "stop") => {
  const version = fs.readdirSync("/etc/postgresql")[0]!
  execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", action, ...(action === "stop" ? ["-m", "fast"] : [])], { stdio: "ignore" })
}

const reference = (() => {
  let tables: Promise<Awaited<ReturnType<typeof exampleTables>>> | undefined
  return () => {
    tables ??= (async () => {
      const schema = newSchema()
      const result = await cli(runArgs(schema), { cwd })
      expect(result.code, result.stderr).toBe(0)
      return exampleTables({ _tag: "postgres", schema })
    })()
    return tables
  }
})()

describe("database connection killed mid-write", () => {
  it("re-runs the transaction with backoff and ends equal to an uninterrupted run", async () => {
    const expected = await reference()
    const schema = newSchema()
    const indexer = (await import(path.join(root, "examples/erc20/indexer.ts"))).default
    const { SimChain } = await import("@chainstore/core")
    const params = Object.fromEntries(sim.split(",").map((kv) => kv.split("=")).map(([k, v]) => [k!, Number(v)]))
    const simIndexer = { ...indexer, chains: indexer.chains.map((c: { endBlock?: number }) => ({ ...c, source: SimChain.source(params) })) }
    const kills = await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      let killed = 0
      const killer = yield* Effect.forkChild(Effect.gen(function*() {
        while (killed < 3) {
          killed += yield* killWriters(sql, schema)
          yield* Effect.sleep("5 millis")
        }
      }))
      yield* Runtime.run(simIndexer).pipe(
        Effect.provide(PgStorage.layer({ schema })),
        Effect.provide(Layer.fresh(Embedded.layerPostgres({ url: Redacted.make(postgresUrl) }))),
        Effect.provide(Config.layer({ batchSize: 2000, storageRetryBase: Duration.millis(50) }))
      )
      yield* Fiber.interrupt(killer)
      return killed
    }).pipe(Effect.scoped, Effect.provide(admin)))
    expect(kills).toBeGreaterThanOrEqual(1)
    expect(await exampleTables({ _tag: "postgres", schema })).toEqual(expected)
  })
})

describe("database down beyond the retry budget", () => {
  it("killed on every attempt: exits 1 naming the failure, and a restart ends equal to an uninterrupted run", async () => {
    const expected = await reference()
    const schema = newSchema()
    const running = start(runArgs(schema, `${sim},blockTimeMs=5`), { cwd })
    await waitFor(async () => running.output(), (o) => o.includes("Indexing into"))
    let kills = 0
    const killing = Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      while (running.child.exitCode === null) {
        kills += yield* killWriters(sql, schema)
        yield* Effect.sleep("2 millis")
      }
    }).pipe(Effect.scoped, Effect.provide(admin)))
    const result = await running.done
    await killing
    expect(result.code).toBe(1)
    expect(kills).toBeGreaterThanOrEqual(5)
    expect(result.stderr).toMatch(/WriteFailed: Failed writing batch to the database: .*(terminat|connection|57P01)/i)
    expect(result.stderr.match(/Failed writing batch/g)?.length).toBe(1)
    const again = await cli(runArgs(schema), { cwd })
    expect(again.code, again.stderr).toBe(0)
    expect(await exampleTables({ _tag: "postgres", schema })).toEqual(expected)
  })

  it("cluster stopped: exits 1 naming the failure; after it is back a restart ends equal to an uninterrupted run", async () => {
    const expected = await reference()
    const schema = newSchema()
    const running = start(runArgs(schema, `${sim},blockTimeMs=40`), { cwd })
    await waitFor(async () => running.output(), (o) => o.includes("chain 1337: block"), 60_000)
    pgCluster("stop")
    let result
    try {
      result = await running.done
    } finally {
      pgCluster("start")
      await waitFor(() => cli(["db", "status", example, "--db", postgresUrl, "--schema", schema, "--json"], { cwd }), (r) => r.code === 0, 60_000, 500)
    }
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/Failed writing batch to the database|StorageError/)
    const again = await cli(runArgs(schema), { cwd })
    expect(again.code, again.stderr).toBe(0)
    expect(await exampleTables({ _tag: "postgres", schema })).toEqual(expected)
  })
})
