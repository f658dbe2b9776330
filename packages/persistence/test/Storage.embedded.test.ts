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
        let turns = 0
        // Each turn needs a real 1 ms timer to fire, so it only advances while the event loop is free.
        const ticker = yield* Effect.forkChild(Effect.forever(
          Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1))).pipe(Effect.andThen(Effect.sync(() => turns++)))
        ))
        const started = turns
        yield* storage.writeBatch(plan({ entities: { Account: rows.map((r) => set(r, 1n)) }, checkpoints: [{ id: 1n, block: 100 }] }))
        const during = turns - started
        yield* Fiber.interrupt(ticker)
        assert.isAtLeast(during, 20, `only ${during} timer turns during the write`)
        assert.strictEqual((yield* storage.status).entityCounts.find((e) => e.entity === "Account")?.rows, 100_000)
      })))
})
