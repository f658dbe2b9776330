/**
 * Uniswap V2 core as published on npm (@uniswap/v2-core 1.0.1), deployed unmodified on anvil from the compiled
 * artifacts it ships (build/UniswapV2Factory.json, UniswapV2Pair.json and its test ERC20.json): a factory, test
 * tokens, pairs with liquidity, swaps, burns and LP transfers between a few holders. Some pairs are created in one
 * block together with their first liquidity, swaps and LP transfers, so their own logs follow PairCreated in the
 * creation block. Also reads back, at any block, what an indexer of it should hold, from the chain's own getters.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import {
  type Abi,
  type Address,
  type Hash,
  type Hex,
  encodeFunctionData,
  encodePacked,
  getContractAddress,
  isAddressEqual,
  keccak256,
  parseAbi,
  zeroAddress
} from "viem"
import { type Anvil, receiptOf } from "./anvil.js"

/** The parts of the contracts the tests call, typed; each item is checked against the package's own ABI (`checkAbi`). */
export const factoryAbi = parseAbi([
  "constructor(address _feeToSetter)",
  "function createPair(address tokenA, address tokenB) returns (address pair)",
  "function allPairs(uint256) view returns (address)",
  "function allPairsLength() view returns (uint256)",
  "function getPair(address, address) view returns (address)",
  "event PairCreated(address indexed token0, address indexed token1, address pair, uint256)"
])

export const pairAbi = parseAbi([
  "function token0() view returns (address)",
  "function token1() view returns (address)",
  "function getReserves() view returns (uint112 _reserve0, uint112 _reserve1, uint32 _blockTimestampLast)",
  "function totalSupply() view returns (uint256)",
  "function balanceOf(address) view returns (uint256)",
  "function MINIMUM_LIQUIDITY() view returns (uint256)",
  "function transfer(address to, uint256 value) returns (bool)",
  "function mint(address to) returns (uint256 liquidity)",
  "function burn(address to) returns (uint256 amount0, uint256 amount1)",
  "function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes data)",
  "event Transfer(address indexed from, address indexed to, uint256 value)",
  "event Sync(uint112 reserve0, uint112 reserve1)"
])

export const tokenAbi = parseAbi([
  "constructor(uint256 _totalSupply)",
  "function transfer(address to, uint256 value) returns (bool)",
  "function balanceOf(address) view returns (uint256)"
])

export type ArtifactName = "UniswapV2Factory" | "UniswapV2Pair" | "ERC20"

interface ArtifactParameter {
  readonly type: string
  readonly name?: string | undefined
  readonly indexed?: boolean | undefined
}

/** An ABI item as the package's JSON spells it (solc 0.5: with `payable`/`constant` beside `stateMutability`). */
export interface ArtifactItem {
  readonly type: string
  readonly name?: string
  readonly inputs?: ReadonlyArray<ArtifactParameter>
  readonly outputs?: ReadonlyArray<ArtifactParameter>
  readonly stateMutability?: string
  readonly anonymous?: boolean
}

export interface Artifact {
  readonly abi: ReadonlyArray<ArtifactItem>
  /** Creation code, hex without 0x. */
  readonly bytecode: string
}

const require = createRequire(import.meta.url)

/** A compiled contract of @uniswap/v2-core, read from the installed package. */
export const artifact = (name: ArtifactName): Artifact =>
  JSON.parse(fs.readFileSync(require.resolve(`@uniswap/v2-core/build/${name}.json`), "utf8")) as Artifact

const creationCode = (name: ArtifactName): Hex => `0x${artifact(name).bytecode}`

/** What makes two ABI items the same: kind, name, parameter types, names and indexing, mutability. */
const signature = (item: ArtifactItem | Abi[number]): string => {
  const params = (ps: ReadonlyArray<ArtifactParameter> | undefined) => (ps ?? []).map((p) => [p.type, p.name ?? "", p.indexed === true])
  return JSON.stringify([
    item.type,
    "name" in item ? item.name ?? "" : "",
    "inputs" in item ? params(item.inputs) : [],
    "outputs" in item ? params(item.outputs) : [],
    "stateMutability" in item ? item.stateMutability ?? "" : "",
    "anonymous" in item ? item.anonymous === true : false
  ])
}

