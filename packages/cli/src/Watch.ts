/**
 * Watch: the changes to an indexer's files over a whole dev session. Directories are watched, not files: editors save
 * by writing a new file and renaming it over the old one, which ends a watch on the file itself. Changes are queued
 * from the start, so a save made while dev rebuilds or restarts is not lost.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Duration, Effect, Queue, type Scope } from "effect"

export interface Watch {
  /** Watches these files' directories too (the files of the last build). */
  readonly add: (files: ReadonlyArray<string>) => Effect.Effect<void>
  /** The next changed file that `relevant` accepts, once changes have settled; earlier changes are dropped. */
  readonly next: (relevant: (file: string) => boolean) => Effect.Effect<string>
}

/** Quiet time after a change before reporting it: an editor's save is several events, a formatter adds more. */
const settle = Duration.millis(150)

export const make: Effect.Effect<Watch, never, Scope.Scope> = Effect.gen(function*() {
  const context = yield* Effect.context<never>()
  const changes = yield* Queue.unbounded<string>()
  const watchers = new Map<string, fs.FSWatcher>()
  yield* Effect.addFinalizer(() => Effect.sync(() => {
    for (const w of watchers.values()) w.close()
  }))
  const watchDir = (dir: string) =>
    Effect.suspend(() => {
      if (watchers.has(dir)) return Effect.void
      return Effect.try({
        try: () => fs.watch(dir, (_, name) => {
          if (name !== null) Queue.offerUnsafe(changes, path.join(dir, name.toString()))
        }),
        catch: (cause) => cause as NodeJS.ErrnoException
      }).pipe(
        Effect.tap((watcher) => Effect.sync(() => {
          watchers.set(dir, watcher)
          watcher.on("error", (error) => {
            watchers.delete(dir)
            watcher.close()
            Effect.runForkWith(context)(Effect.logWarning(`Stopped watching ${dir} for changes: ${error.message}`))
          })
        })),
        Effect.asVoid,
        // A directory gone since the build has nothing to watch; anything else (the kernel's limit on watches) is said.
        Effect.catch((error) => error.code === "ENOENT" ? Effect.void : Effect.logWarning(`Cannot watch ${dir} for changes: ${error.message}`))
      )
    })
  return {
    add: (files) => Effect.forEach(new Set(files.map((f) => path.dirname(f))), watchDir, { discard: true }),
    next: (relevant) =>
      Effect.gen(function*() {
        let first: string | undefined
        while (first === undefined) {
          const file = yield* Queue.take(changes)
          if (relevant(file)) first = file
        }
        // Settle: wait until no change came for a while, dropping the rest of the burst.
        while (true) {
          yield* Effect.sleep(settle)
          const more = yield* Queue.clear(changes)
          if (more.length === 0) return first
        }
      })
  } satisfies Watch
})
