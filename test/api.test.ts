// The query API end to end, as users reach it: `chainstore run` and `chainstore serve` as child processes, data indexed
// from the simulated chain into Postgres, real clients over HTTP (graphql-http) and SSE (graphql-sse), answers compared
// with SQL on the tables. The browser test drives GraphiQL in headless Chromium.
import * as fs from "node:fs"
import { serverAudits } from "graphql-http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { counter, data, graphql, live, post, serve, stop } from "./support/api.js"
import { cli, dropSchema, example, freePort, metrics, query, type Running, start, tempDir, waitFor, type Target } from "./support/cli.js"
import { type Anvil, balanceOf, batchTransfer, deployToken, makeTransfers, sprayAccounts, startAnvil } from "./support/anvil.js"
import * as Sim from "./support/sim.js"

const sim = "blocks=80,eventsPerBlock=50,accounts=40,seed=7"
const token = Sim.exampleToken
const cwd = tempDir("cs-api-")
const schemas: Array<string> = []
const newSchema = (): Target & { readonly _tag: "postgres" } => {
  const schema = `cs_api_${Math.random().toString(36).slice(2, 10)}`
  schemas.push(schema)
  return { _tag: "postgres", schema }
}
const dbArgs = (target: { readonly schema: string }) => ["--db", "postgres://postgres@127.0.0.1:5432/test", "--schema", target.schema]
const running: Array<Running> = []
afterAll(async () => {
  for (const r of running) await stop(r)
  for (const schema of schemas) await dropSchema(schema)
})

type Account = { id: string; balance: string }
const sqlAccounts = (target: Target, order: string) =>
  query(target, (sql, schema) => sql.unsafe<Account>(`select id, balance::text as balance from "${schema}".account as a order by ${order}`))

