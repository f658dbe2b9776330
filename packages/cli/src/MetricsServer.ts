/**
 * MetricsServer: HTTP on the metrics port — `/metrics` (Prometheus), `/healthz`, `/ready` (200 once every chain
 * reached its head or end block), and the query API (`/graphql`, an Effect HTTP app) when one is given.
 * A taken port is a warning, not a failure.
 */
import * as http from "node:http"
import { Effect } from "effect"
import type { HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"

export interface Options {
  /** 0 disables the server. */
  readonly port: number
  readonly host: string
  readonly isReady: Effect.Effect<boolean>
  /** The query API, answering the paths it handles (any method). */
  readonly api?: {
    readonly handles: (pathname: string) => boolean
    readonly app: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
  } | undefined
}

export const serve = Effect.fn("MetricsServer.serve")(function*(options: Options) {
  if (options.port === 0) return
  const context = yield* Effect.context<never>()
  const run = Effect.runPromiseWith(context)
  const api = options.api
  // Loaded only with an API to serve: the Effect HTTP stack costs start-up time a metrics-only server does not need.
  const apiHandler = api === undefined ? undefined : yield* Effect.flatMap(
    Effect.promise(() => import("@effect/platform-node/NodeHttpServer")),
    (NodeHttpServer) => Effect.flatMap(Effect.scope, (scope) => NodeHttpServer.makeHandler(api.app, { scope }))
  )
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/"
    if (apiHandler !== undefined && api!.handles(path)) return apiHandler(req, res)
    const reply = (status: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(status, { "content-type": type })
      res.end(body)
    }
    if (req.method !== "GET") return reply(405, "method not allowed\n")
    if (path === "/healthz") return reply(200, "ok\n")
    if (path === "/ready") {
      return void run(options.isReady).then((ready) => reply(ready ? 200 : 503, ready ? "ready\n" : "syncing\n"))
    }
    if (path === "/metrics") {
      return void run(PrometheusMetrics.format()).then((text) => reply(200, text, "text/plain; version=0.0.4; charset=utf-8"))
    }
    reply(404, "not found\n")
  })
  const listening = yield* Effect.callback<boolean>((resume) => {
    server.once("error", (error: NodeJS.ErrnoException) => resume(Effect.as(Effect.logWarning(`Metrics server not started on ${options.host}:${options.port}: ${error.code ?? error.message}`), false)))
    server.listen(options.port, options.host, () => resume(Effect.succeed(true)))
  })
  if (!listening) return
  yield* Effect.addFinalizer(() => Effect.callback<void>((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  }))
  const address = server.address()
  const base = `http://${options.host}:${typeof address === "object" && address !== null ? address.port : options.port}`
  yield* Effect.logInfo(`Metrics on ${base}/metrics${api === undefined ? "" : `; GraphQL on ${base}/graphql`}`)
})
