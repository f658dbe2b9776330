/**
 * Query API: queries/s and latency of `chainstore serve` (GraphQL over HTTP) for a by-id query and a filtered,
 * paginated list over a 1M-row Transfer table of the erc20 example, next to the same queries in plain SQL through
 * the same Postgres (the @effect/sql-pg client, in this process). Closed loop: `--concurrency` clients each send
 * the next request when the last one answered, for `--seconds` per case; ids and addresses are drawn at random.
 * The load generator, the server and Postgres share this machine's cores.
 * Usage: npx tsx bench/api.ts [--rows 1000000] [--seconds 10] [--concurrency 16]
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import * as os from "node:os"
import { parseArgs } from "node:util"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { Embedded } from "@chainstore/persistence"
import { chainstoreBin, dropSchema, fmt, machine, postgresUrl, root, writeSection } from "./lib.js"

const { values } = parseArgs({ options: { rows: { type: "string", default: "1000000" }, seconds: { type: "string", default: "10" }, concurrency: { type: "string", default: "16" } } })
const rows = Number(values.rows)
const seconds = Number(values.seconds)
const concurrency = Number(values.concurrency)
const schema = "cs_bench_api"
const addresses = 10_000
const example = `${root}/examples/erc20`

const address = (n: number) => `0x${n.toString(16).padStart(40, "0")}`

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const withSql = <A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>, maxConnections = 2) =>
  Effect.runPromise(Effect.gen(function*() {
    return yield* f(yield* SqlClient.SqlClient)
  }).pipe(Effect.scoped, Effect.provide(Embedded.layerPostgres({ url: Redacted.make(postgresUrl), maxConnections }))))

const run = (args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [chainstoreBin, ...args], { stdio: "inherit" })
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`chainstore ${args[0]} exited with ${code}`))))
  })

// 1. The example's tables (a one-event run creates them), then `rows` transfers to `addresses` accounts, made server-side.
dropSchema(schema)
await run(["run", example, "--sim", "blocks=1,eventsPerBlock=1", "--db", postgresUrl, "--schema", schema, "--metrics-port", "0"])
const loadStarted = Date.now()
await withSql((sql) =>
  Effect.gen(function*() {
    yield* sql.unsafe(`TRUNCATE "${schema}".transfer, "${schema}".account`)
    yield* sql.unsafe(`INSERT INTO "${schema}".account (id, balance)
      SELECT '0x' || lpad(to_hex(g), 40, '0'), (g::numeric * 1000003) % 1000000000000 FROM generate_series(0, ${addresses - 1}) g`)
    yield* sql.unsafe(`INSERT INTO "${schema}".transfer (id, "from", "to", value, block_number)
      SELECT 't' || g, '0x' || lpad(to_hex((g * 7) % ${addresses}), 40, '0'), '0x' || lpad(to_hex(g % ${addresses}), 40, '0'),
        (g::numeric * 7919) % 1000000, g / 100 FROM generate_series(1, ${rows}) g`)
    yield* sql.unsafe(`ANALYZE "${schema}".transfer`)
    yield* sql.unsafe(`ANALYZE "${schema}".account`)
  }))
console.log(`loaded ${fmt(rows)} transfers in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s`)

// 2. `chainstore serve` on it.
const port = await freePort()
const server = spawn(process.execPath, [chainstoreBin, "serve", example, "--db", postgresUrl, "--schema", schema, "--port", String(port)], { stdio: "inherit" })
process.on("exit", () => server.kill("SIGTERM"))
const url = `http://127.0.0.1:${port}/graphql`
for (let i = 0; ; i++) {
  const up = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)
  if (up) break
  if (i > 200) throw new Error("serve did not start")
  await new Promise((r) => setTimeout(r, 100))
}

// 3. The cases.
const byIdQuery = `query($id: ID!) { transfer(id: $id) { id fromId toId value blockNumber } }`
const listQuery = `query($to: Address!) {
  transfers(first: 20, where: { to: $to, value_gt: "1000" }, orderBy: blockNumber, orderDirection: desc) {
    nodes { id fromId toId value blockNumber } pageInfo { hasNextPage endCursor }
  }
}`
const byIdSql = `SELECT "id", "from", "to", "value"::text AS "value", "block_number" FROM "${schema}"."transfer" WHERE "id" = $1`
const listSql = `SELECT "id", "from", "to", "value"::text AS "value", "block_number" FROM "${schema}"."transfer"
  WHERE "to" = $1 AND "value" > $2 ORDER BY "block_number" DESC, "id" DESC LIMIT 21`

const randomId = () => `t${1 + Math.floor(Math.random() * rows)}`
const randomAddress = () => address(Math.floor(Math.random() * addresses))

const graphql = async (query: string, variables: Record<string, unknown>) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
    body: JSON.stringify({ query, variables })
  })
  const body = (await response.json()) as { errors?: unknown; data?: unknown }
  if (!response.ok || body.errors !== undefined) throw new Error(`GraphQL failed: ${JSON.stringify(body)}`)
  return body.data
}

interface Measured {
  readonly qps: number
  readonly p50: number
  readonly p99: number
}

/** Closed-loop load: `concurrency` workers for `seconds` s, after a 1 s warm-up. */
const load = async (request: () => Promise<unknown>): Promise<Measured> => {
  const warmUntil = Date.now() + 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < warmUntil) await request()
  }))
  const latencies: Array<number> = []
  const started = performance.now()
  const until = started + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const t = performance.now()
      await request()
      latencies.push(performance.now() - t)
    }
  }))
  const elapsed = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!
  return { qps: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) }
}