describe("query API over a database another process wrote (chainstore serve)", () => {
  const full = newSchema()
  const stopped = newSchema()
  let url = ""
  let stoppedUrl = ""
  let port = 0

  beforeAll(async () => {
    const [a, b] = await Promise.all([
      cli(["run", example, "--sim", sim, "--metrics-port", "0", ...dbArgs(full)], { cwd }),
      cli(["run", example, "--sim", sim, "--end-block", "40", "--metrics-port", "0", ...dbArgs(stopped)], { cwd })
    ])
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    port = await freePort()
    const stoppedPort = await freePort()
    running.push(...await Promise.all([serve([example, ...dbArgs(full)], port, cwd), serve([example, ...dbArgs(stopped)], stoppedPort, cwd)]))
    url = `http://127.0.0.1:${port}/graphql`
    stoppedUrl = `http://127.0.0.1:${stoppedPort}/graphql`
  })

  it("pages through a list in a stable order, filters and counts as SQL does", async () => {
    // Every page of accounts by balance, descending (id breaks ties in the same direction).
    const expected = await sqlAccounts(full, "a.balance desc, a.id desc")
    const seen: Array<Account> = []
    let after: string | null = null
    for (let page = 0; page < 10; page++) {
      const got: { accounts: { nodes: Array<Account>; pageInfo: { hasNextPage: boolean; endCursor: string | null }; totalCount: number } } = await data(url, `query($after: String) {
        accounts(first: 7, orderBy: balance, orderDirection: desc, after: $after) { nodes { id balance } pageInfo { hasNextPage endCursor } totalCount }
      }`, { after })
      expect(got.accounts.totalCount).toBe(expected.length)
      seen.push(...got.accounts.nodes)
      if (!got.accounts.pageInfo.hasNextPage) break
      after = got.accounts.pageInfo.endCursor
    }
    expect(seen).toEqual(expected.map((a) => ({ id: a.id, balance: a.balance })))
    expect(seen).toHaveLength(40)

    // where: comparisons on bigints, in, starts_with, and/or; totalCount counts all pages.
    const where = `{ value_gt: "500000", blockNumber_lte: 60, or: [{ from_starts_with: "0x1" }, { to_in: ["${expected[0]!.id}", "${expected[1]!.id}"] }] }`
    const transfers: { transfers: { nodes: Array<{ id: string; from: { id: string } | null; value: string; blockNumber: number }>; totalCount: number } } = await data(url, `{
      transfers(first: 1000, where: ${where}, orderBy: blockNumber) { nodes { id value blockNumber } totalCount }
    }`)
    const sqlTransfers = await query(full, (sql, schema) =>
      sql.unsafe<{ id: string; value: string; block_number: number }>(
        `select id, value::text as value, block_number::int as block_number from "${schema}".transfer
         where value > 500000 and block_number <= 60 and (starts_with("from", '0x1') or "to" = any($1::text[])) order by block_number, id`,
        [[expected[0]!.id, expected[1]!.id]]
      ))
    expect(transfers.transfers.totalCount).toBe(sqlTransfers.length)
    expect(transfers.transfers.nodes).toEqual(sqlTransfers.map((t) => ({ id: t.id, value: t.value, blockNumber: t.block_number })))
    expect(sqlTransfers.length).toBeGreaterThan(10)

    // One by id, and an id that does not exist.
    const one: { account: Account | null; missing: Account | null } = await data(url, `{ account(id: "${expected[3]!.id}") { id balance } missing: account(id: "0xnope") { id } }`)
    expect(one).toEqual({ account: expected[3], missing: null })
  })

  it("resolves references and reverse lists as SQL joins do, in a fixed number of statements", async () => {
    const before = counter(await metrics(port), "chainstore_api_statements")
    const got: {
      accounts: { nodes: Array<{ id: string; transfersByTo: { nodes: Array<{ id: string; from: Account | null }>; totalCount: number } }> }
    } = await data(url, `{
      accounts(first: 40) { nodes { id transfersByTo(first: 3, orderBy: blockNumber, orderDirection: desc) { nodes { id from { id balance } } totalCount } } }
    }`)
    const statements = counter(await metrics(port), "chainstore_api_statements") - before
    // The page, the reverse lists of all 40 accounts, their counts, and the senders: one statement each, not one per account.
    expect(statements).toBeLessThanOrEqual(4)
    const rows = await query(full, (sql, schema) =>
      sql.unsafe<{ account: string; id: string; sender: string | null; balance: string | null; total: string }>(`
        select a.id as account, t.id, s.id as sender, s.balance::text as balance, (select count(*) from "${schema}".transfer c where c."to" = a.id)::text as total
        from "${schema}".account a
        join lateral (select * from "${schema}".transfer t where t."to" = a.id order by t.block_number desc, t.id desc limit 3) t on true
        left join "${schema}".account s on s.id = t."from"
        order by a.id, t.block_number desc, t.id desc`))
    const expected = new Map<string, { nodes: Array<{ id: string; from: Account | null }>; totalCount: number }>()
    for (const r of rows) {
      const entry = expected.get(r.account) ?? { nodes: [], totalCount: Number(r.total) }
      entry.nodes.push({ id: r.id, from: r.sender === null ? null : { id: r.sender, balance: r.balance! } })
      expected.set(r.account, entry)
    }
    expect(got.accounts.nodes).toHaveLength(40)
    for (const node of got.accounts.nodes) expect(node.transfersByTo).toEqual(expected.get(node.id) ?? { nodes: [], totalCount: 0 })
    // Mints come from the zero address, which is no account: a dangling reference reads as null.
    const mints = await data<{ transfers: { nodes: Array<{ from: Account | null }> } }>(url, `{ transfers(first: 3, where: { from: "0x0000000000000000000000000000000000000000" }) { nodes { from { id } } } }`)
    expect(mints.transfers.nodes).toEqual([{ from: null }, { from: null }, { from: null }])
  })

  it("answers as of a block (time-travel) exactly as a run stopped at that block, and refuses blocks history does not hold", async () => {
    const asOf = `{
      accounts(first: 1000, orderBy: balance) { nodes { id balance } totalCount }
      token(id: "${token}") { transfers totalSupply }
      transfers(first: 5, orderBy: blockNumber, orderDirection: desc) { nodes { id blockNumber from { id balance } } totalCount }
    }`
    const travelled = await data(url, asOf.replace(/\(first: (\d+)/g, "(block: { number: 40 }, first: $1").replace(`(id: "${token}")`, `(id: "${token}", block: { number: 40 })`))
    const reference = await data(stoppedUrl, asOf)
    expect(travelled).toEqual(reference)
    expect((reference as { token: { transfers: number } }).token.transfers).toBe(40 * 50)
    expect((reference as { accounts: { nodes: Array<Account> } }).accounts.nodes).toEqual(await sqlAccounts(stopped, "a.balance, a.id"))
    const now = await data(url, `{ token(id: "${token}") { transfers } }`)
    expect(now).toEqual({ token: { transfers: 80 * 50 } })

    for (const [block, message] of [[81, /not indexed yet: the committed block is 80/], [0, /outside the history window: blocks 1 to 80/]] as const) {
      const result = await graphql(url, `{ accounts(block: { number: ${block} }) { totalCount } }`)
      expect(result.errors?.[0]?.message).toMatch(message)
      expect((result.errors?.[0] as { extensions?: { code?: string } } | undefined)?.extensions?.code).toBe("BLOCK_OUT_OF_RANGE")
    }
  })

  it("_meta says how fresh the answer is", async () => {
    const got = await data(url, `{ _meta { committedCheckpointId chains { chainId startBlock processedBlock committedBlock headBlock ready historyFromBlock eventsProcessed } } }`)
    expect(got).toEqual({
      _meta: {
        committedCheckpointId: "80",
        chains: [{ chainId: 1337, startBlock: 1, processedBlock: 80, committedBlock: 80, headBlock: 80, ready: true, historyFromBlock: 1, eventsProcessed: 4000 }]
      }
    })
  })

  it("refuses bad input with GraphQL errors and 4xx, never a stack or SQL, and never runs user text as SQL", async () => {
    const cases: Array<[string, number, RegExp]> = [
      [`{"query": "{ accounts( "}`, 400, /Syntax Error/],
      [`{"query": "{ accounts { nodes { nope } } }"}`, 400, /Cannot query field .{0,2}nope.{0,2} on type .{0,2}Account/],
      [`{"query": "{ accounts(first: \\"ten\\") { totalCount } }"}`, 400, /Int cannot represent non-integer value/],
      [`{"query": "{ accounts(where: { balance_gt: \\"lots\\" }) { totalCount } }"}`, 400, /BigInt must be an integer/],
      [`{"query": "{ account(id: 1, bogus: true) { id } }"}`, 400, /Unknown argument .{0,2}bogus/],
      [`{"query": "{ a: accounts(first: 1000) { nodes { transfersByTo(first: 1000) { nodes { id } } } } }"}`, 400, /the limit is 100000/],
      [
        `{"query": "{ transfers { nodes { from { transfersByTo { nodes { from { transfersByTo { nodes { from { transfersByTo { nodes { from { id } } } } } } } } } } } } }"}`,
        400,
        /nested 13 fields deep; the limit is 12/
      ],
      [`{"query": "{ accounts(first: 5000) { totalCount } }"}`, 200, /first must be at most 1000/],
      [`{"query": "{ accounts(after: \\"bm90IGEgY3Vyc29y\\") { totalCount } }"}`, 200, /after is not a cursor of this list/],
      [`not json`, 400, /JSON/],
      [`{"nothing": 1}`, 400, /Missing query/]
    ]
    for (const [body, status, message] of cases) {
      const response = await post(url, body)
      expect(response.status, body).toBe(status)
      expect(response.text, body).toMatch(message)
      expect(response.text).not.toMatch(/\n\s+at |SELECT|FROM "/)
    }
    const wrongType = await fetch(url, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" })
    expect(wrongType.status).toBe(415)

    // Hostile strings go to Postgres as parameters only: they match nothing and change nothing.
    const hostile = ["'; drop table account; --", "\\'); delete from account; --", "%", "_", "\" OR 1=1 --", "é\u0000x", "$1", "0x'||'"]
    const countBefore = await query(full, (sql, schema) => sql.unsafe<{ n: string }>(`select count(*)::text as n from "${schema}".account`))
    for (const text of hostile) {
      const result = await graphql(url, `query($i: ID!, $t: String!, $ids: [ID!]) {
        accounts(where: { or: [{ id: $i }, { id_contains: $t }, { id_starts_with: $t }, { id_in: $ids }, { id_gt: $i, id_lt: $i }] }) { totalCount }
      }`, { i: text, t: text, ids: [text, `${text}'`] })
      if (result.errors === undefined) expect(result.data).toEqual({ accounts: { totalCount: 0 } })
      else expect(JSON.stringify(result.errors)).not.toMatch(/\n\s+at |SELECT/)
    }
    expect(await query(full, (sql, schema) => sql.unsafe<{ n: string }>(`select count(*)::text as n from "${schema}".account`))).toEqual(countBefore)
  })

  it("passes graphql-http's GraphQL-over-HTTP server audit with no failures", async () => {
    const failures: Array<string> = []
    for (const audit of serverAudits({ url })) {
      const result = await audit.fn()
      if (result.status !== "ok") failures.push(`${audit.id} ${audit.name}: ${result.status} ${result.reason}`)
    }
    expect(failures).toEqual([])
  })

  it("serves GraphiQL that loads in Chromium, runs a query and shows the result", async () => {
    const { chromium } = await import("playwright-core")
    const userDataDir = fs.mkdtempSync(`${tempDir("cs-chromium-")}/profile-`)
    const browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    })
    try {
      const page = await browser.newPage()
      const failed: Array<string> = []
      page.on("pageerror", (error) => failed.push(error.message))
      // Only this server is reached: the page loads nothing from elsewhere.
      const origins = new Set<string>()
      page.on("request", (request) => void origins.add(new URL(request.url()).origin))
      await page.goto(url)
      await page.waitForSelector(".graphiql-execute-button", { timeout: 30_000 })
      await page.click(".graphiql-execute-button")
      await page.waitForFunction(`document.querySelector(".result-window")?.textContent?.includes("committedBlock")`, null, { timeout: 30_000 })
      const shown = (await page.textContent(".result-window")) ?? ""
      expect(shown).toContain(`"committedBlock": 80`)
      expect(shown).toContain(`"chainId": 1337`)
      expect(failed).toEqual([])
      expect([...origins]).toEqual([`http://127.0.0.1:${port}`])
    } finally {
      await browser.close()
    }
  })
})

describe("query API of a running indexer (chainstore run), live queries", () => {
  it("serves committed data while indexing; a live query gets the new result after each commit, in run and in serve", async () => {
    const target = newSchema()
    const port = await freePort()
    // The simulated chain makes a block every 60 ms: about 5 s of commits to watch.
    const run = start(["run", example, "--sim", `${sim},blockTimeMs=60`, "--metrics-port", String(port), ...dbArgs(target)], { cwd, timeoutMs: 120_000 })
    running.push(run)
    const url = `http://127.0.0.1:${port}/graphql`
    type Token = { token: { transfers: number } | null }
    await waitFor(() => data<Token>(url, `{ token(id: "${token}") { transfers } }`), (d) => (d.token?.transfers ?? 0) > 0, 30_000)
    const servePort = await freePort()
    const [served] = await Promise.all([serve([example, ...dbArgs(target), "--poll-interval", "100"], servePort, cwd), consistentWhileIndexing(url, run)])
    running.push(served)
    const subscription = `subscription { token(id: "${token}") { transfers } }`
    const transfers = (r: { data?: Token | null }) => r.data?.token?.transfers ?? 0
    const [inRun, inServe] = await Promise.all([
      // In `run` the writer's own commit signal; the run ends with the chain, so three results suffice.
      live<Token>(url, subscription, () => true).then(async (first) => [...first, ...await live<Token>(url, subscription, (r) => transfers(r) > transfers(first[0]!) + 200)]),
      // In `serve` (another process) polling; it stays up after the run ends, so the last result is the whole chain.
      live<Token>(`http://127.0.0.1:${servePort}/graphql`, subscription, (r) => transfers(r) === 4000)
    ])
    for (const results of [inRun, inServe]) {
      const counts = results.map(transfers)
      expect(counts.length).toBeGreaterThanOrEqual(2)
      // Each result is a whole number of blocks (a commit), newer than the one before.
      for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1]!)
      for (const c of counts) expect(c % 50).toBe(0)
    }
    expect(inServe.length).toBeGreaterThanOrEqual(3)
    expect(inServe.map(transfers).at(-1)).toBe(4000)
    // A live query still open when the run ends does not hold it up: the run exits 0 and the stream ends.
    const open = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "text/event-stream" }, body: JSON.stringify({ query: subscription }) }).catch(() => undefined)
    const drained = open?.body?.pipeTo(new WritableStream()).catch(() => undefined)
    expect((await run.done).code).toBe(0)
    await drained
    // What the live query ended on is the chain's, read back through the API.
    const serveUrl = `http://127.0.0.1:${servePort}/graphql`
    const accounts = await data<{ accounts: { nodes: Array<Account> } }>(serveUrl, `{ accounts(first: 1000) { nodes { id balance } } }`)
    expect(accounts.accounts.nodes).toEqual(Sim.exampleTables(sim).accounts)
    const meta = await data<{ _meta: { chains: Array<{ committedBlock: number; processedBlock: number; ready: boolean }> } }>(serveUrl, `{ _meta { chains { committedBlock processedBlock ready } } }`)
    expect(meta._meta.chains[0]).toEqual({ committedBlock: 80, processedBlock: 80, ready: true })
  })
})

