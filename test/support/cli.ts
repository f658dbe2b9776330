/** Runs the real `chainstore` command as a child process, reads what it wrote, and kills it (or its database backend) at chosen events. */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import { PgClient } from "@effect/sql-pg"
import { Clock, Effect, Layer, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { Embedded } from "@chainstore/persistence"
import { byId } from "./sim.js"

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
export const bin = path.join(root, "node_modules/.bin/chainstore")
export const example = path.join(root, "examples/erc20")
export const postgresUrl = "postgres://postgres@127.0.0.1:5432/test"

export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly done: Promise<Result>
}

/** Starts `chainstore ...args` in `cwd`; `done` settles when it exits (killed after `timeoutMs`). */
export const start = (args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env?: Record<string, string>; readonly timeoutMs?: number }): Running => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d) => (stdout += d))
  child.stderr!.on("data", (d) => (stderr += d))
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000)
  const done = new Promise<Result>((resolve) =>
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  )
  return { child, output: () => stdout + stderr, done }
}

export const cli = (args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env?: Record<string, string>; readonly timeoutMs?: number }) =>
  start(args, options).done

export const tempDir = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** Resolves once `predicate` holds on what `probe` returns, polling every `everyMs` (up to `timeoutMs`). */
export const waitFor = async <A>(probe: () => Promise<A>, predicate: (a: A) => boolean, timeoutMs = 60_000, everyMs = 100): Promise<A> => {
  const found = await poll(probe, predicate, timeoutMs, everyMs, () => false)
  return found as A
}

/** As `waitFor`, while `running` runs: undefined once it has exited without the condition holding. */
export const waitWhileRunning = <A>(running: Running, probe: () => Promise<A>, predicate: (a: A) => boolean, timeoutMs = 120_000, everyMs = 25): Promise<A | undefined> =>
  poll(probe, predicate, timeoutMs, everyMs, () => running.child.exitCode !== null || running.child.signalCode !== null)

const poll = async <A>(probe: () => Promise<A>, predicate: (a: A) => boolean, timeoutMs: number, everyMs: number, stop: () => boolean): Promise<A | undefined> => {
  const deadline = Date.now() + timeoutMs
  let last: A | undefined
  while (Date.now() < deadline) {
    if (stop()) return undefined
    try {
      last = await probe()
      if (predicate(last)) return last
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, everyMs))
  }
  throw new Error(`condition not met in ${timeoutMs} ms; last: ${String(last)}`)
}

/** The value of a metric's first series in Prometheus text; NaN when it is absent. */
export const metricValue = (text: string, name: string): number =>
  Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN)

/** `/metrics` of a run's metrics server on `port`. */
export const metrics = (port: number): Promise<string> => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text())

export type Target = { readonly _tag: "pglite"; readonly dataDir: string } | { readonly _tag: "postgres"; readonly schema: string }

/** The CLI flags that select a target database. */
export const targetArgs = (target: Target): Array<string> =>
  target._tag === "pglite" ? ["--data-dir", target.dataDir] : ["--db", postgresUrl, "--schema", target.schema]

/** Runs SQL against a target (after the CLI exited: the embedded data dir is locked while a run is active). */
export const query = <A>(target: Target, f: (sql: SqlClient.SqlClient, schema: string) => Effect.Effect<A, unknown>): Promise<A> => {
  const client = target._tag === "pglite"
    ? Embedded.layerEmbedded({ dataDir: target.dataDir })
    : Embedded.layerPostgres({ url: Redacted.make(postgresUrl) })
  return Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* f(sql, target._tag === "postgres" ? target.schema : "public")
    }).pipe(Effect.scoped, Effect.provide(Layer.fresh(client)))
  )
}

/** The example's tables as plain rows sorted by id, to compare with `sim.exampleTables`. */
export const exampleTables = (target: Target) =>
  query(target, (sql, schema) =>
    Effect.all({
      accounts: Effect.map(sql.unsafe<{ id: string; balance: string }>(`select id, balance::text as balance from "${schema}".account`), byId),
      tokens: Effect.map(
        sql.unsafe<{ id: string; total_supply: string; transfers: number }>(`select id, total_supply::text as total_supply, transfers::int as transfers from "${schema}".token`),
        byId
      ),
      transfers: sql.unsafe<{ n: string }>(`select count(*)::text as n from "${schema}".transfer`)
    }))

