import { defineConfig } from "vitest/config"

// vitest 5 reports failures with Map.groupBy, which Node 20 lacks.
if (!("groupBy" in Map)) {
  Object.defineProperty(Map, "groupBy", {
    value: <K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, Array<V>> => {
      const groups = new Map<K, Array<V>>()
      let i = 0
      for (const item of items) {
        const k = key(item, i++)
        const group = groups.get(k)
        if (group === undefined) groups.set(k, [item])
        else group.push(item)
      }
      return groups
    }
  })
}

export default defineConfig({
  // Tests run the packages' TypeScript sources ("source" export condition), not their built dist/.
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // Killing backends and stopping the cluster must not overlap other database tests: vitest.serial.config.ts.
    exclude: ["test/faults/serial/**", "**/node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
