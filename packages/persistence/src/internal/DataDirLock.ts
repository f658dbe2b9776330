/**
 * The pid lock file of an embedded data dir: one process (and one layer in it) at a time. A lock whose holder
 * is gone — its pid is dead or a zombie, or it is this pid from an earlier start — is stale and taken over.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Result, type Scope } from "effect"
import { Errors } from "@chainstore/core"

export const fileName = "chainstore.lock"

interface Holder {
  readonly pid: number
  /** When the holder process started (ms since epoch): tells a reused pid from the original holder. */
  readonly startedAt: number
  readonly token: string
}

/** Holds the lock on `dataDir` until the scope closes. */
export const acquire = (dataDir: string): Effect.Effect<void, Errors.StorageError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => take(dataDir),
      catch: (cause) => new Errors.StorageError({ operation: "open", message: `cannot lock data dir ${dataDir}: ${String(cause)}`, isRetryable: false, cause })
    }).pipe(
      Effect.flatMap(Result.match({
        onSuccess: Effect.succeed,
        onFailure: (message) => Effect.fail(new Errors.StorageError({ operation: "open", message, isRetryable: false }))
      }))
    ),
    (holder) => Effect.sync(() => release(dataDir, holder))
  ).pipe(Effect.asVoid)

const processStartedAt = (): number => Date.now() - process.uptime() * 1000

// Two readings of the process start time differ by clock jitter only; a restarted process differs by far more.
const sameProcessStart = (a: number, b: number): boolean => Math.abs(a - b) < 50

/**
 * Whether `pid` runs. A process killed but not yet reaped by its parent (a zombie) still answers `kill(pid, 0)`, so
 * where /proc exists its state decides; a lock the kernel drops with its holder (flock) needs a native addon in Node.
 */
const isAlive = (pid: number): boolean => {
  const state = procState(pid)
  if (state !== undefined) return !deadStates.has(state)
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Zombie, and dead (`x` on Linux 2.6.33 to 3.13). */
const deadStates = new Set(["Z", "X", "x"])

/** The state letter of /proc/<pid>/stat, or undefined when it cannot be read (no /proc, or no such process). */
const procState = (pid: number): string | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // "pid (comm) state ...": comm may itself hold spaces and parentheses, so the state follows the last ")".
    return stat.charAt(stat.lastIndexOf(")") + 2) || undefined
  } catch {
    return undefined
  }
}

const read = (file: string): Holder | undefined => {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, "utf8"))
    if (typeof parsed !== "object" || parsed === null) return undefined
    const { pid, startedAt, token } = parsed as Record<string, unknown>
    return typeof pid === "number" && typeof startedAt === "number" && typeof token === "string" ? { pid, startedAt, token } : undefined
  } catch {
    return undefined
  }
}

const isHeld = (holder: Holder | undefined): holder is Holder =>
  holder !== undefined && isAlive(holder.pid) && (holder.pid !== process.pid || sameProcessStart(holder.startedAt, processStartedAt()))

// Synchronous file calls, run inside Effect.try by `acquire`: fs errors throw, a held lock is a failure message.
const take = (dataDir: string): Result.Result<Holder, string> => {
  fs.mkdirSync(dataDir, { recursive: true })
  const file = path.join(dataDir, fileName)
  const holder: Holder = { pid: process.pid, startedAt: processStartedAt(), token: randomUUID() }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(holder), { flag: "wx", mode: 0o600 })
      return Result.succeed(holder)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
      const current = read(file)
      if (isHeld(current)) {
        const who = current.pid === process.pid ? " (this process)" : ""
        return Result.fail(`data dir ${dataDir} is in use by process ${current.pid}${who}; stop it first (lock file ${file})`)
      }
      fs.rmSync(file, { force: true })
    }
  }
  return Result.fail(`data dir ${dataDir}: another process took the lock file ${file} first`)
}

const release = (dataDir: string, holder: Holder): void => {
  const file = path.join(dataDir, fileName)
  if (read(file)?.token === holder.token) fs.rmSync(file, { force: true })
}
