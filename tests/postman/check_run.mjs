// Reads a newman JSON report and checks the run: the Quick start folder's 4 requests ran,
// at least one assertion and none failed, and "Who am I" answered the expected token_type.
// Usage: node check_run.mjs report.json Bearer|DPoP
import { readFileSync } from "node:fs";

const [report, expected] = [JSON.parse(readFileSync(process.argv[2], "utf8")), process.argv[3]];
const { stats, executions, failures } = report.run;
const problems = [];
if (stats.requests.total !== 4) problems.push(`${stats.requests.total} requests, not 4`);
if (stats.assertions.total === 0) problems.push("no assertion ran");
if (stats.assertions.failed !== 0 || failures.length !== 0) {
  problems.push(`${stats.assertions.failed} failed assertions: ${JSON.stringify(failures.map((f) => f.error?.message))}`);
}
const me = executions.find((e) => e.item.name === "Who am I");
const body = me?.response?.stream ? JSON.parse(Buffer.from(me.response.stream.data).toString("utf8")) : null;
if (body?.token_type !== expected) {
  problems.push(`Who am I reported token_type ${body?.token_type}, not ${expected}`);
}
if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(
  `newman: ${stats.requests.total} requests, ${stats.assertions.total} assertions, ${stats.assertions.failed} failed; /user/me token_type ${body.token_type}`,
);
