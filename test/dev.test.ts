// `chainstore dev` as a user runs it: saves of the indexer and of a helper it imports reload it, a broken save keeps
// the last good build serving, a failing handler waits for the fix, SIGINT ends it. Rows are read through the
// running process's own query API (the embedded database is that process's).
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { data } from "./support/api.js"
import { bin, dropSchema, freePort, postgresUrl, start, targetArgs, tempDir, waitFor, type Target } from "./support/cli.js"
import { copyFixture, edit } from "./support/edit.js"

const copies: Array<string> = []
const schemas: Array<string> = []
afterAll(async () => {
  for (const dir of copies) fs.rmSync(dir, { recursive: true, force: true })
  for (const schema of schemas) await dropSchema(schema)
})

const cwd = tempDir("cs-dev-cwd-")
const count = (text: string, what: string) => text.split(what).length - 1

describe.each(["pglite", "postgres"] as const)("chainstore dev on %s", (kind) => {
  it("reloads on saves of the indexer and of an imported helper; a broken save keeps the last build; a failing handler waits for the fix", async () => {
    const target: Target = kind === "pglite" ? { _tag: "pglite", dataDir: `${tempDir("cs-dev-")}/.chainstore` } : { _tag: "postgres", schema: `cs_dev_${Math.random().toString(36).slice(2, 10)}` }
    if (target._tag === "postgres") schemas.push(target.schema)
    const dir = copyFixture("dev")
    copies.push(dir)
    const port = await freePort()
    const url = `http://127.0.0.1:${port}/graphql`
    const dev = start(["dev", dir, "--metrics-port", String(port), ...targetArgs(target)], { cwd, timeoutMs: 240_000 })
    const done = "Done: chain 1337 at block 40 (400 events)"
    /** Waits for the n-th finished run, then reads every holder's label through the query API. */
    const labelsAfterRun = async (n: number) => {
      await waitFor(async () => dev.output(), (out) => count(out, done) >= n || dev.child.exitCode !== null, 120_000)
      expect(dev.child.exitCode, dev.output()).toBe(null)
      const got = await waitFor(
        () => data<{ holders: { nodes: Array<{ label: string }>; totalCount: number } }>(url, "{ holders(first: 1000) { nodes { label } totalCount } }").catch(() => undefined),
        (d) => d !== undefined,
        30_000
      )
      return [...new Set(got!.holders.nodes.map((h) => h.label.replace(/-[0-9a-f]{4}/, "-…")))].sort()
    }
    try {
      expect(await labelsAfterRun(1)).toEqual(["v1-…"])

      edit(path.join(dir, "helper.ts"), "`v1-", "`v2-")
      expect(await labelsAfterRun(2)).toEqual(["v2-…"])
      expect(dev.output()).toMatch(/reloaded at \d\d:\d\d:\d\d after .*helper\.ts changed/)
      expect(dev.output()).toMatch(/New build [0-9a-f]{12} \(was [0-9a-f]{12}\): the indexer's code changed/)

      edit(path.join(dir, "indexer.ts"), "label: labelOf(", "label: \"h:\" + labelOf(")
      expect(await labelsAfterRun(3)).toEqual(["h:v2-…"])

      // A save that does not build: its error with file and line; the last build's rows stay served.
      edit(path.join(dir, "helper.ts"), "export const labelOf", "export const broken = (\nexport const labelOf")
      await waitFor(async () => dev.output(), (out) => out.includes("keeps running"), 60_000)
      expect(dev.output()).toMatch(/✗ cannot compile the module: helper\.ts:\d+:\d+: /)
      expect(await labelsAfterRun(3)).toEqual(["h:v2-…"])

      // A handler that fails: the run stops with its error; the fix reloads.
      edit(path.join(dir, "helper.ts"), "export const broken = (\n", "")
      edit(path.join(dir, "indexer.ts"), "const { from, to, value } = event.params", "const { from, to, value } = event.params\n          if (value > 0n) yield* Effect.fail(\"no transfers today\")")
      await waitFor(async () => dev.output(), (out) => out.includes("The run stopped: HandlerError"), 60_000)
      expect(dev.output()).toContain("no transfers today")
      edit(path.join(dir, "indexer.ts"), "\n          if (value > 0n) yield* Effect.fail(\"no transfers today\")", "")
      expect(await labelsAfterRun(4)).toEqual(["h:v2-…"])

      dev.child.kill("SIGINT")
      const exit = await dev.done
      expect(exit.code, dev.output()).toBe(0)
    } finally {
      dev.child.kill("SIGKILL")
    }
  }, 300_000)
})

describe("chainstore dev on postgres, edits at awkward times", () => {
  it("a first build that fails waits for a fix in the helper; a save during a reload is not lost", async () => {
    const schema = `cs_dev_late_${Math.random().toString(36).slice(2, 10)}`
    schemas.push(schema)
    const dir = copyFixture("dev-late")
    copies.push(dir)
    edit(path.join(dir, "helper.ts"), "export const labelOf", "export const broken = (\nexport const labelOf")
    const port = await freePort()
    const url = `http://127.0.0.1:${port}/graphql`
    const dev = start(["dev", dir, "--metrics-port", String(port), "--db", postgresUrl, "--schema", schema], { cwd, timeoutMs: 240_000 })
    const labels = async () => {
      const got = await data<{ holders: { nodes: Array<{ label: string }> } }>(url, "{ holders(first: 1000) { nodes { label } } }").catch(() => undefined)
      return got === undefined ? undefined : [...new Set(got.holders.nodes.map((h) => h.label.slice(0, 3)))].sort()
    }
    try {
      await waitFor(async () => dev.output(), (out) => out.includes("Nothing runs until it builds"), 60_000)
      edit(path.join(dir, "helper.ts"), "export const broken = (\n", "")
      await waitFor(labels, (l) => l?.join() === "v1-", 120_000)

      // The second save lands while the first one's reload is under way: dev must end on it.
      edit(path.join(dir, "helper.ts"), "`v1-", "`v2-")
      await waitFor(async () => count(dev.output(), "reloaded at"), (n) => n >= 2, 60_000)
      edit(path.join(dir, "helper.ts"), "`v2-", "`v3-")
      await waitFor(labels, (l) => l?.join() === "v3-", 120_000)
      dev.child.kill("SIGINT")
      expect((await dev.done).code, dev.output()).toBe(0)
    } finally {
      dev.child.kill("SIGKILL")
    }
  }, 300_000)
})

// The screen a person sees: dev in a real terminal (tmux), read back as the pane shows it.
describe("chainstore dev in a terminal", () => {
  const tmux = (...args: Array<string>) => execFileSync("tmux", args, { encoding: "utf8" })
  const session = `cs-dev-${process.pid}`
  const screen = () => tmux("capture-pane", "-p", "-t", session)
  afterAll(() => {
    try {
      tmux("kill-session", "-t", session)
    } catch {
      // Already gone.
    }
  })

  it("each reload starts a clean screen headed by its build; a broken save shows file:line under it; Ctrl-C ends dev", async () => {
    const dir = copyFixture("dev-tty")
    copies.push(dir)
    const dataDir = `${tempDir("cs-dev-tty-")}/.chainstore`
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", "-c", cwd)
    tmux("set-option", "-t", session, "remain-on-exit", "on")
    tmux("respawn-pane", "-k", "-t", session, `${process.execPath} ${bin} dev ${dir} --data-dir ${dataDir} --metrics-port 0; echo "dev exited with $?"`)
    const first = await waitFor(async () => screen(), (s) => s.includes("Done: chain 1337 at block 40"), 120_000)
    const build = /build ([0-9a-f]{12})/.exec(first)![1]!

    edit(path.join(dir, "helper.ts"), "`v1-", "`v2-")
    const reloaded = await waitFor(async () => screen(), (s) => s.includes("reloaded at") && s.includes("Done: chain 1337 at block 40"), 120_000)
    expect(count(reloaded, "chainstore dev:")).toBe(1)
    expect(reloaded).toContain(`(was ${build})`)
    expect(reloaded.split("\n").filter((l) => l.includes(`build ${build}`))).toEqual([])

    edit(path.join(dir, "helper.ts"), "export const labelOf", "export const broken = (\nexport const labelOf")
    const broken = await waitFor(async () => screen(), (s) => s.includes("keeps running"), 60_000)
    expect(broken).toMatch(/✗ cannot compile the module: helper\.ts:\d+:\d+: /)
    expect(broken).toContain("chainstore dev:")

    tmux("send-keys", "-t", session, "C-c")
    const ended = await waitFor(async () => screen(), (s) => s.includes("dev exited with"), 60_000)
    expect(ended).toContain("dev exited with 0")
  }, 300_000)
})
