/**
 * BuildReset: what `run --reset` and `dev` do when the database holds tables of another build of the indexer —
 * say what changed, drop the tables, and let the run index from the start.
 */
import { Effect } from "effect"
import type { Errors } from "@chainstore/core"
import * as Database from "./Database.js"

export const reset = Effect.fn("BuildReset.reset")(function*(options: Database.Options, changed: Errors.BuildChangedError) {
  yield* Effect.logWarning(`New build ${changed.current} (was ${changed.stored}): ${changed.changes.join("; ")}. Dropping the indexer's tables and indexing from the start`)
  yield* Database.dropTables(options)
})