/** The items of `abi` that the package's `name` artifact does not have exactly as written (empty: all there). */
export const checkAbi = (name: ArtifactName, abi: Abi): Array<string> => {
  const known = new Set(artifact(name).abi.map(signature))
  return abi.filter((item) => !known.has(signature(item))).map((item) => `${name}: ${signature(item)}`)
}

/** Anvil's default-mnemonic accounts #1..#3: unlocked, so anvil signs what is sent from them. */
export const devAccounts: ReadonlyArray<Address> = [
  "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
]

/** One transaction: calldata to a contract, from the anvil account (default) or an unlocked dev account. */
interface Call {
  readonly to: Address
  readonly data: Hex
  readonly from?: Address
  readonly gas?: bigint
}

const submit = (anvil: Anvil, call: Call, nonce?: number): Promise<Hash> =>
  anvil.walletClient.sendTransaction({
    to: call.to,
    data: call.data,
    // Explicit gas: nothing is estimated, which also lets a block be filled before its earlier transactions are mined.
    gas: call.gas ?? 400_000n,
    account: call.from === undefined || isAddressEqual(call.from, anvil.account.address) ? anvil.account : call.from,
    ...(nonce === undefined ? {} : { nonce })
  })

/** Sends the calls one after the other, each mined (automine) before the next is sent. */
const sendEach = async (anvil: Anvil, calls: ReadonlyArray<Call>): Promise<number> => {
  let block = 0
  for (const call of calls) block = Number((await receiptOf(anvil, await submit(anvil, call))).blockNumber)
  return block
}

/** Mines the calls, all from the anvil account and in this order, in one new block; its number. */
const sendInOneBlock = async (anvil: Anvil, calls: ReadonlyArray<Call>): Promise<number> => {
  if (calls.some((c) => c.from !== undefined && !isAddressEqual(c.from, anvil.account.address))) throw new Error("sendInOneBlock: every call must come from the anvil account (its nonces fix the order)")
  await anvil.testClient.setAutomine(false)
  const hashes: Array<Hash> = []
  try {
    let nonce = await anvil.publicClient.getTransactionCount({ address: anvil.account.address, blockTag: "pending" })
    for (const call of calls) hashes.push(await submit(anvil, call, nonce++))
    await anvil.testClient.mine({ blocks: 1 })
  } finally {
    await anvil.testClient.setAutomine(true)
  }
  const blocks = new Set<number>()
  for (const hash of hashes) blocks.add(Number((await receiptOf(anvil, hash)).blockNumber))
  if (blocks.size !== 1) throw new Error(`sendInOneBlock: ${calls.length} transactions landed in blocks ${[...blocks].join(", ")}`)
  return [...blocks][0]!
}

const deployed = async (anvil: Anvil, name: ArtifactName, hash: Hash): Promise<{ readonly address: Address; readonly block: number }> => {
  const receipt = await receiptOf(anvil, hash)
  if (receipt.contractAddress == null) throw new Error(`deploying ${name} created no contract`)
  return { address: receipt.contractAddress, block: Number(receipt.blockNumber) }
}

export interface Pair {
  readonly address: Address
  readonly token0: Address
  readonly token1: Address
}

export interface CreatedPair extends Pair {
  /** Block of its PairCreated. */
  readonly block: number
  /** Whether its own Transfer/Sync (Mint, Swap) logs follow PairCreated in the creation block. */
  readonly eventsInCreationBlock: boolean
}

export interface Reserves {
  readonly reserve0: bigint
  readonly reserve1: bigint
}

/** The pair CREATE2 gives tokens a and b (in either order), as UniswapV2Factory.createPair computes it. */
export const pairFor = (factory: Address, a: Address, b: Address): Pair => {
  const [token0, token1] = a.toLowerCase() < b.toLowerCase() ? [a, b] : [b, a]
  const address = getContractAddress({
    opcode: "CREATE2",
    from: factory,
    salt: keccak256(encodePacked(["address", "address"], [token0, token1])),
    bytecode: creationCode("UniswapV2Pair")
  })
  return { address, token0, token1 }
}

