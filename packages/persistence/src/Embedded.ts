/**
 * Database clients for PgStorage (design.md §7): embedded PGlite in a worker thread, served on a unix socket
 * and reached with the ordinary PgClient, or a Postgres server by URL. Both give the same SqlClient.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import { Duration, Effect, Layer, Metric, type Redacted, Scope } from "effect"
import type { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Errors, Metrics } from "@chainstore/core"
import * as DataDirLock from "./internal/DataDirLock.js"

export interface EmbeddedOptions {
  /** Where PGlite keeps its files, the socket and the lock (default `.chainstore` under the working directory). */
  readonly dataDir?: string | undefined
}

export interface PostgresOptions {
  readonly url: Redacted.Redacted
  readonly maxConnections?: number | undefined
  /** Session settings every connection starts with (e.g. `statement_timeout` for a read-only API server). */
  readonly startupParameters?: Readonly<Record<string, string>> | undefined
}

/** The PostgreSQL major version of the pinned PGlite (0.5.14); a data dir of another major cannot be opened. */
export const pgliteMajorVersion = "18"

/** The socket file name psql and libpq look for in a socket directory. */
export const socketFileName = ".s.PGSQL.5432"

/** Unix socket paths are limited to ~107 bytes; longer data dir paths get a private temp dir for the socket. */
const maxSocketPath = 100

/**
 * PGlite on `dataDir` in a worker thread, reached through a unix socket: the socket is `<dataDir>/.s.PGSQL.5432`
 * (so `psql -h <dataDir> -U postgres postgres` works), or in a private temp dir when that path is too long.
 * A pid lock file keeps a second process (or layer) off the data dir; the worker closes with the scope.
 */
export const layerEmbedded = (options: EmbeddedOptions = {}): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, Errors.StorageError> =>
  PgClient.layerFrom(Effect.gen(function*() {
    const dataDir = path.resolve(options.dataDir ?? ".chainstore")
    yield* DataDirLock.acquire(dataDir)
    const pgdata = path.join(dataDir, "pgdata")
    yield* checkVersion(pgdata)
    const socketDir = yield* socketDirectory(dataDir)
    const socketPath = path.join(socketDir, socketFileName)
    yield* reportMemory(yield* startWorker(pgdata, socketPath))
    // Two connections: PgStorage's advisory lock keeps one; PGlite runs one query at a time anyway.
    return yield* PgClient.make({ path: socketPath, username: "postgres", database: "postgres", maxConnections: 2 }).pipe(
      Effect.mapError((error) => openError(`cannot connect to embedded PGlite at ${socketPath}: ${error.message}`, error))
    )
  }))

/** A Postgres server by URL. The password never appears in errors. */
export const layerPostgres = (options: PostgresOptions): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, Errors.StorageError> =>
  PgClient.layerFrom(
    PgClient.make({
      url: options.url,
      maxConnections: options.maxConnections ?? 10,
      ...(options.startupParameters === undefined ? {} : { startupParameters: options.startupParameters })
    }).pipe(
      Effect.mapError((error) => openError(`cannot connect to Postgres: ${error.reason._tag}`, error))
    )
  )

const openError = (message: string, cause?: unknown) =>
  new Errors.StorageError({ operation: "open", message, isRetryable: false, ...(cause === undefined ? {} : { cause }) })

const checkVersion = (pgdata: string) =>
  Effect.flatMap(
    Effect.try({
      try: () => (fs.existsSync(path.join(pgdata, "PG_VERSION")) ? fs.readFileSync(path.join(pgdata, "PG_VERSION"), "utf8").trim() : undefined),
      catch: (cause) => openError(`cannot read ${pgdata}: ${String(cause)}`, cause)
    }),
    (version) =>
      version === undefined || version === pgliteMajorVersion
        ? Effect.void
        : Effect.fail(openError(
          `data dir ${pgdata} was made by a PGlite with PostgreSQL ${version}; this chainstore embeds PostgreSQL ${pgliteMajorVersion} and cannot open it. Move it away (or run chainstore db reset) to start a new one.`
        ))
  )

