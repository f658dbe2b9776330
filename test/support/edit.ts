/** An indexer a test edits as a user would: a copy of test/fixtures/dev, and edits that must find what they replace. */
import * as fs from "node:fs"
import * as path from "node:path"
import { expect } from "vitest"
import { root } from "./cli.js"

/** A copy of the fixture inside the repository (so its package imports resolve); the caller removes it. */
export const copyFixture = (prefix: string): string => {
  const fixture = path.join(root, "test/fixtures/dev")
  const dir = fs.mkdtempSync(path.join(root, `test/.tmp-${prefix}-`))
  for (const file of fs.readdirSync(fixture)) fs.copyFileSync(path.join(fixture, file), path.join(dir, file))
  return dir
}

/** Replaces `from` with `to` in `file`, written in one go as an editor saves. */
export const edit = (file: string, from: string, to: string) => {
  const text = fs.readFileSync(file, "utf8")
  expect(text).toContain(from)
  fs.writeFileSync(file, text.replaceAll(from, to))
}