/** Reads while a run writes: in one request, the token's count, the transfer rows and _meta's committed block always agree. */
const consistentWhileIndexing = async (url: string, run: Running) => {
  type Snapshot = { token: { transfers: number } | null; transfers: { totalCount: number }; _meta: { chains: Array<{ committedBlock: number }> } }
  const seen = new Set<number>()
  while (run.child.exitCode === null && seen.size < 5) {
    const got = await graphql<Snapshot>(url, `{ token(id: "${token}") { transfers } transfers(first: 1) { totalCount } _meta { chains { committedBlock } } }`).catch(() => undefined)
    if (got?.data === undefined || got.data === null) continue
    const committed = got.data._meta.chains[0]!.committedBlock
    expect(got.data.transfers.totalCount).toBe(committed * 50)
    expect(got.data.token?.transfers ?? 0).toBe(committed * 50)
    seen.add(committed)
  }
  return seen
}

describe("query API while chainstore run writes, on embedded PGlite", () => {
  it("serves one committed snapshot per request while the writer commits", async () => {
    const port = await freePort()
    const run = start(["run", example, "--sim", `${sim},blockTimeMs=40`, "--metrics-port", String(port), "--data-dir", `${tempDir("cs-api-pglite-")}/.chainstore`], { cwd, timeoutMs: 120_000 })
    running.push(run)
    const url = `http://127.0.0.1:${port}/graphql`
    await waitFor(() => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status), (s) => s === 200, 30_000)
    const seen = await consistentWhileIndexing(url, run)
    expect(seen.size).toBeGreaterThanOrEqual(3)
    run.child.kill("SIGINT")
    expect((await run.done).code).toBe(0)
  })
})

