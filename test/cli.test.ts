// The `chainstore` command end to end, as a user runs it: real child processes, PGlite and Postgres.
import { afterAll, describe, expect, it } from "vitest"
import { cli, dropSchema, example, exampleTables, freePort, metrics, metricValue, start, targetArgs, tempDir, waitFor, type Target } from "./support/cli.js"
import * as Sim from "./support/sim.js"

const sim = "blocks=80,eventsPerBlock=50,accounts=40,seed=7"
/** The tables computed straight from the simulated chain's events. */
const expected = Sim.exampleTables(sim)

const schemas: Array<string> = []
const newTarget = (kind: "pglite" | "postgres"): Target => {
  if (kind === "pglite") return { _tag: "pglite", dataDir: `${tempDir("cs-cli-")}/.chainstore` }
  const schema = `cs_cli_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return { _tag: "postgres", schema }
}
afterAll(async () => {
  for (const schema of schemas) await dropSchema(schema)
})

const cwd = tempDir("cs-cwd-")

// Timeouts are generous: each test starts several processes (PGlite opens a data dir in each), which a loaded machine slows several-fold.
describe.each(["pglite", "postgres"] as const)("chainstore run on %s", (kind) => {
  it("indexes the simulated chain, reports it, does nothing the second time, and rebuilds after a reset", async () => {
    const target = newTarget(kind)
    const first = await cli(["run", example, "--sim", sim, "--metrics-port", "0", ...targetArgs(target)], { cwd })
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout + first.stderr).toContain("Done: chain 1337 at block 80 (4000 events)")
    const tables = await exampleTables(target)
    expect(tables).toEqual(expected)
    expect(tables.transfers).toEqual([{ n: "4000" }])

    const status = await cli(["db", "status", example, "--json", ...targetArgs(target)], { cwd })
    expect(status.code, status.stderr).toBe(0)
    const parsed = JSON.parse(status.stdout) as { chains: Array<{ chainId: number; progressBlock: number }>; entityCounts: Array<{ entity: string; rows: number }> }
    expect(parsed.chains).toMatchObject([{ chainId: 1337, progressBlock: 80 }])
    expect(parsed.entityCounts).toContainEqual({ entity: "Transfer", rows: 4000 })

    const again = await cli(["run", example, "--sim", sim, "--metrics-port", "0", ...targetArgs(target)], { cwd })
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout + again.stderr).toContain("committed checkpoint 80")
    expect(await exampleTables(target)).toEqual(tables)

    const refused = await cli(["db", "reset", example, ...targetArgs(target)], { cwd })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("--yes")
    const reset = await cli(["db", "reset", example, "--yes", ...targetArgs(target)], { cwd })
    expect(reset.code, reset.stderr).toBe(0)
    const rebuilt = await cli(["run", example, "--sim", sim, "--metrics-port", "0", ...targetArgs(target)], { cwd })
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    expect(await exampleTables(target)).toEqual(tables)
  }, 240_000)

  it("stopped by SIGINT and run again, or run through reorgs, it ends with the chain's tables", async () => {
    const target = newTarget(kind)
    const port = await freePort()
    const slow = start(["run", example, "--sim", `${sim},blockTimeMs=40`, "--metrics-port", String(port), ...targetArgs(target)], { cwd })
    await waitFor(() => metrics(port), (text) => metricValue(text, "chainstore_committed_block") > 0)
    slow.child.kill("SIGINT")
    const stopped = await slow.done
    expect(stopped.code, stopped.stderr).toBe(0)
    expect(stopped.stdout + stopped.stderr).toMatch(/Stopped: chain 1337 at block (\d+)/)
    const stoppedAt = Number(/Stopped: chain 1337 at block (\d+)/.exec(stopped.stdout + stopped.stderr)![1])
    // Stopped mid-run, after the commit it reported.
    expect(stoppedAt).toBeGreaterThan(0)
    expect(stoppedAt).toBeLessThan(80)
    expect((await cli(["run", example, "--sim", sim, "--metrics-port", "0", ...targetArgs(target)], { cwd })).code).toBe(0)
    expect(await exampleTables(target)).toEqual(expected)

    const forked = newTarget(kind)
    const withReorgs = await cli(["run", example, "--sim", `${sim},reorgEvery=15,reorgDepth=4`, "--metrics-port", "0", ...targetArgs(forked)], { cwd })
    expect(withReorgs.code, withReorgs.stderr).toBe(0)
    expect(withReorgs.stdout + withReorgs.stderr).toContain("Reorg on chain 1337")
    expect(await exampleTables(forked)).toEqual(expected)
  }, 240_000)

  it("serves /metrics with moving counters, processed ≥ committed, and /ready turning 200", async () => {
    const target = newTarget(kind)
    const port = await freePort()
    const running = start(["run", example, "--sim", `${sim},blockTimeMs=25`, "--metrics-port", String(port), ...targetArgs(target)], { cwd })
    const url = `http://127.0.0.1:${port}`
    const early = await waitFor(() => metrics(port), (t) => metricValue(t, "chainstore_events_processed") > 0)
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    const later = await waitFor(() => metrics(port), (t) =>
      metricValue(t, "chainstore_events_processed") > metricValue(early, "chainstore_events_processed") && metricValue(t, "chainstore_committed_block") > 0)
    expect(metricValue(later, "chainstore_processed_block")).toBeGreaterThanOrEqual(metricValue(later, "chainstore_committed_block"))
    expect(later).toMatch(/chainstore_effect_cache_hits\{effect="tokenInfo"\}|chainstore_effect_calls\{effect="tokenInfo"\}/)
    expect(later).toContain("transferKind")
    if (kind === "pglite") {
      // The embedded worker's WebAssembly memory, reported while it runs: bounded by PGlite's buffers, not the data.
      const memory = metricValue(later, "chainstore_pglite_memory_bytes")
      expect(memory).toBeGreaterThan(16 * 2 ** 20)
      expect(memory).toBeLessThan(512 * 2 ** 20)
    } else expect(later).not.toContain("chainstore_pglite_memory_bytes ")
    await waitFor(() => fetch(`${url}/ready`).then((r) => r.status), (s) => s === 200)
    const result = await running.done
    expect(result.code, result.stderr).toBe(0)
  }, 120_000)
})

describe("chainstore run with bad input", () => {
  it("an unreachable port or an unknown database fails fast, names the problem, and never prints the password", async () => {
    const cases: Array<[string, RegExp]> = [
      ["postgres://postgres:hunter2secret@127.0.0.1:1/test", /StorageError: ConnectionError: connect ECONNREFUSED 127\.0\.0\.1:1\b/],
      ["postgres://postgres:hunter2secret@127.0.0.1:5432/no_such_db_here", /StorageError: .*database "no_such_db_here" does not exist/]
    ]
    for (const [url, problem] of cases) {
      const result = await cli(["run", example, "--sim", sim, "--metrics-port", "0", "--db", url], { cwd, timeoutMs: 60_000 })
      expect(result.code).toBe(1)
      expect(result.stdout + result.stderr).not.toContain("hunter2secret")
      expect(result.stderr).toMatch(problem)
    }
  }, 120_000)

  it("a malformed --sim names the bad key", async () => {
    const result = await cli(["run", example, "--sim", "blocks=10,eventsPerBlok=5", "--metrics-port", "0"], { cwd })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("eventsPerBlok")
  })
})
