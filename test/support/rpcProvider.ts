/**
 * A JSON-RPC endpoint that behaves like a hosted provider: a real HTTP server proxying to an upstream node (anvil)
 * that injects the faults hosted providers show — logs without `blockTimestamp`, Alchemy's eth_getLogs range cap
 * with a suggested range, Infura's result cap, CDN HTML 503 pages, dropped connections, requests that hang, batch
 * size limits, HTTP 429 and Infura's rate-limit body, per-item errors, null or wrong blocks and short replies inside
 * batches, lagging eth_getLogs answers, outages, a wrong chain id, 401/403.
 *
 * Which request gets which fault is decided by a seeded draw per (fault, request content, how many times that content
 * was asked), not by arrival order: the same seed gives the same faults however concurrent requests interleave,
 * and asking again draws anew, so a passing fault passes.
 */
import { EventEmitter } from "node:events"
import * as http from "node:http"

export interface Faults {
  /** Logs come without `blockTimestamp` (most hosted providers). */
  readonly noTimestamps?: boolean
  /** eth_getLogs over more blocks than this is refused, Alchemy-style, naming a range that works. */
  readonly rangeCap?: number
  /** eth_getLogs answering more logs than this is refused, Infura-style (-32005 query returned more than N results). */
  readonly resultCap?: number
  /** A batch of more calls than this is refused whole: one error object instead of an array, one in an array, or HTTP 413. */
  readonly maxBatch?: number
  readonly batchRefusal?: "error-object" | "error-array" | "http-413"
  // Probabilities per HTTP request, 0..1:
  /** A CDN's HTML 503 page. */
  readonly html503?: number
  /** The connection is destroyed without an answer. */
  readonly drop?: number
  /** The JSON reply is cut short. */
  readonly malformed?: number
  /** HTTP 429 (with `Retry-After: retryAfter` seconds when set). */
  readonly http429?: number
  readonly retryAfter?: number
  /** Infura's rate-limit reply: -32005 "project ID request rate exceeded" with `backoff_seconds`. */
  readonly infuraRateLimit?: number
  readonly backoffSeconds?: number
  /** The request hangs `hangMs` (default 40 s) before being answered; only `hangMethods` (default: headers and eth_blockNumber). */
  readonly hang?: number
  readonly hangMs?: number
  readonly hangMethods?: ReadonlyArray<string>
  // Probabilities per call (each item of a batch, or a single call):
  /** Alchemy's 429 "exceeded its compute units per second capacity" as the item's error. */
  readonly itemRateLimit?: number
  /** eth_getBlockByNumber answers null (a node behind the load balancer). */
  readonly nullBlock?: number
  /** eth_getBlockByNumber answers another block. */
  readonly wrongBlock?: number
  /** A batch reply lacks the item. */
  readonly dropItem?: number
  /** eth_getBlockByNumber of a block with logs answers another hash (a node on a fork for a moment). */
  readonly wrongHash?: number
  /** eth_getLogs reaching the last `lagBlocks` (default 5) blocks answers [] (a node behind). */
  readonly lagLogs?: number
  readonly lagBlocks?: number
  /** eth_getLogs by blockHash answers "unknown block". */
  readonly unknownBlockHash?: number
  /** Every reply this many ms late (a slow endpoint). */
  readonly delayMs?: number
  /** Batch replies in reverse order (allowed by JSON-RPC). */
  readonly reorder?: boolean
  /** The chain id eth_chainId answers. */
  readonly chainId?: number
  /** Every request answered with this HTTP status (401, 403). */
  readonly status?: number
}

export interface Stats {
  /** HTTP requests received. */
  requests: number
  /** Calls received, by method (a batch's items each count). */
  readonly calls: Map<string, number>
  /** Faults injected, by name. */
  readonly faults: Map<string, number>
  /** The largest eth_getLogs block span answered with logs. */
  widestLogs: number
}

export interface Provider {
  readonly url: string
  readonly stats: Stats
  setFaults(faults: Faults): void
  /** While on, every request is answered 503. */
  setOutage(on: boolean): void
  /** Resolves once `predicate` holds, checked after every request (rejects after `timeoutMs`). */
  waitFor(predicate: (stats: Stats) => boolean, timeoutMs?: number): Promise<void>
  close(): Promise<void>
}

