// PGlite in a worker thread, served on a unix socket by pglite-socket (design.md §7): PGlite runs WebAssembly
// on the thread that calls it, so it gets its own thread and the main thread stays free.
// Plain JavaScript so it loads the same way under node, tsx and vitest.
// Messages to the parent: { type: "ready" } | { type: "error", message } | { type: "closed" } | { type: "memory", bytes };
// from it: { type: "close" } | { type: "memory" }.
import { parentPort, workerData } from "node:worker_threads"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import * as Template from "./pgliteTemplate.mjs"

const { dataDir, socketPath, maxConnections } = workerData

let db
let server
try {
  Template.copyTo(dataDir)
  db = await PGlite.create({ dataDir })
  server = new PGLiteSocketServer({ db, path: socketPath, maxConnections })
  await server.start()
  parentPort.postMessage({ type: "ready" })
} catch (error) {
  parentPort.postMessage({ type: "error", message: error instanceof Error ? error.message : String(error) })
}

parentPort.on("message", async (message) => {
  // PGlite's WebAssembly memory: its Postgres heap, shared buffers included.
  if (message?.type === "memory") return parentPort.postMessage({ type: "memory", bytes: db?.mod?.HEAPU8?.length })
  if (message?.type !== "close") return
  try {
    if (server !== undefined) await server.stop()
    if (db !== undefined && !db.closed) await db.close()
    parentPort.postMessage({ type: "closed" })
  } catch (error) {
    parentPort.postMessage({ type: "error", message: error instanceof Error ? error.message : String(error) })
  }
})
