import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { Errors } from "@chainstore/core"
import * as DataDirLock from "../src/internal/DataDirLock.js"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "cs-lock-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const hasProc = fs.existsSync("/proc/self/stat")

const procState = (pid: number): string => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.charAt(stat.lastIndexOf(")") + 2)
}

/** Runs `sh -c script` for the scope (killed when it closes) and returns the pid it prints first. */
const printedPid = (script: string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly child: ChildProcess; readonly pid: number }>((resume) => {
      const child = spawn("sh", ["-c", script], { stdio: ["ignore", "pipe", "ignore"] })
      child.stdout!.once("data", (chunk: Buffer) => resume(Effect.succeed({ child, pid: Number(chunk.toString().trim()) })))
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  ).pipe(Effect.map(({ pid }) => pid))

/** A lock file naming `pid` as its holder, as a killed `chainstore run` leaves it. */
const lockedBy = (name: string, pid: number) => {
  const dataDir = path.join(root, name)
  fs.mkdirSync(dataDir, { recursive: true })
  fs.writeFileSync(path.join(dataDir, DataDirLock.fileName), JSON.stringify({ pid, startedAt: 0, token: "old" }))
  return dataDir
}

const holderPid = (dataDir: string) =>
  (JSON.parse(fs.readFileSync(path.join(dataDir, DataDirLock.fileName), "utf8")) as { readonly pid: number }).pid

describe("DataDirLock", () => {
  it.live("a holder killed but not yet reaped by its parent (a zombie) counts as gone: the lock is taken over", () =>
    Effect.scoped(Effect.gen(function*() {
      // sh starts the holder in the background, prints its pid and becomes `sleep`, which never reaps it.
      const holder = yield* printedPid("sleep 60 & echo $!; exec sleep 60")
      process.kill(holder, "SIGKILL")
      const state = yield* Effect.sync(() => procState(holder)).pipe(
        Effect.repeat({ until: (state) => state === "Z", schedule: Schedule.spaced("10 millis"), times: 500 })
      )
      assert.strictEqual(state, "Z")
      // What made the restart fail: the zombie still answers kill 0.
      assert.isTrue(process.kill(holder, 0))
      const dataDir = lockedBy("zombie", holder)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* DataDirLock.acquire(dataDir)
        assert.strictEqual(holderPid(dataDir), process.pid)
      }))
      assert.isFalse(fs.existsSync(path.join(dataDir, DataDirLock.fileName)))
    })), { skip: !hasProc })

  it.live("a running holder keeps the lock", () =>
    Effect.scoped(Effect.gen(function*() {
      const holder = yield* printedPid("echo $$; exec sleep 60")
      const dataDir = lockedBy("running", holder)
      const error = yield* Effect.flip(Effect.scoped(DataDirLock.acquire(dataDir)))
      assert.instanceOf(error, Errors.StorageError)
      assert.include(error.message, `data dir ${dataDir} is in use by process ${holder}`)
      assert.strictEqual(holderPid(dataDir), holder)
    })))
})