/** floor(sqrt(n)), as Uniswap's Math.sqrt. */
const sqrt = (n: bigint): bigint => {
  if (n < 2n) return n
  let x = n
  let y = (x + 1n) / 2n
  while (y < x) {
    x = y
    y = (x + n / x) / 2n
  }
  return x
}

/** What a swap of amountIn pays out: the constant product after the 0.3% fee (UniswapV2Library.getAmountOut). */
export const amountOut = (amountIn: bigint, reserveIn: bigint, reserveOut: bigint): bigint =>
  (amountIn * 997n * reserveOut) / (reserveIn * 1000n + amountIn * 997n)

const createPairCall = (factory: Address, pair: Pair): Call => ({
  to: factory,
  data: encodeFunctionData({ abi: factoryAbi, functionName: "createPair", args: [pair.token0, pair.token1] }),
  gas: 5_000_000n
})

const tokenTransfer = (token: Address, to: Address, value: bigint): Call => ({
  to: token,
  data: encodeFunctionData({ abi: tokenAbi, functionName: "transfer", args: [to, value] })
})

const lpTransfer = (pair: Pair, from: Address, to: Address, value: bigint): Call => ({
  from,
  to: pair.address,
  data: encodeFunctionData({ abi: pairAbi, functionName: "transfer", args: [to, value] })
})

/** Both tokens into the pair, then mint(to): the anvil account holds the tokens. */
const addLiquidity = (pair: Pair, amount0: bigint, amount1: bigint, to: Address): Array<Call> => [
  tokenTransfer(pair.token0, pair.address, amount0),
  tokenTransfer(pair.token1, pair.address, amount1),
  { to: pair.address, data: encodeFunctionData({ abi: pairAbi, functionName: "mint", args: [to] }) }
]

/** The input token into the pair, then swap(...) for what the reserves pay out; the reserves after it. */
const swap = (pair: Pair, reserves: Reserves, zeroForOne: boolean, amountIn: bigint, to: Address): { readonly calls: Array<Call>; readonly after: Reserves } => {
  const out = zeroForOne ? amountOut(amountIn, reserves.reserve0, reserves.reserve1) : amountOut(amountIn, reserves.reserve1, reserves.reserve0)
  if (out <= 0n) throw new Error(`swap of ${amountIn} on ${pair.address} pays nothing out`)
  return {
    calls: [
      tokenTransfer(zeroForOne ? pair.token0 : pair.token1, pair.address, amountIn),
      {
        to: pair.address,
        data: encodeFunctionData({ abi: pairAbi, functionName: "swap", args: [zeroForOne ? 0n : out, zeroForOne ? out : 0n, to, "0x"] })
      }
    ],
    after: zeroForOne
      ? { reserve0: reserves.reserve0 + amountIn, reserve1: reserves.reserve1 - out }
      : { reserve0: reserves.reserve0 - out, reserve1: reserves.reserve1 + amountIn }
  }
}

/** The holder's LP tokens into the pair, then burn(holder): the pair pays out both tokens. */
const burn = (pair: Pair, holder: Address, liquidity: bigint): Array<Call> => [
  lpTransfer(pair, holder, pair.address, liquidity),
  { from: holder, to: pair.address, data: encodeFunctionData({ abi: pairAbi, functionName: "burn", args: [holder] }) }
]

export const reservesOf = async (anvil: Anvil, pair: Address, block?: number): Promise<Reserves> => {
  const [reserve0, reserve1] = await anvil.publicClient.readContract({
    address: pair,
    abi: pairAbi,
    functionName: "getReserves",
    ...(block === undefined ? {} : { blockNumber: BigInt(block) })
  })
  return { reserve0, reserve1 }
}

export const lpBalanceOf = (anvil: Anvil, pair: Address, holder: Address, block?: number): Promise<bigint> =>
  anvil.publicClient.readContract({ address: pair, abi: pairAbi, functionName: "balanceOf", args: [holder], ...(block === undefined ? {} : { blockNumber: BigInt(block) }) })

