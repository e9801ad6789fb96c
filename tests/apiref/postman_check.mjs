// Postman: converts keygate's OpenAPI document with Postman's own converter
// (openapi-to-postmanv2) and checks that the collection has every operation, each with
// its authentication. Usage: node postman_check.mjs openapi.json
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.NODE_MODULES_PARENT + "/");
const Converter = require("openapi-to-postmanv2");

const docText = readFileSync(process.argv[2], "utf8");
const doc = JSON.parse(docText);

const expected = new Map();
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    expected.set(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ":$1")}`, op);
  }
}

const result = await new Promise((resolve, reject) =>
  Converter.convert({ type: "string", data: docText }, { folderStrategy: "Tags" }, (err, res) =>
    err ? reject(err) : resolve(res),
  ),
);
if (!result.result) {
  console.error("conversion failed:", result.reason);
  process.exit(1);
}
const collection = result.output[0].data;

const found = new Map();
const walk = (items, inheritedAuth) => {
  for (const item of items) {
    const auth = item.auth ?? inheritedAuth;
    if (item.item) {
      walk(item.item, auth);
      continue;
    }
    const url = item.request.url;
    const path = "/" + (Array.isArray(url.path) ? url.path.join("/") : url.path);
    found.set(`${item.request.method} ${path}`, item.request.auth ?? auth);
  }
};
walk(collection.item, collection.auth);

const failures = [];
for (const [key, op] of expected) {
  if (!found.has(key)) {
    failures.push(`missing: ${key}`);
    continue;
  }
  const auth = found.get(key);
  const secured = Array.isArray(op.security) && op.security.some((s) => Object.keys(s).length > 0);
  if (secured && (!auth || auth.type === "noauth")) {
    failures.push(`no auth: ${key}`);
  }
}
if (found.size !== expected.size) {
  failures.push(`the collection has ${found.size} requests, the document ${expected.size} operations`);
}
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log(`postman: ${found.size} requests, every operation present with its auth`);
