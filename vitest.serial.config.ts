import { defineConfig } from "vitest/config"
import base from "./vitest.config.js"

// Tests that kill database backends or stop the cluster: one file at a time, after every other test.
export default defineConfig({
  test: {
    include: ["test/faults/serial/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: base.test?.testTimeout ?? 60_000,
    hookTimeout: base.test?.hookTimeout ?? 60_000
  }
})