describe("query API over data indexed from anvil", () => {
  let anvil: Anvil | undefined
  afterAll(() => anvil?.stop())

  it("answers the example's balances as SQL and the chain do, and a live query sees a new transfer once it is committed", async () => {
    anvil = await startAnvil({ chainId: 1337 })
    const deployed = await deployToken(anvil, { name: "Api", symbol: "API", supply: 10n ** 24n })
    const transfers = await makeTransfers(anvil, deployed.address, { count: 300, accounts: 20, seed: 3, perTx: 100 })
    const target = newSchema()
    const port = await freePort()
    const env = { RPC_URL: anvil.url, TOKEN_ADDRESS: deployed.address, CHAIN_ID: "1337", START_BLOCK: String(deployed.block) }
    // No END_BLOCK: the run follows the chain's head.
    const run = start(["run", example, "--metrics-port", String(port), ...dbArgs(target)], { cwd, env, timeoutMs: 120_000 })
    running.push(run)
    const url = `http://127.0.0.1:${port}/graphql`
    type Meta = { _meta: { chains: Array<{ committedBlock: number; ready: boolean }> } }
    await waitFor(() => data<Meta>(url, `{ _meta { chains { committedBlock ready } } }`), (d) => (d._meta.chains[0]?.committedBlock ?? 0) >= transfers.toBlock, 60_000)

    const accounts = await data<{ accounts: { nodes: Array<Account>; totalCount: number } }>(url, `{ accounts(first: 1000) { nodes { id balance } totalCount } }`)
    expect(accounts.accounts.nodes).toEqual(await sqlAccounts(target, "a.id"))
    expect(accounts.accounts.totalCount).toBe(21)
    for (const holder of sprayAccounts(20).slice(0, 5)) {
      const got = await data<{ account: Account | null }>(url, `query($id: ID!) { account(id: $id) { balance } }`, { id: holder.toLowerCase() })
      expect(got.account?.balance).toBe(String(await balanceOf(anvil, deployed.address, holder)))
    }

    // A live query on one holder: a transfer to it, once mined, indexed and committed, comes as a new result.
    const holder = sprayAccounts(20)[7]!.toLowerCase() as `0x${string}`
    const before = await balanceOf(anvil, deployed.address, holder)
    const chain = anvil
    const received = await live<{ account: { balance: string } | null }>(
      url,
      `subscription { account(id: "${holder}") { balance } }`,
      (r) => r.data?.account?.balance === String(before + 12345n),
      60_000,
      // The first result is the balance now; only then the transfer is made.
      async (_result, index) => {
        if (index === 0) await batchTransfer(chain, deployed.address, [{ to: holder, value: 12345n }])
      }
    )
    expect(received[0]?.data?.account?.balance).toBe(String(before))
    expect(received.at(-1)?.data?.account?.balance).toBe(String(await balanceOf(anvil, deployed.address, holder)))
    run.child.kill("SIGINT")
    expect((await run.done).code).toBe(0)
  })
})