export const dropSchema = (schema: string) =>
  Effect.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`drop schema if exists "${schema}" cascade`)
  }).pipe(Effect.scoped, Effect.provide(Layer.fresh(Embedded.layerPostgres({ url: Redacted.make(postgresUrl) })))))

// ---------------------------------------------------------------------------------------------------------------
// Kills inside writes

/** Re-runs `probe` every 20 ms until it gives a value, or undefined once `stop()` holds; dies after `timeoutMs`. */
const eventually = <A, E>(probe: Effect.Effect<A | undefined, E>, stop: () => boolean = () => false, timeoutMs = 120_000) =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + timeoutMs
    while (!stop()) {
      const found = yield* probe
      if (found !== undefined) return found
      if ((yield* Clock.currentTimeMillis) > deadline) return yield* Effect.die(new Error(`no event in ${timeoutMs} ms`))
      yield* Effect.sleep("20 millis")
    }
    return undefined
  })

/** The progress `schema` stores for its chain once a commit takes it past `block` (its tables may not exist yet). */
export const committedPast = (sql: SqlClient.SqlClient, schema: string, block: number, stop: () => boolean = () => false) =>
  eventually(
    sql.unsafe<{ progress: number }>(`select progress_block::int as progress from "${schema}".chainstore_chains`).pipe(
      Effect.map((rows) => (rows[0] !== undefined && rows[0].progress > block ? rows[0].progress : undefined)),
      Effect.catch(() => Effect.succeed(undefined))
    ),
    stop
  )

/** A backend waiting on a lock this session holds (the held writer), once one waits; undefined if `stop()` holds first. */
export const blockedWriter = (sql: SqlClient.SqlClient, stop: () => boolean = () => false) =>
  // pg_locks is read live (pg_stat_activity keeps one snapshot per transaction).
  eventually(Effect.map(sql.unsafe<{ pid: number }>(`select pid from pg_locks where not granted and pg_backend_pid() = any(pg_blocking_pids(pid))`), (rows) => rows[0]?.pid), stop)

/** Waits until backend `pid` has ended. */
const backendGone = (sql: SqlClient.SqlClient, pid: number) =>
  eventually(Effect.map(
    // Within a transaction pg_stat_activity is a snapshot taken at its first read: drop it each time.
    Effect.andThen(sql.unsafe(`select pg_stat_clear_snapshot()`), sql.unsafe(`select 1 from pg_stat_activity where pid = $1`, [pid])),
    (rows) => (rows.length === 0 ? true : undefined)
  ))

/** The real fault: terminates backend `pid` (pg_terminate_backend, as an admin or a failover does) and waits until it is gone. */
export const terminateBackend = (sql: SqlClient.SqlClient, pid: number) =>
  Effect.andThen(sql.unsafe(`select pg_terminate_backend($1)`, [pid]), backendGone(sql, pid))

/**
 * Runs `use` in a transaction holding a SHARE lock on `schema`'s chainstore_state: every batch write updates it inside
 * its transaction, after writing its rows, so the writer waits there (see `blockedWriter`) until the lock goes with `use`'s end.
 */
export const holdingWrites = <A, E, R>(sql: SqlClient.SqlClient, schema: string, use: Effect.Effect<A, E, R>) =>
  sql.withTransaction(Effect.andThen(sql.unsafe(`lock table "${schema}".chainstore_state in share mode`), use))

/** Whether a kill landed inside a write transaction (which then could not commit). */
export interface Kill {
  readonly insideWrite: boolean
}

/**
 * SIGKILLs `running`, which indexes into `target`, while its writer is inside a write transaction, and waits for it to
 * exit (not inside a write when the run ends before writing again).
 * Postgres: the writer is held by `holdingWrites` until the kill; after it the dead client's backend ends and rolls back.
 * PGlite (no second session to lock from): the kill goes at the first write to the table files from now on, a
 * transaction storing rows; it was inside it when no WAL was written from then to the exit (a commit writes WAL first).
 */
