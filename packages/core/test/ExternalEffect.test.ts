import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { ExternalEffect } from "@chainstore/core"

const pair = ExternalEffect.make({
  name: "pair",
  input: Schema.Struct({ from: Schema.String, to: Schema.String, n: Schema.optional(Schema.Number), at: Schema.optional(Schema.BigInt) }),
  output: Schema.String,
  run: () => Effect.succeed("x")
})

const dated = ExternalEffect.make({
  name: "dated",
  input: Schema.Struct({ at: Schema.Date }),
  output: Schema.String,
  run: () => Effect.succeed("x")
})

describe("ExternalEffect input keys", () => {
  it("are the stable JSON of the input: key order and absent fields do not matter", () => {
    const key = ExternalEffect.keyOf(pair, { from: "a\"b", to: "c", n: 1, at: 5n })
    assert.strictEqual(key, `{"at":"5","from":"a\\"b","n":1,"to":"c"}`)
    assert.strictEqual(ExternalEffect.keyOf(pair, { to: "c", at: 5n, n: 1, from: "a\"b" }), key)
    assert.strictEqual(ExternalEffect.keyOf(pair, { from: "a", to: "c" }), ExternalEffect.keyOf(pair, { to: "c", from: "a", n: undefined }))
    // The plain-data fast path gives what the schema's JSON encoding gives.
    assert.strictEqual(key, ExternalEffect.stableStringify(Schema.encodeSync(Schema.toCodecJson(pair.input))({ from: "a\"b", to: "c", n: 1, at: 5n })))
  })

  it("come from the schema's encoding for values that are not plain data, and name an input it cannot encode", () => {
    assert.strictEqual(ExternalEffect.keyOf(dated, { at: new Date(0) }), `{"at":"1970-01-01T00:00:00.000Z"}`)
    const bad = ExternalEffect.keyOf(dated, { at: new Map() as unknown as Date })
    assert.instanceOf(bad, ExternalEffect.UnencodableInput)
  })
})
