import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { Catalog, ReadSql } from "@chainstore/api"
import { erc20 } from "./fixtures.js"

const catalog = Result.getOrThrow(Catalog.make(erc20({ blocks: 1 }), "public"))

describe("ReadSql", () => {
  const account = Catalog.entity(catalog, "Account")
  const transfer = Catalog.entity(catalog, "Transfer")
  const field = (name: string) => Catalog.field(transfer, name)!

  it("puts every value a client sent into parameters, never into the statement text", () => {
    const hostile = "x'); DROP TABLE account; --"
    const statement = ReadSql.page("public", {
      entity: transfer,
      where: { _tag: "Or", filters: [
        { _tag: "Compare", field: field("id"), op: "eq", value: hostile },
        { _tag: "Compare", field: field("id"), op: "contains", value: hostile },
        { _tag: "Compare", field: field("from"), op: "in", value: [hostile] },
        { _tag: "Compare", field: field("value"), op: "gt", value: "5" }
      ] },
      orderBy: field("value"),
      direction: "desc",
      first: 10,
      after: { value: hostile, id: hostile },
      at: 42n
    })
    assert.notInclude(statement.text, "DROP")
    assert.notInclude(statement.text, "42")
    assert.includeMembers([...statement.params], [hostile, "42", "5", "11"])
    assert.match(statement.text, /\(r\."value", r\."id"\) < \(\$\d+::numeric, \$\d+::text\)/)
  })

  it("reads as of a checkpoint from history: current rows without later history, else the newest SET at or before it", () => {
    const statement = ReadSql.byIds("s", account, ["a"], 7n)
    assert.include(statement.text, `"chainstore_checkpoint_id" > $1::int8`)
    assert.include(statement.text, `h."chainstore_checkpoint_id" <= $1::int8`)
    assert.include(statement.text, `s."chainstore_change" = 'SET'`)
    assert.deepStrictEqual(statement.params, ["7", ["a"]])
  })
})
