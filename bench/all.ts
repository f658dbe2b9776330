/** `npm run bench`: every benchmark in turn (long: the peers and the 5M memory runs take the better part of an hour). */
import { execFileSync } from "node:child_process"
import { root } from "./lib.js"

for (const script of ["startup.ts", "write.ts", "throughput.ts", "overlap.ts", "memory.ts", "effect-cache.ts", "event-model.ts", "chain-cache.ts", "pace.ts", "profile.ts", "decode.ts", "peers.ts"]) {
  console.log(`\n== bench/${script}`)
  execFileSync(process.execPath, ["--import", "tsx", `bench/${script}`], { cwd: root, stdio: "inherit" })
}
