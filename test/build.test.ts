// Builds end to end: a run resumes only tables its own build wrote; another build's tables stop `run` with what
// changed, and `run --reset` reindexes them. The fixture's copy is edited as a user edits an indexer.
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { cli, dropSchema, query, targetArgs, tempDir, type Target } from "./support/cli.js"
import { copyFixture, edit } from "./support/edit.js"

const copies: Array<string> = []
const schemas: Array<string> = []
afterAll(async () => {
  for (const dir of copies) fs.rmSync(dir, { recursive: true, force: true })
  for (const schema of schemas) await dropSchema(schema)
})

const labels = (target: Target) =>
  query(target, (sql, schema) => Effect.map(sql.unsafe<{ label: string }>(`select distinct left(label, 3) as label from "${schema}".holder order by 1`), (rows) => rows.map((r) => r.label)))

const cwd = tempDir("cs-build-cwd-")

describe.each(["pglite", "postgres"] as const)("builds on %s", (kind) => {
  it("a comment edit resumes; a code edit stops `run` naming what changed, tables untouched; --reset reindexes; a changed startBlock is named", async () => {
    const target: Target = kind === "pglite" ? { _tag: "pglite", dataDir: `${tempDir("cs-build-")}/.chainstore` } : { _tag: "postgres", schema: `cs_build_${Math.random().toString(36).slice(2, 10)}` }
    if (target._tag === "postgres") schemas.push(target.schema)
    const dir = copyFixture("build")
    copies.push(dir)
    const run = (...extra: Array<string>) => cli(["run", dir, "--metrics-port", "0", ...targetArgs(target), ...extra], { cwd })

    const first = await run()
    expect(first.code, first.stderr).toBe(0)
    expect(await labels(target)).toEqual(["v1-"])

    // The build does not depend on where the indexer lies or where the CLI runs from: a copy elsewhere is the same build.
    const copy = copyFixture("build-moved")
    copies.push(copy)
    const elsewhere = await cli(["db", "status", copy, "--json", ...targetArgs(target)], { cwd: tempDir("cs-build-other-") })
    expect(JSON.parse(elsewhere.stdout)).toMatchObject({ build: { changes: [], restart: "resume" } })

    // Comments and layout are not code: the same build, resumed (nothing left to index).
    edit(path.join(dir, "helper.ts"), "/** A helper", "/** Reformatted:\n * a helper")
    const resumed = await run()
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout + resumed.stderr).toContain("committed checkpoint 40")
    expect(resumed.stdout + resumed.stderr).not.toContain("New build")

    edit(path.join(dir, "helper.ts"), "`v1-", "`v2-")
    const stopped = await run()
    expect(stopped.code).toBe(1)
    expect(stopped.stderr).toMatch(/BuildChangedError: the tables were written by build [0-9a-f]{12} of this indexer, this is build [0-9a-f]{12}: the indexer's code changed/)
    expect(stopped.stderr).toContain("chainstore run --reset")
    expect(await labels(target)).toEqual(["v1-"])

    const status = await cli(["db", "status", dir, ...targetArgs(target)], { cwd })
    expect(status.code, status.stderr).toBe(0)
    expect(status.stdout).toMatch(/Build: the tables are build [0-9a-f]{12}, this indexer is build [0-9a-f]{12}: the indexer's code changed/)

    const reset = await run("--reset")
    expect(reset.code, reset.stderr).toBe(0)
    expect(reset.stdout + reset.stderr).toMatch(/New build [0-9a-f]{12} \(was [0-9a-f]{12}\): the indexer's code changed/)
    expect(reset.stdout + reset.stderr).toContain("Done: chain 1337 at block 40 (400 events)")
    expect(await labels(target)).toEqual(["v2-"])
    const json = await cli(["db", "status", dir, "--json", ...targetArgs(target)], { cwd })
    expect(JSON.parse(json.stdout)).toMatchObject({ build: { changes: [], restart: "resume" }, chains: [{ chainId: 1337, progressBlock: 40 }] })

    edit(path.join(dir, "indexer.ts"), "startBlock: 1,", "startBlock: 5,")
    const moved = await run()
    expect(moved.code).toBe(1)
    expect(moved.stderr).toContain("chain 1337: startBlock 1 → 5")
    expect(moved.stderr).not.toContain("contract Token")
  }, 240_000)
})