export const killInsideWrite = (running: Running, target: Target): Promise<Kill> =>
  target._tag === "postgres" ? killHeldWriter(running, target.schema) : killAtNextTableWrite(running, target.dataDir)

const killHeldWriter = (running: Running, schema: string): Promise<Kill> =>
  Effect.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const exited = () => running.child.exitCode !== null || running.child.signalCode !== null
    const writer = yield* holdingWrites(sql, schema, Effect.gen(function*() {
      const pid = yield* blockedWriter(sql, exited)
      if (pid === undefined) return undefined
      running.child.kill("SIGKILL")
      yield* Effect.promise(() => running.done)
      return pid
    }))
    if (writer === undefined) return { insideWrite: false }
    // The next run must not meet the orphaned transaction's row locks.
    yield* backendGone(sql, writer)
    return { insideWrite: true }
  }).pipe(Effect.scoped, Effect.provide(Layer.fresh(Embedded.layerPostgres({ url: Redacted.make(postgresUrl), maxConnections: 1 })))))

const killAtNextTableWrite = (running: Running, dataDir: string): Promise<Kill> => {
  const pgdata = path.join(dataDir, "pgdata")
  const wal = () =>
    fs.readdirSync(path.join(pgdata, "pg_wal")).filter((f) => /^[0-9A-F]{24}$/.test(f)).map((f) => `${f}:${fs.statSync(path.join(pgdata, "pg_wal", f)).mtimeMs}`).join()
  const armed = wal()
  let killed = false
  const watcher = fs.watch(path.join(pgdata, "base"), { recursive: true }, () => {
    killed = true
    running.child.kill("SIGKILL")
  })
  return running.done.then(() => {
    watcher.close()
    return { insideWrite: killed && wal() === armed }
  })
}

/**
 * Waits until the run has committed `block` — polling the chain's progress in the database every 10 ms on one
 * connection while the run holds it (PGlite: through the socket the run serves) — then kills it with SIGKILL.
 * Fails, with the run's output, if it exits first or `timeoutMs` passes.
 */
export const killAfterCommit = async (running: Running, target: Target, chainId: number, block: number, timeoutMs = 90_000): Promise<void> => {
  let exited: Result | undefined
  void running.done.then((result) => (exited = result))
  let committed: number | undefined
  const client = target._tag === "pglite"
    ? PgClient.layer({ path: path.join(target.dataDir, Embedded.socketFileName), username: "postgres", database: "postgres", maxConnections: 1 })
    : PgClient.layer({ url: Redacted.make(postgresUrl), maxConnections: 1 })
  const schema = target._tag === "postgres" ? target.schema : "public"
  const poll = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    while (exited === undefined) {
      // Until the run has made its tables there is nothing to read.
      const rows = yield* sql.unsafe<{ progress_block: string }>(
        `select progress_block::text as progress_block from "${schema}".chainstore_chains where chain_id = ${chainId}`
      ).pipe(Effect.orElseSucceed(() => []))
      if (rows[0] !== undefined) committed = Number(rows[0].progress_block)
      if (committed !== undefined && committed >= block) return true
      yield* Effect.sleep("10 millis")
    }
    return false
  })
  const reached = await Effect.runPromise(poll.pipe(
    Effect.scoped,
    Effect.provide(Layer.fresh(client)),
    // PGlite's socket is there only once the run serves it: connecting is retried until then.
    Effect.retry({ schedule: Schedule.spaced("50 millis"), while: () => exited === undefined }),
    Effect.timeout(timeoutMs),
    Effect.orElseSucceed(() => false)
  ))
  running.child.kill("SIGKILL")
  const result = await running.done
  if (!reached) {
    const why = exited === undefined ? `not committed in ${timeoutMs} ms` : `the run exited with code ${exited.code} first`
    throw new Error(`block ${block}: ${why} (committed: ${committed}):\n${(result.stdout + result.stderr).slice(-3_000)}`)
  }
  expect(result.code, "the run was to die by SIGKILL, not exit").toBeNull()
}
