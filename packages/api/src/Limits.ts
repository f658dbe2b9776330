/**
 * Limits: what one GraphQL request may ask for, checked at validation time (before any read) so an expensive
 * request is refused with a 4xx: the depth of its selections and an estimate of the rows it can touch
 * (each field costs 1 for every row it is read for; a field with `first` multiplies what is under it).
 * Introspection fields are not counted: GraphiQL's schema query is deep by nature and reads no table.
 */
import {
  type ASTVisitor,
  type FieldNode,
  GraphQLError,
  Kind,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule
} from "graphql"

export interface Options {
  readonly maxDepth: number
  readonly maxComplexity: number
  /** The page size assumed for a `first` whose value is not known at validation time. */
  readonly defaultFirst: number
  /** Names of the fields that read a page (list queries and reverse lists): without `first` they read `defaultFirst`. */
  readonly pageFields: ReadonlySet<string>
}

export const defaults = { maxDepth: 12, maxComplexity: 100_000 } as const

/** Refuses operations nested deeper than `maxDepth` fields. */
export const depthLimit = (options: Options): ValidationRule => (context: ValidationContext): ASTVisitor => ({
  OperationDefinition(node) {
    const depth = measure(context, node.selectionSet, 0, new Set())
    if (depth > options.maxDepth) {
      context.reportError(new GraphQLError(`The operation is nested ${depth} fields deep; the limit is ${options.maxDepth}.`, { nodes: [node] }))
    }
  }
})

/** Refuses operations whose estimated cost (rows × fields) passes `maxComplexity`; `variables` give `first` values. */
export const complexityLimit = (options: Options, variables?: Readonly<Record<string, unknown>> | null): ValidationRule =>
(context: ValidationContext): ASTVisitor => ({
  OperationDefinition(node) {
    const total = cost(context, node.selectionSet, 1, new Set(), options, variables ?? {})
    if (total > options.maxComplexity) {
      context.reportError(new GraphQLError(`The operation may read about ${total} values; the limit is ${options.maxComplexity}. Ask for smaller pages (first) or fewer nested lists.`, { nodes: [node] }))
    }
  }
})

const measure = (context: ValidationContext, set: SelectionSetNode, depth: number, fragments: ReadonlySet<string>): number => {
  let max = depth
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue
      max = Math.max(max, selection.selectionSet === undefined ? depth + 1 : measure(context, selection.selectionSet, depth + 1, fragments))
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      max = Math.max(max, measure(context, selection.selectionSet, depth, fragments))
    } else {
      const name = selection.name.value
      const fragment = context.getFragment(name)
      // A cycle is reported by NoFragmentCyclesRule; here it only must not loop.
      if (fragment === null || fragment === undefined || fragments.has(name)) continue
      max = Math.max(max, measure(context, fragment.selectionSet, depth, new Set([...fragments, name])))
    }
  }
  return max
}

const cost = (
  context: ValidationContext,
  set: SelectionSetNode,
  multiplier: number,
  fragments: ReadonlySet<string>,
  options: Options,
  variables: Readonly<Record<string, unknown>>
): number => {
  let total = 0
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue
      total += multiplier
      if (selection.selectionSet !== undefined) {
        total += cost(context, selection.selectionSet, multiplier * pageSize(selection, options, variables), fragments, options, variables)
      }
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      total += cost(context, selection.selectionSet, multiplier, fragments, options, variables)
    } else {
      const name = selection.name.value
      const fragment = context.getFragment(name)
      if (fragment === null || fragment === undefined || fragments.has(name)) continue
      total += cost(context, fragment.selectionSet, multiplier, new Set([...fragments, name]), options, variables)
    }
    // Past the limit the exact figure does not matter; stop before numbers grow without bound.
    if (total > Number.MAX_SAFE_INTEGER / 1e6) return total
  }
  return total
}

/** How many rows a field's selection is read for: its `first` argument (1 without one). */
const pageSize = (field: FieldNode, options: Options, variables: Readonly<Record<string, unknown>>): number => {
  const first = field.arguments?.find((a) => a.name.value === "first")
  if (first === undefined) {
    // A list field without `first` still reads a page of the default size.
    return options.pageFields.has(field.name.value) ? options.defaultFirst : 1
  }
  const value = first.value
  if (value.kind === Kind.INT) return Math.max(1, Number(value.value))
  if (value.kind === Kind.VARIABLE) {
    const given = variables[value.name.value]
    return typeof given === "number" && Number.isFinite(given) ? Math.max(1, given) : options.defaultFirst
  }
  return options.defaultFirst
}
