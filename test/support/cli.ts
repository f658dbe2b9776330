/** Runs the real `chainstore` command as a child process, and reads what it wrote. */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { Embedded } from "@chainstore/persistence"

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
export const bin = path.join(root, "node_modules/.bin/chainstore")
export const example = path.join(root, "examples/erc20")
export const postgresUrl = "postgres://postgres@127.0.0.1:5432/test"

export interface Result {
  readonly code: number | null
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
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
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
  const deadline = Date.now() + timeoutMs
  let last: A | undefined
  while (Date.now() < deadline) {
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

/** The example's tables as sorted plain rows, for equality between runs. */
export const exampleTables = (target: Target) =>
  query(target, (sql, schema) =>
    Effect.all({
      accounts: sql.unsafe<{ id: string; balance: string }>(`select id, balance::text as balance from "${schema}".account order by id`),
      tokens: sql.unsafe<{ id: string; total_supply: string; transfers: number }>(
        `select id, total_supply::text as total_supply, transfers from "${schema}".token order by id`
      ),
      transfers: sql.unsafe<{ n: string }>(`select count(*)::text as n from "${schema}".transfer`)
    }))

export const dropSchema = (schema: string) =>
  Effect.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`drop schema if exists "${schema}" cascade`)
  }).pipe(Effect.scoped, Effect.provide(Layer.fresh(Embedded.layerPostgres({ url: Redacted.make(postgresUrl) })))))
