/**
 * GraphiQL: the in-browser IDE at `GET <path>` for a browser, served from the installed `graphiql` package — its
 * prebuilt browser bundle (graphiql.min.js, which needs React and ReactDOM as globals: their UMD builds from the
 * installed react 18 packages) — never from a CDN. Subscriptions typed in it run as live queries over SSE.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Effect } from "effect"

export interface Asset {
  readonly file: string
  readonly contentType: string
}

const require = createRequire(import.meta.url)
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`))

/** The static files of the page, by the name they are served under. */
export const assets = (): ReadonlyMap<string, Asset> =>
  new Map([
    ["graphiql.min.js", { file: path.join(packageDir("graphiql"), "graphiql.min.js"), contentType: "text/javascript; charset=utf-8" }],
    ["graphiql.min.css", { file: path.join(packageDir("graphiql"), "graphiql.min.css"), contentType: "text/css; charset=utf-8" }],
    ["react.production.min.js", { file: path.join(packageDir("react"), "umd/react.production.min.js"), contentType: "text/javascript; charset=utf-8" }],
    ["react-dom.production.min.js", { file: path.join(packageDir("react-dom"), "umd/react-dom.production.min.js"), contentType: "text/javascript; charset=utf-8" }]
  ])

/** Reads an asset once; later requests are served from memory. */
export const loader = () => {
  const files = assets()
  const cache = new Map<string, Uint8Array>()
  return (name: string): Effect.Effect<{ readonly body: Uint8Array; readonly contentType: string } | undefined> =>
    Effect.suspend(() => {
      const asset = files.get(name)
      if (asset === undefined) return Effect.succeed(undefined)
      const cached = cache.get(name)
      if (cached !== undefined) return Effect.succeed({ body: cached, contentType: asset.contentType })
      return Effect.map(
        Effect.promise(() => fs.promises.readFile(asset.file)),
        (body) => {
          cache.set(name, body)
          return { body, contentType: asset.contentType }
        }
      )
    })
}

/** The page: GraphiQL on `endpoint`, opened with `defaultQuery`. */
export const page = (endpoint: string, defaultQuery: string): string => {
  const config = JSON.stringify({ endpoint, defaultQuery }).replace(/</g, "\\u003c")
  const asset = (name: string) => `${escapeHtml(endpoint)}/graphiql/${name}`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chainstore GraphiQL</title>
<link rel="stylesheet" href="${asset("graphiql.min.css")}">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="${asset("react.production.min.js")}"></script>
<script src="${asset("react-dom.production.min.js")}"></script>
<script src="${asset("graphiql.min.js")}"></script>
<script>
(() => {
  const config = ${config};
  const url = new URL(config.endpoint, location.href).toString();
  const plain = GraphiQL.createFetcher({ url });
  // Subscriptions are live queries over Server-Sent Events (GraphQL over SSE, distinct connections mode).
  async function* live(params) {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "text/event-stream" }, body: JSON.stringify(params) });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\\n\\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(message)?.[1];
          const data = message.split("\\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\\n");
          if (event === "next") yield JSON.parse(data);
          if (event === "complete") return;
        }
      }
    } finally {
      reader.cancel();
    }
  }
  const isSubscription = (query) => /(^|})\\s*subscription\\b/.test((query ?? "").replace(/#.*$/gm, ""));
  const fetcher = (params, options) => (isSubscription(params.query) ? live(params) : plain(params, options));
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, { fetcher, defaultQuery: config.defaultQuery, defaultEditorToolsVisibility: true })
  );
})();
</script>
</body>
</html>
`
}

const escapeHtml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
