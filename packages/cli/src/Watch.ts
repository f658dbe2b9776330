/**
 * Watch: waits for a change to any of an indexer's files. Their directories are watched, not the files: editors
 * save by writing a new file and renaming it over the old one, which ends a watch on the file itself.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Duration, Effect } from "effect"

/** Quiet time after the last change before reporting: an editor's save is several events, a formatter adds more. */
const settle = Duration.millis(150)

/** The first changed file among `files` (absolute paths), once changes have settled. */
export const nextChange = (files: ReadonlyArray<string>): Effect.Effect<string> =>
  Effect.callback<string>((resume) => {
    const wanted = new Set(files)
    let timer: NodeJS.Timeout | undefined
    let first: string | undefined
    const close = () => {
      clearTimeout(timer)
      for (const w of watchers) w.close()
    }
    const watchers: Array<fs.FSWatcher> = [...new Set(files.map((f) => path.dirname(f)))].flatMap((dir) => {
      try {
        return [fs.watch(dir, { persistent: true }, (_, name) => {
          const file = name === null ? undefined : path.join(dir, name.toString())
          if (file === undefined || !wanted.has(file)) return
          first ??= file
          clearTimeout(timer)
          timer = setTimeout(() => {
            close()
            resume(Effect.succeed(first!))
          }, Duration.toMillis(settle))
        })]
      } catch {
        // A directory gone since the build: nothing there to watch.
        return []
      }
    })
    return Effect.sync(close)
  })