export interface UniswapChain {
  readonly factory: Address
  /** Block of the factory's deployment: where an indexer of it starts. */
  readonly factoryBlock: number
  readonly tokens: ReadonlyArray<Address>
  /** In creation order, which is the order of allPairs. */
  readonly pairs: ReadonlyArray<CreatedPair>
  /** Who gets LP tokens: the anvil account and the dev accounts. */
  readonly holders: ReadonlyArray<Address>
  /** The chain's head once everything is mined. */
  readonly endBlock: number
}

export interface BuildOptions {
  /** Called after each block that creates pairs with their own logs in it, before anything else is mined. */
  readonly afterCreationBlock?: (at: { readonly block: number; readonly factory: Address; readonly factoryBlock: number }) => Promise<void>
}

const E18 = 10n ** 18n

/**
 * Deploys the factory and 5 test tokens and makes 8 pairs with a few hundred pair events, the same way every time
 * (same addresses and block numbers on a fresh anvil). Pairs #2 (alone), #3 and #4 (together) and #7 are created in
 * one block with their first liquidity, swaps, an LP transfer and, for #4, a burn; the others are created alone and
 * funded in later blocks. Between creations, rounds of swaps both ways, liquidity added for other holders, LP
 * transfers between holders and burns run on every pair.
 */
