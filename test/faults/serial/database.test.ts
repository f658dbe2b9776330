// The database fails under a running indexer: backends killed inside writes (the writer is held inside its write
// transaction by a lock, then its backend is terminated), killed on every attempt, and the whole cluster stopped.
// Runs alone (vitest.serial.config.ts): it disturbs every connection to the server.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Duration, Effect, Fiber, Layer, Logger, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, describe, expect, it } from "vitest"
import { Config, type Indexer, Runtime, SimChain } from "@chainstore/core"
import { Embedded, PgStorage } from "@chainstore/persistence"
import {
  blockedWriter,
  cli,
  committedPast,
  dropSchema,
  example,
  exampleTables,
  holdingWrites,
  postgresUrl,
  root,
  start,
  tempDir,
  terminateBackend,
  waitFor
} from "../../support/cli.js"
import * as Sim from "../../support/sim.js"

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
const expected = Sim.exampleTables(sim)
const runArgs = (schema: string, simText = sim) =>
  ["run", example, "--sim", simText, "--db", postgresUrl, "--schema", schema, "--metrics-port", "0"]

const admin = Embedded.layerPostgres({ url: Redacted.make(postgresUrl), maxConnections: 1 })

const pgCluster = (action: "start" | "stop") => {
  const version = fs.readdirSync("/etc/postgresql")[0]!
  execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", action, ...(action === "stop" ? ["-m", "fast"] : [])], { stdio: "ignore" })
}

/** Log messages of a run in this process, as text. */
const capturedLogs = (into: Array<string>) =>
  Logger.layer([Logger.make((options) => {
    const message = options.message
    into.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
  })])

describe("database connection killed mid-write", () => {
  it("a write whose backend is killed inside its transaction on three attempts is re-run with backoff; the run ends with the chain's tables", async () => {
    const schema = newSchema()
    const erc20 = (await import(path.join(root, "examples/erc20/indexer.ts"))).default as Indexer.Indexer
    // A block per 5 ms: the run is still writing after its first commit.
    const source = SimChain.source(Effect.runSync(SimChain.parse(`${sim},blockTimeMs=5`)))
    const simIndexer: Indexer.Indexer = { ...erc20, chains: erc20.chains.map((c) => ({ ...c, source })) }
    const logs: Array<string> = []
    const killed = await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const run = yield* Effect.forkChild(Runtime.run(simIndexer).pipe(
        Effect.provide(PgStorage.layer({ schema })),
        Effect.provide(Layer.fresh(Embedded.layerPostgres({ url: Redacted.make(postgresUrl) }))),
        Effect.provide(Config.layer({ batchSize: 2000, storageRetryBase: Duration.millis(50) })),
        Effect.provide(capturedLogs(logs))
      ))
      const finished = () => run.pollUnsafe() !== undefined
      yield* committedPast(sql, schema, 0, finished)
      // The next write is held inside its transaction and its backend terminated, on three attempts; the fourth may commit.
      const pids = yield* holdingWrites(sql, schema, Effect.gen(function*() {
        const pids: Array<number> = []
        while (pids.length < 3) {
          const pid = yield* blockedWriter(sql, finished)
          if (pid === undefined) break
          yield* terminateBackend(sql, pid)
          pids.push(pid)
        }
        return pids
      }))
      yield* Fiber.join(run)
      return pids
    }).pipe(Effect.scoped, Effect.provide(admin)))
    expect(killed).toHaveLength(3)
    expect(logs.filter((l) => l.startsWith("Storage writeBatch failed (") && l.endsWith("); trying again"))).toHaveLength(3)
    expect(await exampleTables({ _tag: "postgres", schema })).toEqual(expected)
  }, 180_000)
})

describe("database down beyond the retry budget", () => {
  it("killed on every attempt: exits 1 naming the failure, and a restart ends with the chain's tables", async () => {
    const schema = newSchema()
    const running = start(runArgs(schema, `${sim},blockTimeMs=5`), { cwd })
    const exited = () => running.child.exitCode !== null
    // After its first commit, every write is held inside its transaction and its backend terminated, until the run gives up.
    const kills = await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* committedPast(sql, schema, 0)
      return yield* holdingWrites(sql, schema, Effect.gen(function*() {
        let kills = 0
        for (let pid = yield* blockedWriter(sql, exited); pid !== undefined; pid = yield* blockedWriter(sql, exited)) {
          yield* terminateBackend(sql, pid)
          kills++
        }
        return kills
      }))
    }).pipe(Effect.scoped, Effect.provide(admin)))
    const result = await running.done
    expect(result.code).toBe(1)
    // Config.defaults.storageAttempts: one write, tried that often.
    expect(kills).toBe(Config.defaults.storageAttempts)
    expect(result.stderr).toMatch(/WriteFailed: Failed writing batch to the database: .*(terminat|connection|57P01)/i)
    expect(result.stderr.match(/Failed writing batch/g)?.length).toBe(1)
    const again = await cli(runArgs(schema), { cwd })
    expect(again.code, again.stderr).toBe(0)
    expect(await exampleTables({ _tag: "postgres", schema })).toEqual(expected)
  }, 180_000)

  it("cluster stopped: exits 1 naming the failure; after it is back a restart ends with the chain's tables", async () => {
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
  }, 180_000)
})