const loadBefore = os.loadavg()[0]!.toFixed(1)
const results = new Map<string, Measured>()
results.set("by id, GraphQL", await load(() => graphql(byIdQuery, { id: randomId() })))
results.set("list, GraphQL", await load(() => graphql(listQuery, { to: randomAddress() })))
await withSql((sql) =>
  Effect.gen(function*() {
    const runPromise = Effect.runPromiseWith(yield* Effect.context<never>())
    results.set("by id, SQL", yield* Effect.promise(() => load(() => runPromise(sql.unsafe(byIdSql, [randomId()])))))
    results.set("list, SQL", yield* Effect.promise(() => load(() => runPromise(sql.unsafe(listSql, [randomAddress(), "1000"])))))
  }), concurrency)
server.kill("SIGTERM")
const loadAfter = os.loadavg()[0]!.toFixed(1)

const table = [
  "| query | GraphQL queries/s | GraphQL p50 ms | GraphQL p99 ms | plain SQL queries/s | SQL p50 ms | SQL p99 ms |",
  "|---|---|---|---|---|---|---|",
  ...(["by id", "list"] as const).map((name) => {
    const g = results.get(`${name}, GraphQL`)!
    const s = results.get(`${name}, SQL`)!
    return `| ${name === "by id" ? "`transfer(id:)` by id" : "`transfers(where: { to, value_gt }, orderBy: blockNumber desc, first: 20)`"} | ${fmt(g.qps)} | ${g.p50.toFixed(2)} | ${g.p99.toFixed(2)} | ${fmt(s.qps)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} |`
  })
].join("\n")
console.log(table)
writeSection("Query API", `
What it measures: queries/s and latency of the GraphQL API (\`chainstore serve\`, a separate process: HTTP, parse,
validate with the depth/complexity limits, one read-only REPEATABLE READ transaction per request, SQL, JSON) for a
by-id query and a filtered, paginated list, against the same queries as plain SQL through the same Postgres 15
(\`@effect/sql-pg\` in the benchmark process, no HTTP, no transaction). The Transfer table of the erc20 example
holds ${fmt(rows)} rows (to ${fmt(addresses)} addresses, indexed through the \`references\` of \`from\`/\`to\`;
about ${fmt(rows / addresses)} transfers per address); ids and addresses are drawn at random. Closed loop:
${concurrency} concurrent clients for ${seconds} s per case after a 1 s warm-up. The load generator, the server and
Postgres share the 2 cores, so these are lower bounds for a server on its own machine.

Command (from the repository root, Postgres at 127.0.0.1:5432, database \`test\`):

\`\`\`
npx tsx bench/api.ts --rows ${rows} --seconds ${seconds} --concurrency ${concurrency}
\`\`\`

Results, ${machine()}:

${table}

Load average of the machine (1 min) at the start and at the end of the measurements: ${loadBefore} and ${loadAfter}
(other work on this shared machine shows here; runs on a busy machine varied by up to 2.6×).

The GraphQL requests pay for what plain SQL does not: HTTP and JSON both ways, GraphQL parsing and validation (both
cached per query text), and a transaction around the one SELECT (BEGIN … COMMIT: two more round trips to Postgres;
\`serve\` starts its connections with the statement timeout, so no SET per request), all on one Node thread, while
the plain SQL load spreads over Postgres' processes. Scaling out: run N \`chainstore serve\` processes (each on a
read replica or the primary) behind any HTTP load balancer; each is stateless apart from its connection pool.
`)
dropSchema(schema)
process.exit(0)
