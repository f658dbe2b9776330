import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { getIntrospectionQuery, parse, specifiedRules, validate as check } from "graphql"
import { Catalog, GraphqlSchema, Limits } from "@chainstore/api"
import { erc20 } from "./fixtures.js"

const catalog = Result.getOrThrow(Catalog.make(erc20({ blocks: 1 }), "public"))
const schema = GraphqlSchema.make(catalog)
const options: Limits.Options = { maxDepth: 6, maxComplexity: 5_000, defaultFirst: 100, pageFields: new Set(["accounts", "transfers", "transfersByFrom", "transfersByTo"]) }
const validate = (query: string, variables?: Record<string, unknown>) =>
  check(schema, parse(query), [...specifiedRules, Limits.depthLimit(options), Limits.complexityLimit(options, variables)]).map((e) => e.message)

describe("Limits", () => {
  it("lets GraphiQL's introspection query through: introspection reads no table", () => {
    assert.deepStrictEqual(validate(getIntrospectionQuery()), [])
  })

  it("refuses operations nested too deep, through fragments too", () => {
    assert.deepStrictEqual(validate(`{ transfers { nodes { from { id } } } }`), [])
    const deep = `fragment F on Account { transfersByTo { nodes { from { transfersByTo { nodes { id } } } } } } { accounts { nodes { ...F } } }`
    assert.include(validate(deep), "The operation is nested 8 fields deep; the limit is 6.")
  })

  it("estimates rows × fields from first (literal, variable, or the default page size) and refuses past the limit", () => {
    assert.deepStrictEqual(validate(`{ accounts(first: 40) { nodes { id balance } } }`), [])
    assert.lengthOf(validate(`{ accounts { nodes { transfersByTo { nodes { id } } } } }`), 1)
    assert.deepStrictEqual(validate(`query($n: Int) { accounts(first: $n) { nodes { transfersByTo(first: $n) { nodes { id } } } } }`, { n: 5 }), [])
    assert.match(validate(`query($n: Int) { accounts(first: $n) { nodes { transfersByTo(first: $n) { nodes { id } } } } }`, { n: 500 })[0] ?? "", /may read about \d+ values; the limit is 5000/)
  })
})