export const buildUniswapChain = async (anvil: Anvil, options: BuildOptions = {}): Promise<UniswapChain> => {
  const me = anvil.account.address
  const holders: ReadonlyArray<Address> = [me, ...devAccounts]
  const factoryDeploy = await deployed(
    anvil,
    "UniswapV2Factory",
    await anvil.walletClient.deployContract({ abi: factoryAbi, bytecode: creationCode("UniswapV2Factory"), args: [me], gas: 8_000_000n })
  )
  const factory = factoryDeploy.address
  const tokens: Array<Address> = []
  for (let i = 0; i < 5; i++) {
    const hash = await anvil.walletClient.deployContract({ abi: tokenAbi, bytecode: creationCode("ERC20"), args: [10n ** 30n], gas: 2_000_000n })
    tokens.push((await deployed(anvil, "ERC20", hash)).address)
  }
  const pairs: Array<CreatedPair> = []
  const pairOf = (a: number, b: number) => pairFor(factory, tokens[a]!, tokens[b]!)

  const createAlone = async (a: number, b: number, amount0: bigint, amount1: bigint, to: Address) => {
    const pair = pairOf(a, b)
    const block = await sendEach(anvil, [createPairCall(factory, pair)])
    pairs.push({ ...pair, block, eventsInCreationBlock: false })
    await sendEach(anvil, addLiquidity(pair, amount0, amount1, to))
  }

  /** Calls that create `pair` and fund it for the anvil account, swap on it and pass LP tokens on: all in the block being filled. */
  const createWithEvents = (pair: Pair, amount0: bigint, amount1: bigint, lpTo: Address): Array<Call> => {
    const liquidity = sqrt(amount0 * amount1) - 1_000n
    const swapped = swap(pair, { reserve0: amount0, reserve1: amount1 }, true, amount0 / 25n, lpTo)
    return [
      createPairCall(factory, pair),
      ...addLiquidity(pair, amount0, amount1, me),
      ...swapped.calls,
      lpTransfer(pair, me, lpTo, liquidity / 3n),
      ...swap(pair, swapped.after, false, amount1 / 40n, me).calls
    ]
  }

  const inOneBlock = async (created: ReadonlyArray<Pair>, calls: ReadonlyArray<Call>) => {
    const block = await sendInOneBlock(anvil, calls)
    for (const pair of created) pairs.push({ ...pair, block, eventsInCreationBlock: true })
    await options.afterCreationBlock?.({ block, factory, factoryBlock: factoryDeploy.block })
  }

  /** Swaps both ways on every pair, liquidity for another holder on every other one, an LP transfer on each, a burn on every third. */
  const round = async (k: number) => {
    for (const [i, pair] of pairs.entries()) {
      const j = i + k
      const there = await reservesOf(anvil, pair.address)
      const first = swap(pair, there, true, there.reserve0 / BigInt(10 + (j % 7)), holders[j % holders.length]!)
      await sendEach(anvil, first.calls)
      await sendEach(anvil, swap(pair, first.after, false, first.after.reserve1 / BigInt(12 + (j % 5)), me).calls)
      if (j % 2 === 0) {
        const now = await reservesOf(anvil, pair.address)
        await sendEach(anvil, addLiquidity(pair, now.reserve0 / 20n, now.reserve1 / 20n, holders[(j + 1) % holders.length]!))
      }
      const balances = await Promise.all(holders.map((h) => lpBalanceOf(anvil, pair.address, h)))
      const from = firstWithBalance(holders, balances, j)
      if (from !== undefined) {
        await sendEach(anvil, [lpTransfer(pair, holders[from]!, holders[(from + 1 + (j % 3)) % holders.length]!, balances[from]! / 3n)])
      }
      if (j % 3 === 1) {
        const after = await Promise.all(holders.map((h) => lpBalanceOf(anvil, pair.address, h)))
        const burner = firstWithBalance(holders, after, j + 2)
        if (burner !== undefined) await sendEach(anvil, burn(pair, holders[burner]!, after[burner]! / 2n))
      }
    }
  }

  await createAlone(0, 1, 3_000n * E18, 7_000n * E18, me)
  await createAlone(0, 2, 5_000n * E18, 2_000n * E18, devAccounts[0]!)
  await round(0)

  // A swap on an older pair before and after the creation: the new pair's logs sit among other pairs' logs.
  const p0 = pairs[0]!
  const p1 = pairs[1]!
  const p2 = pairOf(1, 2)
  await inOneBlock([p2], [
    ...swap(p0, await reservesOf(anvil, p0.address), true, 40n * E18, devAccounts[1]!).calls,
    ...createWithEvents(p2, 4_000n * E18, 4_500n * E18, devAccounts[1]!),
    ...swap(p1, await reservesOf(anvil, p1.address), false, 30n * E18, me).calls
  ])
  await round(1)

  // Two pairs in one block; the second's first provider also burns part of its LP there.
  const p3 = pairOf(2, 3)
  const p4 = pairOf(3, 4)
  const p4Amounts = [2_500n * E18, 9_000n * E18] as const
  await inOneBlock([p3, p4], [
    ...createWithEvents(p3, 6_000n * E18, 3_000n * E18, devAccounts[2]!),
    ...swap(p2, await reservesOf(anvil, p2.address), true, 25n * E18, me).calls,
    ...createWithEvents(p4, p4Amounts[0], p4Amounts[1], devAccounts[0]!),
    ...burn(p4, me, (sqrt(p4Amounts[0] * p4Amounts[1]) - 1_000n) / 5n)
  ])
  await round(2)

  await createAlone(0, 3, 1_500n * E18, 1_600n * E18, devAccounts[2]!)
  await createAlone(1, 4, 8_000n * E18, 3_500n * E18, me)
  await round(3)

  const p7 = pairOf(0, 4)
  await inOneBlock([p7], createWithEvents(p7, 2_200n * E18, 6_600n * E18, devAccounts[1]!))
  await round(4)

  return { factory, factoryBlock: factoryDeploy.block, tokens, pairs, holders, endBlock: Number(await anvil.publicClient.getBlockNumber()) }
}

/** The first holder from position `start` on (cyclically) with a nonzero balance. */
const firstWithBalance = (holders: ReadonlyArray<Address>, balances: ReadonlyArray<bigint>, start: number): number | undefined => {
  for (let n = 0; n < holders.length; n++) {
    const i = (start + n) % holders.length
    if (balances[i]! > 0n) return i
  }
  return undefined
}

/** A Pair row as SQL gives it back (numerics as text). */
export interface PairRow {
  readonly id: string
  readonly token0: string
  readonly token1: string
  readonly index: number
  readonly reserve0: string
  readonly reserve1: string
  readonly total_supply: string
  readonly created_at_block: number
}

export interface LpBalanceRow {
  readonly id: string
  readonly pair: string
  readonly holder: string
  readonly balance: string
}

export interface Tables {
  readonly pairs: ReadonlyArray<PairRow>
  readonly balances: ReadonlyArray<LpBalanceRow>
}

