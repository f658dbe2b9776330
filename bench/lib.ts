/** Shared by the benchmarks: run a command measuring wall time and peak RSS, statistics, and docs/benchmarks.md sections. */
import { execFileSync, execSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const chainstoreBin = path.join(root, "node_modules/.bin/chainstore")
export const postgresUrl = "postgres://postgres@127.0.0.1:5432/test"

export interface Measured {
  readonly code: number | null
  readonly seconds: number
  /** Peak resident memory of the process and its children, in MB. */
  readonly peakRssMb: number
  readonly output: string
}

const rssKb = (pid: number): number => {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)
    return kb + children.reduce((sum, child) => sum + rssKb(child), 0)
  } catch {
    return 0
  }
}

/** Runs `command args` to its end, sampling the RSS of its process tree every 100 ms. */
export const measure = (command: string, args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}): Promise<Measured> =>
  new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(command, args, { cwd: options.cwd ?? root, env: { ...process.env, NO_COLOR: "1", ...options.env }, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    let peak = 0
    const timer = setInterval(() => (peak = Math.max(peak, rssKb(child.pid!))), 100)
    child.on("exit", (code) => {
      clearInterval(timer)
      resolve({ code, seconds: (performance.now() - started) / 1000, peakRssMb: Math.round(peak / 1024), output })
    })
  })

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** `median [min–max]`, rounded. */
export const spread = (xs: ReadonlyArray<number>, digits = 0): string =>
  xs.length === 1 ? xs[0]!.toFixed(digits) : `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`

export const fmt = (n: number): string => Math.round(n).toLocaleString("en-US")

export const machine = (): string =>
  `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, commit ${
    execSync("git rev-parse --short HEAD", { cwd: root }).toString().trim()}, ${new Date().toISOString().slice(0, 16)}Z`

/** Replaces (or appends) the `## title` section of docs/benchmarks.md, leaving the others as they are. */
export const writeSection = (title: string, body: string): void => {
  const file = path.join(root, "docs/benchmarks.md")
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "# Benchmarks\n"
  const heading = `## ${title}`
  const start = text.indexOf(`${heading}\n`)
  const section = `${heading}\n\n${body.trim()}\n`
  if (start === -1) return fs.writeFileSync(file, `${text.trimEnd()}\n\n${section}`)
  const next = text.indexOf("\n## ", start + heading.length)
  fs.writeFileSync(file, `${text.slice(0, start)}${section}${next === -1 ? "" : `\n${text.slice(next + 1)}`}`)
}

/** A horizontal bar chart as SVG: one bar per label, values annotated. */
export const barChart = (title: string, unit: string, bars: ReadonlyArray<{ readonly label: string; readonly value: number }>): string => {
  const width = 760
  const rowHeight = 26
  const left = 300
  const max = Math.max(...bars.map((b) => b.value), 1)
  const rows = bars.map((b, i) => {
    const y = 40 + i * rowHeight
    const w = Math.max(1, ((width - left - 90) * b.value) / max)
    return `<text x="${left - 8}" y="${y + 15}" text-anchor="end" font-size="12">${b.label}</text>` +
      `<rect x="${left}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="#4a7bd0"/>` +
      `<text x="${left + w + 6}" y="${y + 15}" font-size="12">${fmt(b.value)} ${unit}</text>`
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${60 + bars.length * rowHeight}" font-family="sans-serif">` +
    `<text x="10" y="22" font-size="15" font-weight="bold">${title}</text>${rows.join("")}</svg>\n`
}

/** Runs SQL on the benchmarks' Postgres: rows as lines, columns tab-separated; notices (drop … cascade) kept quiet. */
export const psql = (sql: string): string =>
  execFileSync("psql", [postgresUrl, "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql], {
    encoding: "utf8",
    env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" }
  }).trim()

/** Drops a Postgres schema (the benchmarks use fresh ones). */
export const dropSchema = (schema: string): void => {
  execSync(`psql -h 127.0.0.1 -U postgres test -qc 'drop schema if exists "${schema}" cascade'`, { stdio: "ignore" })
}

/** The `N events/s overall` a chainstore run logs at its end. */
export const eventsPerSecond = (output: string): number => Number(/(\d+) events\/s overall/.exec(output)?.[1] ?? Number.NaN)
