/**
 * LoadIndexer: finds and imports a user's indexer module (TypeScript compiled on load by esbuild), validates it, and
 * names its build (a hash of its compiled code and its chains' configuration).
 */
import { createHash, randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { type BuildFailure, build, stop } from "esbuild"
import { Effect } from "effect"
import { Build, Errors, Indexer } from "@chainstore/core"

/** `[indexer]`: a directory holding `indexer.ts`, or a module file; default the working directory. */
export const resolvePath = (given: string | undefined): string => {
  const target = path.resolve(given ?? ".")
  return fs.existsSync(target) && fs.statSync(target).isDirectory() ? path.join(target, "indexer.ts") : target
}

/** What compiling an indexer module made. */
interface Compiled {
  readonly outfile: string
  /** Hash of the compiled code, its source map left out: a change of comments or layout only is not a new build. */
  readonly codeHash: string
  /** The module and every file it imports by relative path, absolute. */
  readonly files: ReadonlyArray<string>
}

/**
 * The indexer and the files it imports by relative path, compiled by esbuild into one ES module written beside it
 * (its package imports resolve from the same place, to the modules the CLI already loaded) and imported by Node
 * itself. A loader hook (tsx) would cost a round trip to another thread for every module loaded after it.
 */
const compile = (file: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async (): Promise<Compiled> => {
        const dir = path.dirname(file)
        const outfile = path.join(dir, `.${path.basename(file)}.${process.pid}.mjs`)
        const result = await build({
          entryPoints: [file],
          outfile,
          // Paths in the output (and so the build's hash) are relative to the indexer, wherever the CLI runs from.
          absWorkingDir: dir,
          bundle: true,
          packages: "external",
          format: "esm",
          platform: "node",
          target: "node20",
          sourcemap: "inline",
          metafile: true,
          write: false,
          logLevel: "silent"
        }).finally(stop) // esbuild's compiler process would otherwise live on beside the run
        const text = result.outputFiles[0]!.text
        fs.writeFileSync(outfile, text)
        const mapAt = text.lastIndexOf("//# sourceMappingURL=")
        return {
          outfile,
          codeHash: createHash("sha256").update(mapAt < 0 ? text : text.slice(0, mapAt)).digest("hex"),
          files: Object.keys(result.metafile.inputs).map((input) => path.resolve(dir, input))
        }
      },
      catch: (cause) => new Errors.IndexerDefinitionError({ path: file, message: `cannot compile the module: ${compileErrors(cause)}` })
    }),
    ({ outfile }) => Effect.sync(() => fs.rmSync(outfile, { force: true }))
  )

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** esbuild's errors as `file:line:column: text` (1-based column, as editors and tsc count). */
const compileErrors = (cause: unknown): string => {
  const errors = (cause as Partial<BuildFailure>).errors
  if (!Array.isArray(errors) || errors.length === 0) return messageOf(cause)
  return errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column + 1}: ${e.text}` : e.text)).join("; ")
}

/** A loaded indexer (its `build` set) and the files it was compiled from. */
export interface Loaded {
  readonly indexer: Indexer.Indexer
  readonly files: ReadonlyArray<string>
}

/** Compiles, imports and validates the indexer module at `file` (a resolved path). */
export const loadFile = Effect.fn("LoadIndexer.loadFile")(function*(file: string) {
  if (!fs.existsSync(file)) {
    return yield* new Errors.IndexerDefinitionError({ path: file, message: "no such file (give a directory holding indexer.ts, or a module file)" })
  }
  const { files, codeHash, module } = yield* Effect.scoped(Effect.flatMap(compile(file), (compiled) =>
    Effect.tryPromise({
      try: async () => {
        // Stack traces through handlers point into the user's own files, through the compiled module's source map.
        process.setSourceMapsEnabled(true)
        // Node caches modules by URL: every load (dev's reloads) is a new URL, so no module state survives a reload.
        // Each stays in Node's module cache for the life of the process: a few kB per reload.
        const module = await import(`${pathToFileURL(compiled.outfile).href}?load=${randomUUID()}`) as { readonly default?: unknown }
        return { ...compiled, module }
      },
      catch: (cause) => new Errors.IndexerDefinitionError({ path: file, message: `cannot load the module: ${messageOf(cause)}` })
    })))
  const value = module.default
  if (typeof value !== "object" || value === null || !("entities" in value) || !("handlers" in value) || !("chains" in value)) {
    return yield* new Errors.IndexerDefinitionError({ path: `${file}: default export`, message: "must be `Indexer.make({ entities, effects, chains, handlers })`" })
  }
  const indexer = yield* Indexer.validate(value as Indexer.Indexer, file)
  const chains = Build.chainsOf(indexer)
  const id = createHash("sha256").update(codeHash).update(JSON.stringify(chains)).digest("hex").slice(0, 12)
  return { indexer: { ...indexer, build: { id, code: codeHash, chains } }, files } satisfies Loaded
})

/** The indexer at `[indexer]` (see `resolvePath`), its build set. */
export const load = (given: string | undefined) => Effect.map(loadFile(resolvePath(given)), (loaded) => loaded.indexer)