export interface ChainView extends Tables {
  /** The logs the indexer handles up to the block: PairCreated, and every pair's Transfer and Sync. */
  readonly events: number
  /** Disagreements among the chain's own numbers (empty: the view is consistent). */
  readonly problems: ReadonlyArray<string>
}

/**
 * What an indexer of the factory should hold at `block`, from the chain's own getters there: allPairs in order, each
 * pair's tokens, getReserves and totalSupply, and balanceOf of every address that sent or got its LP tokens (the
 * zero address aside). Checked against itself: the Transfer logs replayed give each balanceOf, the balances plus the
 * MINIMUM_LIQUIDITY locked at the zero address make totalSupply, and the reserves are the pair's token balances.
 */
export const readChain = async (anvil: Anvil, chain: Pick<UniswapChain, "factory" | "factoryBlock">, block: number): Promise<ChainView> => {
  const at = { blockNumber: BigInt(block) }
  const problems: Array<string> = []
  const count = Number(await anvil.publicClient.readContract({ address: chain.factory, abi: factoryAbi, functionName: "allPairsLength", ...at }))
  const addresses = await Promise.all(
    Array.from({ length: count }, (_, i) => anvil.publicClient.readContract({ address: chain.factory, abi: factoryAbi, functionName: "allPairs", args: [BigInt(i)], ...at }))
  )
  const range = { fromBlock: BigInt(chain.factoryBlock), toBlock: BigInt(block) }
  const created = await anvil.publicClient.getContractEvents({ address: chain.factory, abi: factoryAbi, eventName: "PairCreated", ...range })
  const transfers = count === 0 ? [] : await anvil.publicClient.getContractEvents({ address: addresses, abi: pairAbi, eventName: "Transfer", ...range })
  const syncs = count === 0 ? [] : await anvil.publicClient.getContractEvents({ address: addresses, abi: pairAbi, eventName: "Sync", ...range })
  if (created.length !== count) problems.push(`${created.length} PairCreated logs up to block ${block}, allPairsLength ${count}`)

  const pairs: Array<PairRow> = []
  const balances: Array<LpBalanceRow> = []
  for (const [index, address] of addresses.entries()) {
    const read = <F extends "token0" | "token1" | "totalSupply">(functionName: F) => anvil.publicClient.readContract({ address, abi: pairAbi, functionName, ...at })
    const [token0, token1, totalSupply, reserves, minimum] = await Promise.all([
      read("token0"),
      read("token1"),
      read("totalSupply"),
      reservesOf(anvil, address, block),
      anvil.publicClient.readContract({ address, abi: pairAbi, functionName: "MINIMUM_LIQUIDITY", ...at })
    ])
    // PairCreated's 4th input is unnamed, so viem gives its args by position: token0, token1, pair, allPairs.length.
    const log = created.find((l) => l.args[2] !== undefined && isAddressEqual(l.args[2], address))
    if (log === undefined) problems.push(`pair #${index} ${address}: no PairCreated log`)
    else if (log.args[3] !== BigInt(index + 1)) problems.push(`pair #${index} ${address}: PairCreated's 4th input ${log.args[3]}, expected allPairs.length ${index + 1}`)
    pairs.push({
      id: address.toLowerCase(),
      token0: token0.toLowerCase(),
      token1: token1.toLowerCase(),
      index,
      reserve0: reserves.reserve0.toString(),
      reserve1: reserves.reserve1.toString(),
      total_supply: totalSupply.toString(),
      created_at_block: Number(log?.blockNumber ?? -1n)
    })

    const replayed = new Map<string, bigint>()
    for (const { args, address: emitter } of transfers) {
      if (!isAddressEqual(emitter, address)) continue
      replayed.set(args.from!.toLowerCase(), (replayed.get(args.from!.toLowerCase()) ?? 0n) - args.value!)
      replayed.set(args.to!.toLowerCase(), (replayed.get(args.to!.toLowerCase()) ?? 0n) + args.value!)
    }
    const holders = [...replayed.keys()].filter((h) => h !== zeroAddress).sort()
    const onChain = await Promise.all(holders.map((h) => lpBalanceOf(anvil, address, h as Address, block)))
    let held = 0n
    for (const [i, holder] of holders.entries()) {
      if (onChain[i] !== replayed.get(holder)) problems.push(`pair #${index} ${address}: balanceOf(${holder}) ${onChain[i]}, Transfer logs give ${replayed.get(holder)}`)
      held += onChain[i]!
      balances.push({ id: `${address.toLowerCase()}-${holder}`, pair: address.toLowerCase(), holder, balance: onChain[i]!.toString() })
    }
    const locked = await lpBalanceOf(anvil, address, zeroAddress, block)
    if (totalSupply > 0n && locked !== minimum) problems.push(`pair #${index} ${address}: ${locked} LP at the zero address, MINIMUM_LIQUIDITY ${minimum}`)
    if (held + locked !== totalSupply) problems.push(`pair #${index} ${address}: holders ${held} + locked ${locked} != totalSupply ${totalSupply}`)
    const [balance0, balance1] = await Promise.all([token0, token1].map((token) =>
      anvil.publicClient.readContract({ address: token, abi: tokenAbi, functionName: "balanceOf", args: [address], ...at })
    ))
    if (balance0 !== reserves.reserve0 || balance1 !== reserves.reserve1) {
      problems.push(`pair #${index} ${address}: reserves ${reserves.reserve0}/${reserves.reserve1}, token balances ${balance0}/${balance1}`)
    }
  }
  return { pairs: byId(pairs), balances: byId(balances), events: created.length + transfers.length + syncs.length, problems }
}

