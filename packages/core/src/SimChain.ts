/**
 * SimChain: a deterministic simulated ERC20 chain, as a Source. Blocks 1..`blocks` each hold `eventsPerBlock`
 * Transfer events, mints from the zero address first. Events are generated on demand from the parameters, so
 * millions of them never sit in memory. With `reorgEvery`, the head stays just ahead of the indexer and every
 * `reorgEvery` blocks the last `reorgDepth` blocks are first served as a fork, then replaced by the canonical ones.
 */
import { Clock, Effect, Schema } from "effect"
import { SourceError } from "./Errors.js"
import type { Event } from "./Event.js"
import * as Fields from "./Fields.js"
import { type Block, type BlockData, type ChainInfo, type ChainSource, handlerBlockNumbers, type Source } from "./Source.js"

export const Params = Schema.Struct({
  seed: Schema.Int,
  blocks: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  eventsPerBlock: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  accounts: Schema.Int.check(Schema.isGreaterThanOrEqualTo(2)),
  reorgEvery: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  reorgDepth: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  blockTimeMs: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
})
export type Params = typeof Params.Type

export const defaults: Params = {
  seed: 1,
  blocks: 1000,
  eventsPerBlock: 100,
  accounts: 1000,
  reorgEvery: 0,
  reorgDepth: 5,
  blockTimeMs: 0
}

/** The event the simulated chain emits: the ERC20 Transfer, as an ABI for contracts that index it. */
export const abi = [
  {
    type: "event",
    name: "Transfer",
    anonymous: false,
    inputs: [
      { name: "from", type: "address", indexed: true },
      { name: "to", type: "address", indexed: true },
      { name: "value", type: "uint256", indexed: false }
    ]
  }
] as const

export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
/** What a mint gives each account: far more than all its transfers can spend. */
export const MINT_VALUE = 10n ** 24n
const MAX_TRANSFER = 1_000_000

/** Parses `k=v,k=v` (keys as in Params); an unknown key or a bad value is an error naming it. */
export const parse = (text: string): Effect.Effect<Params, SourceError> =>
  Effect.gen(function*() {
    const out: Record<string, number> = { ...defaults }
    for (const part of text.split(",").map((p) => p.trim()).filter((p) => p.length > 0)) {
      const [key, value, ...rest] = part.split("=")
      if (key === undefined || value === undefined || rest.length > 0 || !(key in defaults)) {
        return yield* new SourceError({ chainId: 0, message: `--sim: unknown or malformed key "${part}" (keys: ${Object.keys(defaults).join(", ")})` })
      }
      const n = Number(value)
      if (!Number.isSafeInteger(n)) return yield* new SourceError({ chainId: 0, message: `--sim: ${key}=${value} is not an integer` })
      out[key] = n
    }
    const params = yield* Schema.decodeUnknownEffect(Params)(out).pipe(
      Effect.mapError((e) => new SourceError({ chainId: 0, message: `--sim: ${e.message}` }))
    )
    if (params.reorgEvery > 0 && params.reorgEvery <= params.reorgDepth) {
      return yield* new SourceError({ chainId: 0, message: `--sim: reorgEvery (${params.reorgEvery}) must exceed reorgDepth (${params.reorgDepth}) so forks do not overlap` })
    }
    return params
  })

const mixSeed = 0x811c9dc5

/** One input folded into the mix state. */
const mixStep = (h: number, x: number): number => {
  h = Math.imul(h ^ (x >>> 0), 0x01000193)
  h ^= h >>> 15
  h = Math.imul(h, 0x2c1b3c6d)
  h ^= h >>> 12
  h = Math.imul(h, 0x297a2d39)
  return h ^ (h >>> 15)
}

/** A 32-bit mix of the inputs (deterministic, well spread). */
const mix = (...xs: ReadonlyArray<number>): number => {
  let h = mixSeed
  for (const x of xs) h = mixStep(h, x)
  return h >>> 0
}

const hexByte = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/**
 * 32 bytes: word i is mix(...xs, i), the inputs folded once for all eight and the bytes written from a table (it
 * runs per simulated event; toString and padStart per word cost six times as much).
 */
const hex32 = (...xs: ReadonlyArray<number>): string => {
  let h = mixSeed
  for (const x of xs) h = mixStep(h, x)
  let out = "0x"
  for (let i = 0; i < 8; i++) {
    const w = mixStep(h, i) >>> 0
    out += hexByte[w >>> 24]! + hexByte[(w >>> 16) & 255]! + hexByte[(w >>> 8) & 255]! + hexByte[w & 255]!
  }
  return out
}

/** The simulated chain's accounts: lowercase addresses from the seed and chain id. */
export const accountAddress = (seed: number, chainId: number, i: number): string =>
  `0x${mix(seed, chainId, i, 1).toString(16).padStart(8, "0")}${mix(seed, chainId, i, 2).toString(16).padStart(8, "0")}${
    mix(seed, chainId, i, 3).toString(16).padStart(8, "0")}${mix(seed, chainId, i, 4).toString(16).padStart(8, "0")}${
    mix(seed, chainId, i, 5).toString(16).padStart(8, "0")}`

/** The simulated chain as a pure function of its parameters; `variant` 0 is canonical, others are forks. */
export interface Chain {
  readonly params: Params
  readonly chainId: number
  readonly token: string
  readonly blockHash: (n: number, variant: number) => string
  readonly events: (n: number, variant: number) => Array<Event>
}

