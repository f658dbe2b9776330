/**
 * LoadIndexer: finds and imports a user's indexer module (TypeScript compiled on load by esbuild), and validates it.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { type BuildFailure, build, stop } from "esbuild"
import { Effect } from "effect"
import { Errors, Indexer } from "@chainstore/core"

/** `[indexer]`: a directory holding `indexer.ts`, or a module file; default the working directory. */
export const resolvePath = (given: string | undefined): string => {
  const target = path.resolve(given ?? ".")
  return fs.existsSync(target) && fs.statSync(target).isDirectory() ? path.join(target, "indexer.ts") : target
}

/**
 * The indexer and the files it imports by relative path, compiled by esbuild into one ES module written beside it
 * (its package imports resolve from the same place, to the modules the CLI already loaded) and imported by Node
 * itself. A loader hook (tsx) would cost a round trip to another thread for every module loaded after it.
 */
const compile = (file: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const outfile = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.mjs`)
        await build({
          entryPoints: [file],
          outfile,
          bundle: true,
          packages: "external",
          format: "esm",
          platform: "node",
          target: "node20",
          sourcemap: "inline",
          logLevel: "silent"
        }).finally(stop) // esbuild's compiler process would otherwise live on beside the run
        return outfile
      },
      catch: (cause) => new Errors.IndexerDefinitionError({ path: file, message: `cannot compile the module: ${compileErrors(cause)}` })
    }),
    (outfile) => Effect.sync(() => fs.rmSync(outfile, { force: true }))
  )

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** esbuild's errors as `file:line:column: text` (1-based column, as editors and tsc count). */
const compileErrors = (cause: unknown): string => {
  const errors = (cause as Partial<BuildFailure>).errors
  if (!Array.isArray(errors) || errors.length === 0) return messageOf(cause)
  return errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column + 1}: ${e.text}` : e.text)).join("; ")
}

export const load = Effect.fn("LoadIndexer.load")(function*(given: string | undefined) {
  const file = resolvePath(given)
  if (!fs.existsSync(file)) {
    return yield* new Errors.IndexerDefinitionError({ path: file, message: "no such file (give a directory holding indexer.ts, or a module file)" })
  }
  const module = yield* Effect.scoped(Effect.flatMap(compile(file), (compiled) =>
    Effect.tryPromise({
      try: () => {
        // Stack traces through handlers point into the user's own files, through the compiled module's source map.
        process.setSourceMapsEnabled(true)
        return import(pathToFileURL(compiled).href) as Promise<{ readonly default?: unknown }>
      },
      catch: (cause) => new Errors.IndexerDefinitionError({ path: file, message: `cannot load the module: ${messageOf(cause)}` })
    })))
  const value = module.default
  if (typeof value !== "object" || value === null || !("entities" in value) || !("handlers" in value) || !("chains" in value)) {
    return yield* new Errors.IndexerDefinitionError({ path: `${file}: default export`, message: "must be `Indexer.make({ entities, effects, chains, handlers })`" })
  }
  return yield* Indexer.validate(value as Indexer.Indexer, file)
})
