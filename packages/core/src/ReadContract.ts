/**
 * ReadContract: `ctx.readContract`, a typed contract read at the block being handled. Each read is a call of one
 * built-in effect, so it is memoised, persisted (keyed by chain, block number and hash, address and calldata),
 * never rerun after a resume, and dropped by a reorg like any reorg-sensitive effect; the preload pass resolves a
 * batch's reads with one `runMany`, which the chain's source turns into Multicall3 `aggregate3` calls per block.
 */
import { Effect, Result, Schema } from "effect"
import type { Abi, ContractFunctionArgs, ContractFunctionName, ContractFunctionParameters, ContractFunctionReturnType, Hex } from "viem"
// The subpath: the package index loads viem's clients and chains too.
import { decodeErrorResult, decodeFunctionResult, encodeFunctionData } from "viem/utils"
import { ContractReadError, type EffectCallError, SourceError } from "./Errors.js"
import type { Item } from "./Event.js"
import * as ExternalEffect from "./ExternalEffect.js"
import type { ChainSource } from "./Source.js"
import { describeCause } from "./internal/EventDecoder.js"

/** What `ctx.readContract` takes: viem's contract call, and a block number other than the handled block's. */
export type Parameters<
  A extends Abi | ReadonlyArray<unknown> = Abi,
  F extends ContractFunctionName<A, "pure" | "view"> = ContractFunctionName<A, "pure" | "view">,
  Args extends ContractFunctionArgs<A, "pure" | "view", F> = ContractFunctionArgs<A, "pure" | "view", F>
> = ContractFunctionParameters<A, "pure" | "view", F, Args> & {
  /** Default: the block being handled (called by its hash, so a reorg cannot mix states). */
  readonly blockNumber?: number
}

export type Read = <
  const A extends Abi | ReadonlyArray<unknown>,
  F extends ContractFunctionName<A, "pure" | "view">,
  const Args extends ContractFunctionArgs<A, "pure" | "view", F>
>(parameters: Parameters<A, F, Args>) => Effect.Effect<ContractFunctionReturnType<A, "pure" | "view", F, Args>, ContractReadError>

export const Input = Schema.Struct({
  chainId: Schema.Number,
  blockNumber: Schema.Number,
  /** The handled block's hash, when reading at it; null for an explicit block number. */
  blockHash: Schema.NullOr(Schema.String),
  to: Schema.String,
  data: Schema.String
})
export type Input = typeof Input.Type

export const Output = Schema.Struct({ reverted: Schema.Boolean, data: Schema.String })
export type Output = typeof Output.Type

const noSource = (chainId: number) => new SourceError({ chainId, message: "the chain's source cannot call contracts (ctx.readContract needs an RPC source)" })

/** The effect as the definition declares it (its cache table); `bind` gives the one that runs. */
export const effect: ExternalEffect.ExternalEffect<"readContract", Input, Output, SourceError> = ExternalEffect.make({
  name: "readContract",
  input: Input,
  output: Output,
  reorgSensitive: true,
  run: (input) => Effect.fail(noSource(input.chainId))
})

/** The effect calling the chains' sources: a batch's reads grouped per chain, each chain's in one request. */
export const bind = (sources: ReadonlyMap<number, ChainSource>): ExternalEffect.ExternalEffect<"readContract", Input, Output, SourceError> => {
  const runMany = (inputs: ReadonlyArray<Input>): Effect.Effect<ReadonlyArray<Result.Result<Output, SourceError>>, SourceError> =>
    Effect.gen(function*() {
      const out = new Array<Result.Result<Output, SourceError>>(inputs.length)
      const byChain = new Map<number, Array<number>>()
      for (const [i, input] of inputs.entries()) {
        let list = byChain.get(input.chainId)
        if (list === undefined) byChain.set(input.chainId, (list = []))
        list.push(i)
      }
      yield* Effect.forEach(byChain, ([chainId, indexes]) =>
        Effect.gen(function*() {
          const read = sources.get(chainId)?.readContracts
          if (read === undefined) {
            for (const i of indexes) out[i] = Result.fail(noSource(chainId))
            return
          }
          const results = yield* read(indexes.map((i) => {
            const input = inputs[i]!
            return { to: input.to, data: input.data as Hex, blockNumber: input.blockNumber, blockHash: input.blockHash ?? undefined }
          }))
          for (const [k, i] of indexes.entries()) {
            const result = results[k]!
            out[i] = Result.succeed({ reverted: result._tag === "Reverted", data: result.data })
          }
        }), { concurrency: "unbounded", discard: true })
      return out
    })
  return ExternalEffect.make({
    name: "readContract",
    input: Input,
    output: Output,
    reorgSensitive: true,
    run: (input) => Effect.flatMap(runMany([input]), (results) => Effect.fromResult(results[0]!)),
    runMany
  })
}

/** The effect input of a read made while handling `item`, or why it cannot be made. */
export const inputOf = (parameters: Parameters, item: Item): Result.Result<Input, ContractReadError> => {
  const blockNumber = parameters.blockNumber ?? item.blockNumber
  const fail = (reason: string, cause?: unknown) =>
    Result.fail(new ContractReadError({ chainId: item.chainId, address: String(parameters.address), functionName: String(parameters.functionName), blockNumber, reason, cause }))
  if (typeof parameters.address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(parameters.address)) return fail("the address is not a 0x address of 20 bytes")
  if (parameters.blockNumber !== undefined && (!Number.isSafeInteger(parameters.blockNumber) || parameters.blockNumber < 0)) return fail("blockNumber must be a non-negative integer")
  let data: Hex
  try {
    // The parameters were typed against their ABI at the call site; here they are generic.
    data = encodeFunctionData({ abi: parameters.abi, functionName: parameters.functionName, args: (parameters as { readonly args?: ReadonlyArray<unknown> }).args } as never)
  } catch (cause) {
    return fail(`the call does not encode: ${describeCause(cause)}`, cause)
  }
  return Result.succeed({
    chainId: item.chainId,
    blockNumber,
    blockHash: parameters.blockNumber === undefined ? item.blockHash : null,
    to: parameters.address.toLowerCase(),
    data
  })
}

/** The read's value from the call's output: decoded with the ABI, or the revert as an error. */
export const decode = (parameters: Parameters, input: Input, output: Output): Result.Result<unknown, ContractReadError> => {
  const fail = (reason: string, cause?: unknown) =>
    Result.fail(new ContractReadError({ chainId: input.chainId, address: input.to, functionName: String(parameters.functionName), blockNumber: input.blockNumber, reason, cause }))
  if (output.reverted) return fail(`reverted: ${revertReason(parameters.abi as Abi, output.data as Hex)}`)
  try {
    return Result.succeed(decodeFunctionResult({ abi: parameters.abi as Abi, functionName: parameters.functionName, data: output.data as Hex } as never))
  } catch (cause) {
    return fail(`the return data does not decode (${output.data.length > 66 ? `${output.data.slice(0, 66)}...` : output.data}): ${describeCause(cause)}`, cause)
  }
}

/** A read whose call failed (the chain could not be called): the cache's error as the read's. */
export const failed = (parameters: Parameters, input: Input, error: EffectCallError): ContractReadError =>
  new ContractReadError({ chainId: input.chainId, address: input.to, functionName: String(parameters.functionName), blockNumber: input.blockNumber, reason: error.message, cause: error })

const revertReason = (abi: Abi, data: Hex): string => {
  if (data === "0x") return "no reason given"
  try {
    const decoded = decodeErrorResult({ abi, data })
    return `${decoded.errorName}(${(decoded.args ?? []).map(String).join(", ")})`
  } catch {
    return data
  }
}