/** Every fault of the table, at rates a run survives in seconds. */
export const allFaults: Faults = {
  noTimestamps: true,
  rangeCap: 8,
  resultCap: 400,
  maxBatch: 6,
  html503: 0.04,
  drop: 0.04,
  malformed: 0.03,
  http429: 0.04,
  infuraRateLimit: 0.03,
  backoffSeconds: 0.05,
  hang: 0.02,
  itemRateLimit: 0.05,
  nullBlock: 0.05,
  wrongBlock: 0.03,
  dropItem: 0.03,
  wrongHash: 0.03,
  lagLogs: 0.2,
  unknownBlockHash: 0.2,
  reorder: true
}

interface Call {
  readonly jsonrpc?: string
  readonly id?: unknown
  readonly method?: string
  readonly params?: ReadonlyArray<unknown>
}

interface Reply {
  readonly jsonrpc: string
  readonly id: unknown
  result?: unknown
  error?: { readonly code: number; readonly message: string; readonly data?: unknown }
}

const alchemyRateLimit = { code: 429, message: "Your app has exceeded its compute units per second capacity. If you have retries enabled, you can safely ignore this message. If not, check out https://docs.alchemy.com/reference/throughput" }
const html503 = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"

/** FNV-1a of a string, 32 bits. */
const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** A number in [0, 1) from a 32-bit seed (mulberry32's mix). */
const unit = (seed: number): number => {
  let t = (seed + 0x6d2b79f5) | 0
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Starts the provider on 127.0.0.1 (a free port) in front of `upstream`. */
export const startProvider = async (upstream: string, options: { readonly faults?: Faults; readonly seed?: number } = {}): Promise<Provider> => {
  let faults: Faults = options.faults ?? {}
  let outage = false
  const seed = options.seed ?? 1
  const seen = new Map<string, number>()
  const stats: Stats = { requests: 0, calls: new Map(), faults: new Map(), widestLogs: 0 }
  const events = new EventEmitter()
  events.setMaxListeners(100)
  const agent = new http.Agent({ keepAlive: true })
  const sockets = new Set<import("node:net").Socket>()

  const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
  const injected = (name: string) => {
    count(stats.faults, name)
    return true
  }
  /** Whether fault `name` (at rate `p`) hits this occurrence of `key`. */
  const draw = (name: string, p: number | undefined, key: string): boolean => p !== undefined && p > 0 && unit(hash(`${seed}|${name}|${key}`)) < p
  const occurrence = (call: Call): string => {
    const key = `${call.method}:${JSON.stringify(call.params ?? [])}`
    const n = (seen.get(key) ?? 0) + 1
    seen.set(key, n)
    return `${key}#${n}`
  }

  const forward = (body: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const request = http.request(upstream, { method: "POST", agent, headers: { "content-type": "application/json" } }, (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (d: Buffer) => chunks.push(d))
        response.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
        response.on("error", reject)
      })
      request.on("error", reject)
      request.end(body)
    })

  let head = 0
  const upstreamHead = async (): Promise<number> => {
    const reply = JSON.parse(await forward(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] }))) as Reply
    head = Number(reply.result)
    return head
  }
  const blocksWithLogs = new Set<number>()

  /** One call's reply, faults per call applied; undefined: dropped from the batch. */
  const answer = async (call: Call, reply: Reply, key: string, inBatch: boolean): Promise<Reply | undefined> => {
    if (inBatch && draw("dropItem", faults.dropItem, key) && injected("dropItem")) return undefined
    if (draw("itemRateLimit", faults.itemRateLimit, key) && injected("itemRateLimit")) return { jsonrpc: "2.0", id: call.id, error: alchemyRateLimit }
    if (reply.error !== undefined) return reply
    if (call.method === "eth_blockNumber") head = Number(reply.result)
    if (call.method === "eth_chainId" && faults.chainId !== undefined) return { ...reply, result: `0x${faults.chainId.toString(16)}` }
    if (call.method === "eth_getBlockByNumber" && reply.result !== null && typeof reply.result === "object") {
      const block = reply.result as { number: string; hash: string }
      if (draw("nullBlock", faults.nullBlock, key) && injected("nullBlock")) return { ...reply, result: null }
      if (draw("wrongBlock", faults.wrongBlock, key) && injected("wrongBlock")) return { ...reply, result: { ...block, number: `0x${(Number(block.number) + 1).toString(16)}` } }
      if (blocksWithLogs.has(Number(block.number)) && draw("wrongHash", faults.wrongHash, key) && injected("wrongHash")) {
        return { ...reply, result: { ...block, hash: `0x${"ee".repeat(32)}` } }
      }
    }
    if (call.method === "eth_getLogs" && Array.isArray(reply.result)) {
      const filter = (call.params?.[0] ?? {}) as { readonly blockHash?: string }
      if (filter.blockHash !== undefined && draw("unknownBlockHash", faults.unknownBlockHash, key) && injected("unknownBlockHash")) {
        return { jsonrpc: "2.0", id: call.id, error: { code: -32000, message: "unknown block" } }
      }
      const logs = reply.result as Array<Record<string, unknown>>
      for (const log of logs) blocksWithLogs.add(Number(log.blockNumber))
      if (faults.noTimestamps === true) for (const log of logs) delete log.blockTimestamp
    }
    return reply
  }

  /** A single eth_getLogs, kept as text: replies can be tens of MB, so only what a fault needs is parsed. */
  const getLogs = async (call: Call, body: string, key: string): Promise<{ readonly status: number; readonly text: string }> => {
    const filter = (call.params?.[0] ?? {}) as { readonly fromBlock?: string; readonly toBlock?: string; readonly blockHash?: string }
    const error = (code: number, message: string, data?: unknown) => ({ status: 200, text: JSON.stringify({ jsonrpc: "2.0", id: call.id, error: { code, message, ...(data === undefined ? {} : { data }) } }) })
    if (filter.blockHash !== undefined) {
      const reply = await answer(call, JSON.parse(await forward(body)) as Reply, key, false)
      return { status: 200, text: JSON.stringify(reply) }
    }
    const from = Number(filter.fromBlock)
    const to = Number(filter.toBlock)
    if (faults.rangeCap !== undefined && to - from + 1 > faults.rangeCap && injected("rangeCap")) {
      const works = `[0x${from.toString(16)}, 0x${(from + faults.rangeCap - 1).toString(16)}]`
      return error(-32600, `Log response size exceeded. You can make eth_getLogs requests with up to a ${faults.rangeCap} block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: ${works}`)
    }
    let text = await forward(body)
    if (faults.lagLogs !== undefined && to > (head || (await upstreamHead())) - (faults.lagBlocks ?? 5) && draw("lagLogs", faults.lagLogs, key)) {
      // A node behind the others: it answers the logs of the blocks it has, and none of the rest.
      const reply = JSON.parse(text) as Reply
      const logs = Array.isArray(reply.result) ? reply.result as Array<{ readonly blockNumber: string }> : []
      const kept = logs.filter((l) => Number(l.blockNumber) <= head - (faults.lagBlocks ?? 5))
      if (kept.length < logs.length && injected("lagLogs")) text = JSON.stringify({ ...reply, result: kept })
    }
    if (faults.resultCap !== undefined) {
      let logs = 0
      for (let i = text.indexOf(`"logIndex"`); i !== -1; i = text.indexOf(`"logIndex"`, i + 10)) logs++
      if (logs > faults.resultCap && injected("resultCap")) return error(-32005, `query returned more than ${faults.resultCap} results. Try with this block range [0x${from.toString(16)}, 0x${Math.max(from, from + Math.floor((to - from) / 2)).toString(16)}].`)
    }
    if (text.includes(`"logIndex"`)) {
      stats.widestLogs = Math.max(stats.widestLogs, to - from + 1)
      // Hash faults only hit blocks whose logs were served: they compare against them.
      if ((faults.wrongHash ?? 0) > 0) for (const m of text.matchAll(/"blockNumber":"(0x[0-9a-f]+)"/g)) blocksWithLogs.add(Number(m[1]))
    }
    if (faults.noTimestamps === true) text = text.replace(/,"blockTimestamp":"0x[0-9a-f]+"/g, "")
    return { status: 200, text }
  }

  const respond = async (
    path: string,
    body: string,
    parsed: Call | Array<Call>,
    keys: ReadonlyArray<string>
  ): Promise<{ readonly status: number; readonly text: string; readonly headers?: Record<string, string> } | "drop"> => {
    const calls = Array.isArray(parsed) ? parsed : [parsed]
    const requestKey = keys.join(",")
    if (faults.status !== undefined && injected(`status${faults.status}`)) {
      // Providers echo the key they refuse: the client must not show it.
      const message = faults.status === 401 ? "Must be authenticated!" : `invalid project id ${path.split("/").pop()}`
      return { status: faults.status, text: JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32002, message } }) }
    }
    if (outage && injected("outage")) return { status: 503, text: html503, headers: { "content-type": "text/html" } }
    if (draw("drop", faults.drop, requestKey) && injected("drop")) return "drop"
    if (draw("html503", faults.html503, requestKey) && injected("html503")) return { status: 503, text: html503, headers: { "content-type": "text/html" } }
    if (draw("http429", faults.http429, requestKey) && injected("http429")) {
      return { status: 429, text: JSON.stringify({ jsonrpc: "2.0", id: null, error: alchemyRateLimit }), headers: faults.retryAfter === undefined ? {} : { "retry-after": String(faults.retryAfter) } }
    }
    if (draw("infuraRateLimit", faults.infuraRateLimit, requestKey) && injected("infuraRateLimit")) {
      const error = { code: -32005, message: "project ID request rate exceeded", data: { see: "https://infura.io/docs/ethereum/jsonrpc/ratelimits", current_rps: 13.333, allowed_rps: 10.0, backoff_seconds: faults.backoffSeconds ?? 1 } }
      return { status: 200, text: JSON.stringify({ jsonrpc: "2.0", id: Array.isArray(parsed) ? null : parsed.id, error }) }
    }
    if (Array.isArray(parsed) && faults.maxBatch !== undefined && parsed.length > faults.maxBatch && injected("maxBatch")) {
      if (faults.batchRefusal === "http-413") return { status: 413, text: "Request Entity Too Large" }
      const refusal = { jsonrpc: "2.0", id: null, error: { code: -32600, message: `batch size ${parsed.length} exceeds the limit of ${faults.maxBatch}` } }
      return { status: 200, text: JSON.stringify(faults.batchRefusal === "error-array" ? [refusal] : refusal) }
    }
    const malformed = draw("malformed", faults.malformed, requestKey)
    let out: { status: number; text: string }
    if (!Array.isArray(parsed) && parsed.method === "eth_getLogs") out = await getLogs(parsed, body, keys[0]!)
    else {
      const upstreamReply = JSON.parse(await forward(body)) as Reply | Array<Reply>
      const replies = Array.isArray(upstreamReply) ? upstreamReply : [upstreamReply]
      const byId = new Map(replies.map((r) => [JSON.stringify(r.id), r]))
      const answered: Array<Reply> = []
      for (const [i, call] of calls.entries()) {
        const reply = byId.get(JSON.stringify(call.id))
        const modified = reply === undefined ? undefined : await answer(call, reply, keys[i]!, Array.isArray(parsed))
        if (modified !== undefined) answered.push(modified)
      }
      if (Array.isArray(parsed) && faults.reorder === true) answered.reverse()
      out = { status: 200, text: JSON.stringify(Array.isArray(parsed) ? answered : answered[0]) }
    }
    if (malformed && injected("malformed")) return { status: 200, text: out.text.slice(0, Math.max(1, Math.floor(out.text.length / 2))) }
    return out
  }

  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (d: Buffer) => chunks.push(d))
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8")
      stats.requests++
      let parsed: Call | Array<Call>
      try {
        parsed = JSON.parse(body) as Call | Array<Call>
      } catch {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } }))
        return
      }
      const calls = Array.isArray(parsed) ? parsed : [parsed]
      for (const call of calls) count(stats.calls, call.method ?? "?")
      const keys = calls.map(occurrence)
      const hangs = calls.some((c) => (faults.hangMethods ?? ["eth_getBlockByNumber", "eth_blockNumber"]).includes(c.method ?? "")) &&
        draw("hang", faults.hang, keys.join(","))
      const go = () =>
        respond(req.url ?? "/", body, parsed, keys).then(
          (r) => {
            if (r === "drop") return req.socket.destroy()
            if (!res.writableEnded && !res.destroyed) res.writeHead(r.status, { "content-type": "application/json", ...r.headers }).end(r.text)
          },
          (error: unknown) => {
            if (!res.writableEnded && !res.destroyed) res.writeHead(502, { "content-type": "text/plain" }).end(`bad gateway: ${String(error)}`)
          }
        ).finally(() => events.emit("request"))
      const late = hangs && injected("hang") ? faults.hangMs ?? 40_000 : faults.delayMs ?? 0
      if (late === 0) return void go()
      // Answered late, or never if the client gave up.
      const timer = setTimeout(go, late)
      res.on("close", () => clearTimeout(timer))
    })
  })
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as { port: number }).port

  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    setFaults: (next) => {
      faults = next
    },
    setOutage: (on) => {
      outage = on
    },
    waitFor: (predicate, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        if (predicate(stats)) return resolve()
        const timer = setTimeout(() => {
          events.off("request", check)
          reject(new Error(`provider: condition not met within ${timeoutMs} ms (${stats.requests} requests)`))
        }, timeoutMs)
        const check = () => {
          if (!predicate(stats)) return
          clearTimeout(timer)
          events.off("request", check)
          resolve()
        }
        events.on("request", check)
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        agent.destroy()
        server.close(() => resolve())
      })
  }
}
