import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import { Entity } from "@chainstore/core"
import { Columns } from "@chainstore/persistence"
import { AllTypes, allTypes } from "./fixtures.js"

const table = (entity: Entity.Any) => {
  const result = Columns.fromEntity(entity)
  assert.isTrue(Result.isSuccess(result))
  return (result as Result.Success<Columns.Table, string>).success
}

const failure = (entity: Entity.Any) => {
  const result = Columns.fromEntity(entity)
  assert.isTrue(Result.isFailure(result))
  return (result as Result.Failure<Columns.Table, string>).failure
}

describe("Columns", () => {
  it("snake_cases names the way tables and columns are named", () => {
    assert.strictEqual(Columns.snakeCase("TokenInfo"), "token_info")
    assert.strictEqual(Columns.snakeCase("tokenID"), "token_id")
    assert.strictEqual(Columns.snakeCase("NFTOwner"), "nft_owner")
    assert.strictEqual(Columns.snakeCase("balance0Of"), "balance0_of")
    assert.strictEqual(Columns.snakeCase("already_snake"), "already_snake")
  })

  it("maps each field type to its column: kind, nullability and what NULL reads back as", () => {
    const columns = Object.fromEntries(table(AllTypes).columns.map((c) => [c.field, [c.name, c.kind, c.nullable, c.absent]]))
    assert.deepStrictEqual(columns, {
      id: ["id", "text", false, "undefined"],
      text: ["text", "text", false, "undefined"],
      big: ["big", "numeric", false, "undefined"],
      int: ["int", "bigint", false, "undefined"],
      small: ["small", "integer", false, "undefined"],
      num: ["num", "double", false, "undefined"],
      flag: ["flag", "boolean", false, "undefined"],
      at: ["at", "timestamptz", false, "undefined"],
      tags: ["tags", "jsonb", false, "undefined"],
      nested: ["nested", "jsonb", false, "undefined"],
      plain: ["plain", "jsonb", false, "undefined"],
      anything: ["anything", "jsonb", true, "null"],
      maybeBig: ["maybe_big", "numeric", true, "null"],
      note: ["note", "text", true, "omit"],
      kind: ["kind", "text", false, "undefined"]
    })
    assert.strictEqual(table(AllTypes).columns[0]?.field, "id")
  })

  it("encodes to SQL text and decodes back to the same Type value", () => {
    const { columns } = table(AllTypes)
    const value = allTypes("v", { big: -(10n ** 77n), maybeBig: 2n ** 100n, note: "n", num: -Infinity })
    const encoded = Columns.encodeColumns(columns, [value])
    const row = Object.fromEntries(columns.map((c, i) => {
      const text = encoded[i]![0]!
      // What the driver hands back: numbers, booleans, dates and parsed JSON for those kinds.
      const raw = c.kind === "jsonb" ? JSON.parse(text) : c.kind === "boolean" ? text === "t" : c.kind === "integer" || c.kind === "double" ? Number(text) : c.kind === "bigint" ? BigInt(text) : c.kind === "timestamptz" ? new Date(text) : text
      return [c.name, raw]
    }))
    assert.deepStrictEqual(Columns.decodeRow(columns, row), value)
    assert.strictEqual(encoded[columns.findIndex((c) => c.field === "nested")]![0], JSON.stringify({ amount: "1000000000000000000000000000000", when: "1970-01-01T00:00:00.000Z", items: [{ k: "a", v: 1 }] }))
  })

  it("sends a column of nulls only as NULL, since no array type can be inferred for it", () => {
    assert.deepStrictEqual(Columns.arrayParam(["a", null]), ["a", null])
    assert.deepStrictEqual(Columns.arrayParam([null, "b"]), [null, "b"])
    assert.strictEqual(Columns.arrayParam([null, null]), null)
    assert.deepStrictEqual(Columns.arrayParam([]), [])
  })

  it("strips NUL from strings at any depth and leaves other values alone", () => {
    const date = new Date(0)
    assert.deepStrictEqual(
      Columns.cleanText({ a: "x\u0000y", list: ["\u0000", { b: "c\u0000" }, 1n], date, n: 1, nil: null }),
      { a: "xy", list: ["", { b: "c" }, 1n], date, n: 1, nil: null }
    )
  })

  it("splits rows into statements only when their text passes the budget", () => {
    const column = Array.from({ length: 10 }, () => "x".repeat(7))
    assert.deepStrictEqual(Columns.chunkRanges([column], 1_000), [[0, 10]])
    assert.deepStrictEqual(Columns.chunkRanges([column], 40), [[0, 4], [4, 8], [8, 10]])
    assert.deepStrictEqual(Columns.chunkRanges([["x".repeat(100)]], 10), [[0, 1]])
    assert.deepStrictEqual(Columns.chunkRanges([[]], 10), [])
  })

  it("refuses names that are not identifiers, collide once snake_cased, or take the reserved prefix", () => {
    assert.include(failure(Entity.make("Bad Name", { id: Schema.String })), "\"Bad Name\" is not a valid identifier")
    assert.include(failure(Entity.make("Ok", { id: Schema.String, "a-b": Schema.String })), "\"Ok.a-b\" is not a valid identifier")
    assert.include(failure(Entity.make("Ok", { id: Schema.String, fooBar: Schema.String, foo_bar: Schema.String })), "both map to column \"foo_bar\"")
    assert.include(failure(Entity.make("chainstore_state", { id: Schema.String })), "reserved prefix")
    assert.include(failure(Entity.make("Ok", { id: Schema.String, chainstoreChange: Schema.String })), "reserved prefix")
    assert.include(failure(Entity.make("Ok", { id: Schema.Number as unknown as Schema.String })), "needs a required string id")
  })
})