/** Rows sorted by id, by code unit (as SQL's "C" collation would), whatever order the database gave them in. */
export const byId = <R extends { readonly id: string }>(rows: ReadonlyArray<R>): Array<R> =>
  [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

/**
 * Where indexed tables differ from the expected ones, one line per pair field, balance or row present on one side
 * only, each naming the pair (its allPairs index and creation block) and the holder; plus every negative balance.
 */
export const diffTables = (indexed: Tables, expected: Tables): Array<string> => {
  const lines: Array<string> = []
  const pairName = (id: string) => {
    const row = expected.pairs.find((p) => p.id === id) ?? indexed.pairs.find((p) => p.id === id)
    return row === undefined ? `pair ${id}` : `pair #${row.index} ${id} (created in block ${row.created_at_block})`
  }
  const byId = <R extends { readonly id: string }>(rows: ReadonlyArray<R>) => new Map(rows.map((r) => [r.id, r]))
  const expectedPairs = byId(expected.pairs)
  const indexedPairs = byId(indexed.pairs)
  for (const [id, want] of expectedPairs) {
    const got = indexedPairs.get(id)
    if (got === undefined) {
      lines.push(`${pairName(id)}: no Pair row`)
      continue
    }
    for (const field of ["token0", "token1", "index", "reserve0", "reserve1", "total_supply", "created_at_block"] as const) {
      if (String(got[field]) !== String(want[field])) lines.push(`${pairName(id)}: ${field} indexed ${got[field]}, chain ${want[field]}`)
    }
  }
  for (const id of indexedPairs.keys()) if (!expectedPairs.has(id)) lines.push(`${pairName(id)}: Pair row the chain does not have`)
  const expectedBalances = byId(expected.balances)
  const indexedBalances = byId(indexed.balances)
  for (const [id, want] of expectedBalances) {
    const got = indexedBalances.get(id)
    if (got === undefined) lines.push(`${pairName(want.pair)}: no LpBalance row for ${want.holder} (chain ${want.balance})`)
    else if (got.balance !== want.balance || got.pair !== want.pair || got.holder !== want.holder) {
      lines.push(`${pairName(want.pair)}: LP balance of ${want.holder} indexed ${got.balance}, chain ${want.balance}`)
    }
  }
  for (const [id, got] of indexedBalances) {
    if (!expectedBalances.has(id)) lines.push(`${pairName(got.pair)}: LpBalance row for ${got.holder} (${got.balance}) the chain does not have`)
    if (BigInt(got.balance) < 0n) lines.push(`${pairName(got.pair)}: negative LP balance ${got.balance} of ${got.holder}`)
  }
  return lines
}
