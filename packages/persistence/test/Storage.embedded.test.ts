import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Embedded } from "@chainstore/persistence"
import { sqlSuite, storageSuite } from "./conformance.js"
import { account, plan, set, sqlBackend, withStorage } from "./fixtures.js"

// Created by the layer when the suite runs.
const dataDir = path.join(os.tmpdir(), `cs-embedded-${process.pid}-${Date.now().toString(36)}`)
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }))

const backend = sqlBackend("embedded")

layer(Embedded.layerEmbedded({ dataDir }), { timeout: "60 seconds" })("Storage contract: PgStorage on embedded PGlite", (it) => {
  storageSuite(it, backend)
  sqlSuite(it, backend)

  it.effect("the main thread keeps serving other fibers while the embedded backend writes", () =>
    withStorage(backend, (storage) =>
      Effect.gen(function*() {
        const rows = Array.from({ length: 100_000 }, (_, i) => account(`acc-${i}`, BigInt(i) * 10n ** 18n, `owner-${i % 50}`, i))
        const write = yield* Effect.forkChild(storage.writeBatch(plan({ entities: { Account: rows.map((r) => set(r, 1n)) }, checkpoints: [{ id: 1n, block: 100 }] })))
        // Event-loop turns only pass while the main thread is free: in-thread PGlite would finish the write first.
        for (let i = 0; i < 20; i++) yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        assert.isUndefined(write.pollUnsafe(), "the write finished before 20 event-loop turns: it blocked the main thread")
        yield* Fiber.join(write)
        assert.strictEqual((yield* storage.status).entityCounts.find((e) => e.entity === "Account")?.rows, 100_000)
      })))
})