export const chain = (params: Params, chainId: number, token: string): Chain => {
  const accounts = Array.from({ length: params.accounts }, (_, i) => accountAddress(params.seed, chainId, i))
  const blockHash = (n: number, variant: number) => hex32(params.seed, chainId, n, variant, 0xb10c)
  const events = (n: number, variant: number): Array<Event> => {
    const out: Array<Event> = []
    const hash = blockHash(n, variant)
    const block = blockData(n, hash)
    for (let i = 0; i < params.eventsPerBlock; i++) {
      const k = (n - 1) * params.eventsPerBlock + i
      const r = mix(params.seed, variant, k)
      const mint = k < params.accounts
      const transactionHash = hex32(params.seed, chainId, n, variant, i, 0x7a) as `0x${string}`
      out.push({
        chainId,
        contractName: "",
        eventName: "Transfer",
        srcAddress: token,
        blockNumber: n,
        blockHash: hash,
        blockTimestamp: 1_700_000_000 + n,
        logIndex: i,
        transactionHash,
        block,
        transaction: { hash: transactionHash },
        log: noLog,
        params: mint
          ? { from: ZERO_ADDRESS, to: accounts[k]!, value: MINT_VALUE }
          : {
            from: accounts[r % params.accounts]!,
            to: accounts[mix(r, 7) % params.accounts]!,
            value: BigInt(mix(r, 11) % MAX_TRANSFER)
          }
      })
    }
    return out
  }
  return { params, chainId, token, blockHash, events }
}

/** A block of the simulated chain as events and block handlers see it. */
const blockData = (n: number, hash: string): BlockData => ({ number: n, hash: hash as `0x${string}`, timestamp: 1_700_000_000 + n })

const noLog = {}

/** A Source serving the simulated chain to the chain it stands in for (its Transfer contract's address). */
export const source = (params: Partial<Params> = {}): Source => {
  const p: Params = { ...defaults, ...params }
  return {
    name: "sim",
    make: (info: ChainInfo) =>
      Effect.gen(function*() {
        const contract = info.contracts.find((c) => c.events.some((e) => e.name === "Transfer"))
        if (contract === undefined) {
          return yield* new SourceError({ chainId: info.chainId, message: "the simulated chain needs a contract with a Transfer handler; this indexer has none" })
        }
        // The simulated chain has blocks' number, hash and timestamp and transactions' hash, nothing more.
        const selecting = [
          ...contract.events.filter((e) => !Fields.isEmpty(e.fields) || e.topics !== undefined).map((e) => `${contract.name}.${e.name}`),
          ...info.blockHandlers.filter((h) => h.fields.length > 0).map((h) => `block handler "${h.name}"`)
        ]
        if (selecting.length > 0) {
          return yield* new SourceError({ chainId: info.chainId, message: `the simulated chain has no selectable fields or topic filters; ${selecting.join(", ")} selects some` })
        }
        return make(chain(p, info.chainId, contract.addresses[0] ?? ZERO_ADDRESS), contract.name, yield* Clock.currentTimeMillis)
      })
  }
}

const make = (sim: Chain, contractName: string, startedAt: number): ChainSource => {
  const { blocks, blockTimeMs, reorgDepth, reorgEvery } = sim.params
  let maxServed = 0
  /** Forks (by tip block) whose fork blocks were already served: from then on the canonical ones are. */
  const seen = new Set<number>()
  const forkTip = (n: number): number | undefined => {
    if (reorgEvery === 0) return undefined
    const tip = Math.ceil(n / reorgEvery) * reorgEvery
    // The chain's last block is never a fork tip: nothing after it would reveal the fork.
    return tip - reorgDepth < n && tip < blocks ? tip : undefined
  }
  const variantOf = (n: number): number => {
    const tip = forkTip(n)
    return tip !== undefined && !seen.has(tip) ? tip : 0
  }
  const head = Effect.map(Clock.currentTimeMillis, (now) => {
    let h = blocks
    if (blockTimeMs > 0) h = Math.min(h, Math.floor((now - startedAt) / blockTimeMs))
    if (reorgEvery > 0) {
      // A live chain: just ahead of the indexer, and never past a fork it has not yet been shown.
      h = Math.min(h, maxServed + reorgEvery)
      const nextTip = (Math.floor(maxServed / reorgEvery) + 1) * reorgEvery
      if (!seen.has(nextTip) && nextTip <= blocks) h = Math.min(h, nextTip)
    }
    return h
  })
  return {
    endBlock: blocks,
    head,
    blockHash: (n) => Effect.succeed(n < 1 || n > blocks ? undefined : sim.blockHash(n, variantOf(n))),
    fetch: ({ blockHandlers, fromBlock, hashesFrom, toBlock }) =>
      Effect.gen(function*() {
        const h = yield* head
        if (toBlock > h) return yield* new SourceError({ chainId: sim.chainId, message: `block ${toBlock} is past the head ${h}` })
        const events: Array<Event> = []
        const hashes: Array<Block> = []
        for (let n = Math.max(1, fromBlock); n <= toBlock; n++) {
          const variant = variantOf(n)
          for (const e of sim.events(n, variant)) events.push({ ...e, contractName })
          if ((hashesFrom !== undefined && n >= hashesFrom) || sim.params.eventsPerBlock > 0) hashes.push({ number: n, hash: sim.blockHash(n, variant) })
        }
        for (let n = fromBlock; n <= toBlock; n++) {
          const tip = forkTip(n)
          if (tip !== undefined && n === tip) seen.add(tip)
        }
        maxServed = Math.max(maxServed, toBlock)
        const handlerBlocks = handlerBlockNumbers(blockHandlers, Math.max(1, fromBlock), toBlock).map((n) => blockData(n, sim.blockHash(n, variantOf(n))))
        return { events, blocks: hashes, handlerBlocks }
      })
  }
}
