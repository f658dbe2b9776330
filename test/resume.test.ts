// Crash-safe resume and reorg equivalence, end to end: the indexer as a child process, SIGKILLed at chosen
// moments (some land inside writes), restarted each time, on PGlite and on Postgres.
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { cli, dropSchema, query, root, start, targetArgs, tempDir, type Target } from "./support/cli.js"

const indexer = path.join(root, "test/fixtures/counting/indexer.ts")
const cwd = tempDir("cs-resume-")
const schemas: Array<string> = []
afterAll(async () => {
  for (const schema of schemas) await dropSchema(schema)
})
const newTarget = (kind: "pglite" | "postgres"): Target => {
  if (kind === "pglite") return { _tag: "pglite", dataDir: `${tempDir("cs-resume-")}/.chainstore` }
  const schema = `cs_resume_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return { _tag: "postgres", schema }
}

const tables = (target: Target) =>
  query(target, (sql, schema) =>
    Effect.all({
      accounts: sql.unsafe<{ id: string; balance: string; label: string }>(`select id, balance::text as balance, label from "${schema}".account order by id`),
      blocks: sql.unsafe<{ id: string; parity: string; transfers: number }>(`select id, parity, transfers from "${schema}".block_seen order by id`)
    }))

const committedLabels = (target: Target) =>
  query(target, (sql, schema) =>
    Effect.flatMap(
      sql.unsafe<{ t: string | null }>(`select to_regclass('"${schema}".chainstore_effect_account_label')::text as t`),
      ([row]) => row?.t == null ? Effect.succeed([]) : sql.unsafe<{ id: string }>(`select id from "${schema}".chainstore_effect_account_label`)
    )).then(
    (rows) => new Set(rows.map((r) => (JSON.parse(r.id) as { address: string }).address))
  )

const runArgs = (target: Target, sim: string) => ["run", indexer, "--sim", sim, "--metrics-port", "0", ...targetArgs(target)]

describe.each(["pglite", "postgres"] as const)("resume on %s", (kind) => {
  it("SIGKILLed at several moments and restarted, it ends equal to an uninterrupted run and never recomputes a committed effect", async () => {
    const sim = "blocks=150,eventsPerBlock=40,accounts=60,seed=11"
    const reference = newTarget(kind)
    const referenceLog = path.join(tempDir("cs-log-"), "effects.log")
    expect((await cli(runArgs(reference, sim), { cwd, env: { CHAINSTORE_TEST_EFFECT_LOG: referenceLog } })).code).toBe(0)
    const expected = await tables(reference)

    const target = newTarget(kind)
    const log = path.join(tempDir("cs-log-"), "effects.log")
    const env = { CHAINSTORE_TEST_EFFECT_LOG: log, CHAINSTORE_IN_MEMORY_OBJECTS_TARGET: "3000" }
    // Kill points: ms after the run reports it started; the slow sim keeps each life mid-sync.
    const killAfter = [250, 700, 120, 1100, 400]
    let kills = 0
    for (const delay of killAfter) {
      const running = start(runArgs(target, `${sim},blockTimeMs=15`), { cwd, env })
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (running.output().includes("Indexing into")) {
            clearInterval(check)
            setTimeout(resolve, delay)
          }
        }, 10)
      })
      running.child.kill("SIGKILL")
      const result = await running.done
      if (result.code === 0) break // finished before the kill point
      kills++
      const committed = await committedLabels(target)
      const before = fs.existsSync(log) ? fs.readFileSync(log, "utf8").length : 0
      // The next life must not compute any label whose output was committed.
      const next = start(runArgs(target, `${sim},blockTimeMs=15`), { cwd, env })
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (next.output().includes("Indexing into")) {
            clearInterval(check)
            setTimeout(resolve, 300)
          }
        }, 10)
      })
      next.child.kill("SIGKILL")
      await next.done
      const recomputed = fs.existsSync(log)
        ? fs.readFileSync(log, "utf8").slice(before).split("\n").filter((l) => l.startsWith("accountLabel ")).map((l) => l.slice(13))
        : []
      expect(recomputed.filter((a) => committed.has(a))).toEqual([])
    }
    expect(kills).toBeGreaterThanOrEqual(3)
    const final = await cli(runArgs(target, sim), { cwd, env })
    expect(final.code, final.stderr).toBe(0)
    expect(await tables(target)).toEqual(expected)
  })

  it("for several seeds, a run with reorgs ends with the tables of a run without; the reorg-sensitive effect reruns only forked blocks", async () => {
    for (const seed of [3, 4]) {
      const sim = `blocks=90,eventsPerBlock=20,accounts=25,seed=${seed}`
      const plain = newTarget(kind)
      expect((await cli(runArgs(plain, sim), { cwd })).code).toBe(0)
      const forked = newTarget(kind)
      const log = path.join(tempDir("cs-log-"), "effects.log")
      const result = await cli(runArgs(forked, `${sim},reorgEvery=20,reorgDepth=5`), { cwd, env: { CHAINSTORE_TEST_EFFECT_LOG: log } })
      expect(result.code, result.stderr).toBe(0)
      expect(await tables(forked)).toEqual(await tables(plain))
      const lines = fs.readFileSync(log, "utf8").trim().split("\n")
      const parityBlocks = lines.filter((l) => l.startsWith("blockParity ")).map((l) => Number(l.split(" ")[1]))
      const twice = [...new Set(parityBlocks.filter((b, i) => parityBlocks.indexOf(b) !== i))].sort((a, b) => a - b)
      // Forks at tips 20, 40, 60, 80 cover 5 blocks each; only those blocks' inputs ran twice.
      expect(twice).toEqual([16, 17, 18, 19, 20, 36, 37, 38, 39, 40, 56, 57, 58, 59, 60, 76, 77, 78, 79, 80])
      const labels = lines.filter((l) => l.startsWith("accountLabel "))
      expect(new Set(labels).size).toBe(labels.length)
    }
  })

  it("a reorg deeper than the window fails with the clear error and leaves the database as it was", async () => {
    const target = newTarget(kind)
    const result = await cli(runArgs(target, "blocks=200,eventsPerBlock=5,accounts=10,reorgEvery=100,reorgDepth=60"), { cwd })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/DeepReorgError: Reorg on chain 1337 at block \d+ is at least \d+ blocks deep, beyond the reorg window of 50 blocks/)
    const progress = await query(target, (sql, schema) => sql.unsafe<{ progress_block: number }>(`select progress_block from "${schema}".chainstore_chains`))
    // Nothing after the detection was written: the stored progress is still at or before the fork's tip.
    expect(progress[0]!.progress_block).toBeLessThanOrEqual(100)
  })
})
