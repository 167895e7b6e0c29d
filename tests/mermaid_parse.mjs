// Parse Mermaid blocks (separated by a line "---BLOCK---") read from stdin with mermaid's own parser.
// argv[2]: a node_modules folder holding mermaid and jsdom.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";
import fs from "node:fs";
const modules = path.resolve(process.argv[2]);
const require = createRequire(path.join(modules, "noop.js"));
const { JSDOM } = require("jsdom");
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
const mermaidPath = path.join(modules, "mermaid", "dist", "mermaid.core.mjs");
const { default: mermaid } = await import(pathToFileURL(mermaidPath).href);
mermaid.initialize({ startOnLoad: false });
const blocks = fs.readFileSync(0, "utf8").split("\n---BLOCK---\n");
let bad = 0;
for (const [i, block] of blocks.entries()) {
  try {
    const r = await mermaid.parse(block);
    console.log(`${i} ok ${r.diagramType}`);
  } catch (e) {
    bad++;
    console.log(`${i} error ${String(e.message || e).split("\n").join(" | ")}`);
  }
}
process.exit(bad ? 1 : 0);
