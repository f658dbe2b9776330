/** Real clients of the query API: graphql-http's for queries, graphql-sse's for live queries, and raw fetch for status codes. */
import type { ExecutionResult } from "graphql"
import { createClient as createHttpClient } from "graphql-http"
import { createClient as createSseClient } from "graphql-sse"
import { start, waitFor, type Running } from "./cli.js"

export type Result<D = Record<string, unknown>> = ExecutionResult<D, unknown>

/** Runs one operation with graphql-http's client (GraphQL over HTTP, POST, application/graphql-response+json). */
export const graphql = <D = Record<string, any>>(url: string, query: string, variables?: Record<string, unknown>): Promise<Result<D>> => {
  const client = createHttpClient({ url })
  return new Promise((resolve, reject) => {
    let result: Result<D> | undefined
    client.subscribe<D>(variables === undefined ? { query } : { query, variables }, {
      next: (r) => {
        result = r as Result<D>
      },
      error: reject,
      complete: () => (result === undefined ? reject(new Error("no result")) : resolve(result))
    })
  })
}

/** Runs a query and fails on GraphQL errors: its data. */
export const data = async <D = Record<string, any>>(url: string, query: string, variables?: Record<string, unknown>): Promise<D> => {
  const result = await graphql<D>(url, query, variables)
  if (result.errors !== undefined && result.errors.length > 0) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`)
  return result.data as D
}

/** A raw POST: status and body text, for the status codes the spec asks for. */
export const post = async (url: string, body: string, headers: Record<string, string> = {}) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/graphql-response+json", ...headers },
    body
  })
  return { status: response.status, text: await response.text() }
}

/**
 * Results of a live query (graphql-sse's client, GraphQL over SSE) until `until` holds on one, or `timeoutMs` passes.
 * Resolves with every result received.
 */
export const live = async <D = Record<string, any>>(
  url: string,
  query: string,
  until: (result: Result<D>) => boolean,
  timeoutMs = 60_000,
  onResult: (result: Result<D>, index: number) => Promise<void> | void = () => undefined
): Promise<Array<Result<D>>> => {
  const client = createSseClient({ url, retryAttempts: 0 })
  const results: Array<Result<D>> = []
  const iterator = client.iterate<D>({ query })[Symbol.asyncIterator]()
  const deadline = Date.now() + timeoutMs
  try {
    for (;;) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`live query: condition not met in ${timeoutMs} ms; got ${JSON.stringify(results)}`)
      let timer: NodeJS.Timeout | undefined
      const next = await Promise.race([
        iterator.next(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`live query: no result in ${timeoutMs} ms; got ${JSON.stringify(results)}`)), left)
        })
      ]).finally(() => clearTimeout(timer))
      if (next.done === true) throw new Error(`live query ended; got ${JSON.stringify(results)}`)
      results.push(next.value as Result<D>)
      await onResult(next.value as Result<D>, results.length - 1)
      if (until(next.value as Result<D>)) return results
    }
  } finally {
    // Closing the stream aborts its request; the client reports that abort, which is the point.
    await iterator.return?.().catch(() => undefined)
    client.dispose()
  }
}

/** Starts `chainstore serve` and resolves once it answers. */
export const serve = async (args: ReadonlyArray<string>, port: number, cwd: string): Promise<Running> => {
  const running = start(["serve", ...args, "--port", String(port)], { cwd, timeoutMs: 300_000 })
  await waitFor(() => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status), (s) => s === 200, 30_000)
  return running
}

/** Stops a running command with SIGTERM and waits for it. */
export const stop = async (running: Running | undefined) => {
  if (running === undefined || running.child.exitCode !== null) return
  running.child.kill("SIGTERM")
  await running.done
}

/** The value of counter `name` in `/metrics` text (0 when absent). */
export const counter = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0)
