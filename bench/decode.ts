/**
 * Event decoding: µs per log of the runtime's EventDecoder (one-word types read word by word) against viem's
 * decodeEventLog, on ERC20 Transfer logs (addresses in topics, a uint256 in data) and on Uniswap V2 Swap logs (four
 * uint256 in data); the decoder's results are checked equal to viem's first.
 * Usage: npx tsx bench/decode.ts [--logs 2000] [--rounds 250] [--no-docs]
 */
import { parseArgs } from "node:util"
import { Result } from "effect"
import type { AbiEvent, Hex } from "viem"
import { decodeEventLog, encodeAbiParameters, encodeEventTopics } from "viem/utils"
import * as EventDecoder from "../packages/core/src/internal/EventDecoder.js"
import { machine, writeSection } from "./lib.js"

const { values } = parseArgs({ options: { logs: { type: "string", default: "2000" }, rounds: { type: "string", default: "250" }, "no-docs": { type: "boolean", default: false } } })
const count = Number(values.logs)
const rounds = Number(values.rounds)

const transfer = {
  type: "event", name: "Transfer", inputs: [
    { indexed: true, name: "from", type: "address" }, { indexed: true, name: "to", type: "address" }, { indexed: false, name: "value", type: "uint256" }
  ]
} as const satisfies AbiEvent
const swap = {
  type: "event", name: "Swap", inputs: [
    { indexed: true, name: "sender", type: "address" }, { indexed: false, name: "amount0In", type: "uint256" }, { indexed: false, name: "amount1In", type: "uint256" },
    { indexed: false, name: "amount0Out", type: "uint256" }, { indexed: false, name: "amount1Out", type: "uint256" }, { indexed: true, name: "to", type: "address" }
  ]
} as const satisfies AbiEvent

const address = (i: number, salt: number) => `0x${((i * 2654435761 + salt) >>> 0).toString(16).padStart(40, "a")}` as const
const logsOf = (event: AbiEvent): Array<{ topics: Array<Hex>; data: Hex }> =>
  Array.from({ length: count }, (_, i) => {
    const indexed = event.inputs.filter((p) => p.indexed === true)
    const data = event.inputs.filter((p) => p.indexed !== true)
    return {
      topics: encodeEventTopics({ abi: [event], args: indexed.map((_, k) => address(i, k)) } as never) as Array<Hex>,
      data: encodeAbiParameters(data, data.map((_, k) => BigInt(i + 1) * 10n ** BigInt(10 + k)))
    }
  })

/** µs per log, best of three passes of `rounds` rounds (the first warms the JIT). */
const time = (decode: (log: { topics: Array<Hex>; data: Hex }) => unknown, logs: ReadonlyArray<{ topics: Array<Hex>; data: Hex }>): number => {
  const passes: Array<number> = []
  for (let pass = 0; pass < 3; pass++) {
    const started = performance.now()
    for (let r = 0; r < rounds; r++) for (const log of logs) decode(log)
    passes.push(((performance.now() - started) * 1000) / (rounds * logs.length))
  }
  return Math.min(...passes)
}

const rows: Array<string> = []
for (const event of [transfer, swap]) {
  const logs = logsOf(event)
  const decoder = EventDecoder.make("C", event)
  const ours = (log: { topics: Array<Hex>; data: Hex }) => decoder.decode(log.topics, log.data)
  const viem = (log: { topics: Array<Hex>; data: Hex }) => decodeEventLog({ abi: [event], topics: log.topics as [Hex, ...Array<Hex>], data: log.data })
  for (const log of logs.slice(0, 50)) {
    const a = ours(log)
    const b = viem(log).args as Record<string, unknown>
    if (Result.isFailure(a)) throw a.failure
    for (const [k, v] of Object.entries(b)) {
      const want = typeof v === "string" ? v.toLowerCase() : v
      if (a.success[k] !== want) throw new Error(`${event.name}.${k}: ${String(a.success[k])} ≠ viem's ${String(want)}`)
    }
  }
  const [mine, theirs] = [time(ours, logs), time(viem, logs)]
  console.log(`${event.name}: EventDecoder ${mine.toFixed(3)} µs, viem decodeEventLog ${theirs.toFixed(3)} µs per log`)
  rows.push(`| ${event.name} | ${mine.toFixed(2)} | ${theirs.toFixed(2)} | ${(theirs / mine).toFixed(1)}× |`)
}
if (!values["no-docs"]) {
  writeSection("Event decoding", `
What it measures: µs per log of the runtime's \`EventDecoder\` (packages/core/src/internal/EventDecoder.ts: one-word
ABI types — uint, int, address, bool, bytesN — read word by word from topics and data, anything else through viem)
against viem's \`decodeEventLog\`, on ${count} distinct logs each of an ERC20 Transfer and a Uniswap V2 Swap, best of
three passes of ${rounds} rounds; the decoder's values are checked equal to viem's first (addresses lowercased).

Command: \`npx tsx bench/decode.ts --logs ${count} --rounds ${rounds}\` — ${machine()}.

| event | EventDecoder µs/log | viem decodeEventLog µs/log | ratio |
|---|---|---|---|
${rows.join("\n")}
`)
}
