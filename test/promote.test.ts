// Zero-downtime redeploys on Postgres: a new build indexes into its own schema while readers' views serve the old
// one; `db promote` switches every view in one transaction. A reader polling throughout sees the old rows or the
// new ones, whole: never none, never some of each, never an error.
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, describe, expect, it } from "vitest"
import { Embedded } from "@chainstore/persistence"
import { cli, dropSchema, postgresUrl, tempDir, waitFor } from "./support/cli.js"
import { copyFixture, edit } from "./support/edit.js"

const suffix = Math.random().toString(36).slice(2, 8)
const [blue, green, readers] = [`cs_blue_${suffix}`, `cs_green_${suffix}`, `cs_readers_${suffix}`]
const copies: Array<string> = []
afterAll(async () => {
  for (const dir of copies) fs.rmSync(dir, { recursive: true, force: true })
  for (const schema of [readers, blue, green]) await dropSchema(schema)
})

const sql = <A extends object>(text: string) =>
  Effect.runPromise(Effect.gen(function*() {
    return yield* (yield* SqlClient.SqlClient).unsafe<A>(text)
  }).pipe(Effect.scoped, Effect.provide(Layer.fresh(Embedded.layerPostgres({ url: Redacted.make(postgresUrl) })))))

interface Seen {
  readonly n: string
  readonly lo: string | null
  readonly hi: string | null
  readonly build: string
}

describe("chainstore db promote", () => {
  it("switches readers from one build's schema to another's at once, only once it has caught up", async () => {
    const cwd = tempDir("cs-promote-")
    const dir = copyFixture("promote")
    copies.push(dir)
    const run = (schema: string) => cli(["run", dir, "--metrics-port", "0", "--db", postgresUrl, "--schema", schema], { cwd })
    const promote = (schema: string, ...extra: Array<string>) => cli(["db", "promote", schema, "--readers", readers, "--db", postgresUrl, ...extra], { cwd })

    expect((await run(blue)).code).toBe(0)
    const first = await promote(blue)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toContain(`Schema ${readers} now serves ${blue}`)

    // One statement, one snapshot: what a reader of the views gets. The reader keeps one connection, as a server does.
    // The build id from chainstore_state with the rows: one transaction switches every view, so they always agree.
    const statement = `SELECT (SELECT count(*)::text FROM "${readers}".holder) AS n, (SELECT min(left(label, 3)) FROM "${readers}".holder) AS lo, (SELECT max(left(label, 3)) FROM "${readers}".holder) AS hi, (SELECT build->>'id' FROM "${readers}".chainstore_state) AS build`
    const [before] = await sql<Seen>(statement)
    expect(before).toMatchObject({ lo: "v1-", hi: "v1-" })
    const seen: Array<Seen> = []
    const errors: Array<string> = []
    let polling = true
    const reader = Effect.runPromise(Effect.gen(function*() {
      const client = yield* SqlClient.SqlClient
      while (polling) {
        const result = yield* Effect.result(client.unsafe<Seen>(statement))
        if (result._tag === "Success") seen.push(result.success[0]!)
        else errors.push(String((result.failure.reason as { cause?: unknown }).cause ?? result.failure))
      }
    }).pipe(Effect.scoped, Effect.provide(Layer.fresh(Embedded.layerPostgres({ url: Redacted.make(postgresUrl) })))))

    edit(path.join(dir, "helper.ts"), "`v1-", "`v2-")
    expect((await run(green)).code).toBe(0)
    const whileIndexing = seen.length
    expect(whileIndexing).toBeGreaterThan(0)

    // Not caught up: refused, naming the chain; the views still serve the old schema.
    await sql(`UPDATE "${green}".chainstore_chains SET ready_at = NULL`)
    const early = await promote(green)
    expect(early.code).toBe(1)
    expect(early.stderr).toContain(`schema "${green}" has not caught up: chain 1337 at block 40`)
    await sql(`UPDATE "${green}".chainstore_chains SET ready_at = now()`)

    const second = await promote(green)
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout).toContain(`it served ${blue}`)
    const switched = seen.length
    await waitFor(async () => seen.length + errors.length, (n) => n > switched + 20, 60_000)
    polling = false
    await reader

    expect(errors).toEqual([])
    const first400 = seen[0]!.n
    expect(Number(first400)).toBeGreaterThan(0)
    const buildOf = new Map<string, string>()
    for (const s of seen) {
      expect(s.n).toBe(first400)
      expect(s.lo).toBe(s.hi)
      // Each label set goes with one build id: never the rows of one schema with the state of the other.
      if (!buildOf.has(s.lo!)) buildOf.set(s.lo!, s.build)
      expect(s.build).toBe(buildOf.get(s.lo!))
    }
    expect(new Set(buildOf.values()).size).toBe(2)
    const labels = seen.map((s) => s.lo)
    const flip = labels.indexOf("v2-")
    expect(flip).toBeGreaterThanOrEqual(whileIndexing)
    expect(labels.slice(0, flip).every((l) => l === "v1-")).toBe(true)
    expect(labels.slice(flip).every((l) => l === "v2-")).toBe(true)

    // The promoted schema cannot be reset from under its readers (run --reset and dev reset the same way).
    const reset = await cli(["db", "reset", dir, "--yes", "--db", postgresUrl, "--schema", green], { cwd })
    expect(reset.code).toBe(1)
    expect(reset.stderr).toContain(`schema "${green}" is promoted: views in schema "${readers}" read it`)

    // Going back to a schema behind the one served is refused too.
    await sql(`UPDATE "${blue}".chainstore_chains SET progress_block = 30`)
    const back = await promote(blue)
    expect(back.code).toBe(1)
    expect(back.stderr).toContain(`schema "${blue}" is behind "${green}", which readers see now: chain 1337 at block 30, not 40`)

    // A readers' schema holding real tables is not overwritten.
    const clash = await cli(["db", "promote", green, "--readers", blue, "--db", postgresUrl], { cwd })
    expect(clash.code).toBe(1)
    expect(clash.stderr).toContain("not views promote made")
  }, 240_000)
})
