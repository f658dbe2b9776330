/**
 * LoadIndexer: finds and imports a user's indexer module (TypeScript loaded directly), and validates it.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { Effect } from "effect"
import { Errors, Indexer } from "@chainstore/core"

/** `[indexer]`: a directory holding `indexer.ts`, or a module file; default the working directory. */
export const resolvePath = (given: string | undefined): string => {
  const target = path.resolve(given ?? ".")
  return fs.existsSync(target) && fs.statSync(target).isDirectory() ? path.join(target, "indexer.ts") : target
}

export const load = Effect.fn("LoadIndexer.load")(function*(given: string | undefined) {
  const file = resolvePath(given)
  if (!fs.existsSync(file)) {
    return yield* new Errors.IndexerDefinitionError({ path: file, message: "no such file (give a directory holding indexer.ts, or a module file)" })
  }
  const module = yield* Effect.tryPromise({
    try: () => import(pathToFileURL(file).href) as Promise<{ readonly default?: unknown }>,
    catch: (cause) => {
      const message = cause instanceof Error ? cause.message : String(cause)
      // A .ts file outside an ESM package is compiled as CommonJS, which cannot import ES modules.
      const hint = /require\(\) ES Module|ERR_REQUIRE_ESM|Cannot use import statement/.test(message)
        ? ` (put a package.json with "type": "module" next to it, or name it indexer.mts)`
        : ""
      return new Errors.IndexerDefinitionError({ path: file, message: `cannot load the module: ${message}${hint}` })
    }
  })
  const value = module.default
  if (typeof value !== "object" || value === null || !("entities" in value) || !("handlers" in value) || !("chains" in value)) {
    return yield* new Errors.IndexerDefinitionError({ path: `${file}: default export`, message: "must be `Indexer.make({ entities, effects, chains, handlers })`" })
  }
  return yield* Indexer.validate(value as Indexer.Indexer, file)
})
