import { describe, it } from "@effect/vitest"
import { storageSuite } from "./conformance.js"
import { memoryBackend } from "./fixtures.js"

describe("Storage contract: core's in-memory storage", () => {
  storageSuite(it, memoryBackend)
})