/** The data dir itself when the socket path fits, else a private (0700) temp dir removed with the scope. */
const socketDirectory = (dataDir: string) =>
  path.join(dataDir, socketFileName).length <= maxSocketPath
    ? Effect.as(removeSocket(dataDir), dataDir)
    : Effect.acquireRelease(
      Effect.try({
        try: () => {
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chainstore-"))
          fs.chmodSync(dir, 0o700)
          return dir
        },
        catch: (cause) => openError(`cannot create a socket directory: ${String(cause)}`, cause)
      }),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )

// A socket file left by a crashed run would make listen fail; the lock says no live process owns it.
const removeSocket = (dir: string) =>
  Effect.try({
    try: () => fs.rmSync(path.join(dir, socketFileName), { force: true }),
    catch: (cause) => openError(`cannot remove the stale socket in ${dir}: ${String(cause)}`, cause)
  })

type WorkerMessage =
  | { readonly type: "ready" }
  | { readonly type: "closed" }
  | { readonly type: "error"; readonly message: string }
  // bytes: undefined until PGlite is up (no figure is better than a made-up 0).
  | { readonly type: "memory"; readonly bytes: number | undefined }

/** Sets the chainstore_pglite_memory_bytes gauge from the worker every 5 s while the scope lasts. */
const reportMemory = (worker: Worker) =>
  Effect.callback<number | undefined>((resume) => {
    const onMessage = (message: WorkerMessage) => {
      if (message.type !== "memory") return
      worker.off("message", onMessage)
      resume(Effect.succeed(message.bytes))
    }
    worker.on("message", onMessage)
    worker.postMessage({ type: "memory" })
    return Effect.sync(() => worker.off("message", onMessage))
  }).pipe(
    Effect.flatMap((bytes) => (bytes === undefined ? Effect.void : Metric.update(Metrics.pgliteMemory, bytes))),
    Effect.andThen(Effect.sleep("5 seconds")),
    Effect.forever,
    Effect.forkScoped
  )

/** Starts the PGlite worker and waits until it serves the socket; the scope's close stops it cleanly. */
const startWorker = (pgdata: string, socketPath: string): Effect.Effect<Worker, Errors.StorageError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Worker, Errors.StorageError>((resume) => {
      const worker = new Worker(new URL("./internal/pgliteWorker.mjs", import.meta.url), {
        workerData: { dataDir: pgdata, socketPath, maxConnections: 4 }
      })
      const onMessage = (message: WorkerMessage) => {
        cleanup()
        if (message.type === "ready") resume(Effect.succeed(worker))
        else resume(Effect.andThen(Effect.promise(() => worker.terminate()), Effect.fail(openError(`PGlite could not open ${pgdata}: ${message.type === "error" ? message.message : message.type}`))))
      }
      const onError = (error: Error) => {
        cleanup()
        resume(Effect.andThen(Effect.promise(() => worker.terminate()), Effect.fail(openError(`the PGlite worker failed: ${error.message}`, error))))
      }
      const onExit = (code: number) => {
        cleanup()
        resume(Effect.fail(openError(`the PGlite worker exited with code ${code} before serving ${socketPath}`)))
      }
      const cleanup = () => {
        worker.off("message", onMessage)
        worker.off("error", onError)
        worker.off("exit", onExit)
      }
      worker.on("message", onMessage)
      worker.on("error", onError)
      worker.on("exit", onExit)
      return Effect.promise(() => worker.terminate())
    }),
    (worker) =>
      Effect.callback<void>((resume) => {
        const done = () => resume(Effect.void)
        worker.on("message", (message: WorkerMessage) => message.type !== "memory" && done())
        worker.once("exit", done)
        worker.postMessage({ type: "close" })
      }).pipe(
        Effect.timeoutOrElse({ duration: Duration.seconds(10), orElse: () => Effect.void }),
        Effect.andThen(Effect.promise(() => worker.terminate())),
        Effect.asVoid
      )
  )
