import { execFile, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Errors } from "@chainstore/core"
import { Embedded } from "@chainstore/persistence"

// Created by the first open (and only then), so a filtered run that skips every test leaves nothing behind.
const root = path.join(os.tmpdir(), `cs-embedded-open-${process.pid}-${Date.now().toString(36)}`)
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const lockFile = (dataDir: string) => path.join(dataDir, "chainstore.lock")

/** The embedded client, open for the enclosing scope. */
const open = (dataDir: string) =>
  Effect.map(Layer.build(Embedded.layerEmbedded({ dataDir })), (context) => ({
    sql: Context.get(context, SqlClient.SqlClient),
    pg: Context.get(context, PgClient.PgClient)
  }))

/** Runs the open-and-query script in another node process (through tsx, as the CLI runs). */
const openInChild = (dataDir: string) =>
  Effect.callback<{ readonly code: number | null; readonly out: string }>((resume) => {
    const script = fileURLToPath(new URL("./fixtures/openEmbedded.ts", import.meta.url))
    const child = execFile(process.execPath, ["--conditions=source", "--import", "tsx", script, dataDir], { encoding: "utf8" }, (_error, stdout) => {
      resume(Effect.succeed({ code: child.exitCode, out: stdout }))
    })
  })

const hasPsql = spawnSync("psql", ["--version"]).status === 0

describe("Embedded PGlite", () => {
  const shared = path.join(root, "shared")

  it.effect("serves SQL from a worker thread on <dataDir>/.s.PGSQL.5432; data survives close and reopen", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const { pg, sql } = yield* open(shared)
        assert.strictEqual(pg.config.path, path.join(shared, ".s.PGSQL.5432"))
        assert.isTrue(fs.existsSync(path.join(shared, ".s.PGSQL.5432")))
        const [row] = yield* sql<{ readonly version: string }>`SELECT version() AS version`
        assert.include(row?.version, "PGlite")
        yield* sql`CREATE TABLE kept (v text)`
        yield* sql`INSERT INTO kept VALUES ('still here')`
      }))
      // Closed cleanly: the socket and the lock are gone.
      assert.isFalse(fs.existsSync(path.join(shared, ".s.PGSQL.5432")))
      assert.isFalse(fs.existsSync(lockFile(shared)))
      yield* Effect.scoped(Effect.gen(function*() {
        const { sql } = yield* open(shared)
        assert.deepStrictEqual(yield* sql`SELECT v FROM kept`, [{ v: "still here" }])
      }))
    }))

  it.effect("a fresh data dir is a copy of the template made at build time (its system identifier), not a new initdb", () =>
    Effect.gen(function*() {
      const dataDir = path.join(root, "fresh")
      const templates = fileURLToPath(new URL("../template", import.meta.url))
      const template = path.join(templates, fs.readdirSync(templates).find((f) => /^pgdata-[\d.]+$/.test(f))!)
      yield* Effect.scoped(Effect.gen(function*() {
        const { sql } = yield* open(dataDir)
        const [row] = yield* sql<{ readonly id: string }>`SELECT system_identifier::text AS id FROM pg_control_system()`
        // pg_control starts with the system identifier (little-endian uint64), which initdb draws from the clock.
        assert.strictEqual(row?.id, fs.readFileSync(path.join(template, "global/pg_control")).readBigUInt64LE(0).toString())
      }))
      assert.deepStrictEqual(fs.readdirSync(dataDir).filter((f) => f.includes(".tmp-")), [])
    }))

  it.effect("a second open of the data dir, in this process or another, fails at once naming the dir and the holder pid", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* open(shared)
      const error = yield* Effect.flip(Effect.scoped(open(shared)))
      assert.instanceOf(error, Errors.StorageError)
      assert.include(error.message, `data dir ${shared} is in use by process ${process.pid}`)
      const child = yield* openInChild(shared)
      assert.strictEqual(child.code, 1)
      const outcome = JSON.parse(child.out) as { readonly tag: string; readonly message: string }
      assert.strictEqual(outcome.tag, "StorageError")
      assert.include(outcome.message, `data dir ${shared} is in use by process ${process.pid}`)
    })))

  it.effect("psql can connect to the socket in the data dir while it runs", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* open(shared)
      const psql = spawnSync("psql", ["-h", shared, "-U", "postgres", "-d", "postgres", "-Atc", "SELECT v FROM kept"], { encoding: "utf8" })
      assert.strictEqual(psql.stdout.trim(), "still here", psql.stderr)
    })), { skip: !hasPsql })

  it.effect("a stale lock (its process is gone, or this pid from an earlier start) is taken over", () =>
    Effect.gen(function*() {
      const dead = spawnSync(process.execPath, ["-e", ""]).pid!
      for (const holder of [{ pid: dead, startedAt: 0 }, { pid: process.pid, startedAt: 0 }]) {
        fs.writeFileSync(lockFile(shared), JSON.stringify({ ...holder, token: "old" }))
        yield* Effect.scoped(Effect.gen(function*() {
          const { sql } = yield* open(shared)
          assert.deepStrictEqual(yield* sql`SELECT v FROM kept`, [{ v: "still here" }])
          assert.strictEqual((JSON.parse(fs.readFileSync(lockFile(shared), "utf8")) as { readonly pid: number }).pid, process.pid)
        }))
        assert.isFalse(fs.existsSync(lockFile(shared)))
      }
    }))

  it.effect("a data dir made by another PGlite major version is refused with a typed error", () =>
    Effect.gen(function*() {
      const dataDir = path.join(root, "old-major")
      fs.mkdirSync(path.join(dataDir, "pgdata"), { recursive: true })
      fs.writeFileSync(path.join(dataDir, "pgdata", "PG_VERSION"), "17\n")
      const error = yield* Effect.flip(Effect.scoped(open(dataDir)))
      assert.instanceOf(error, Errors.StorageError)
      assert.include(error.message, `${path.join(dataDir, "pgdata")} was made by a PGlite with PostgreSQL 17`)
      assert.include(error.message, `embeds PostgreSQL ${Embedded.pgliteMajorVersion}`)
      assert.isFalse(fs.existsSync(lockFile(dataDir)))
    }))

  it.effect("a data dir whose socket path would be too long gets a private 0700 socket dir, removed on close", () =>
    Effect.gen(function*() {
      const dataDir = path.join(root, "d".repeat(110))
      const socketDir = yield* Effect.scoped(Effect.gen(function*() {
        const { pg, sql } = yield* open(dataDir)
        const dir = path.dirname(pg.config.path!)
        assert.isTrue(dir.startsWith(os.tmpdir()))
        assert.strictEqual(fs.statSync(dir).mode & 0o777, 0o700)
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
        return dir
      }))
      assert.isFalse(fs.existsSync(socketDir))
    }))
})
