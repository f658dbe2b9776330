#!/usr/bin/env node
// Loads the TypeScript CLI (and users' indexer.ts files) through tsx: no build step.
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
