// deploy/systemd/psnic-agent.service: systemd itself parses it (systemd-analyze verify, with the
// built psnic-agent as ExecStart), scores its confinement (systemd-analyze security --offline)
// below 5.0, and its capabilities are deploy/runtime.json's.
// PSNIC_AGENT_BINARY: the built psnic-agent (CTest passes it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const repo = new URL("../../", import.meta.url).pathname;
const unitPath = join(repo, "deploy/systemd/psnic-agent.service");
const runtime = JSON.parse(readFileSync(join(repo, "deploy/runtime.json"), "utf8"));
const maxExposure = 5.0;

// [Service] settings as key -> list of values (a key may be given more than once).
function serviceSettings(text) {
  const settings = new Map();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) { section = header[1]; continue; }
    const [key, ...value] = line.split("=");
    if (section !== "Service") continue;
    if (!settings.has(key)) settings.set(key, []);
    settings.get(key).push(value.join("="));
  }
  return settings;
}
const words = (values) => values.join(" ").split(/\s+/).filter(Boolean);

test("systemd-analyze verify: the unit parses cleanly, its ExecStart is the built agent", () => {
  const agent = process.env.PSNIC_AGENT_BINARY;
  assert.ok(agent, "PSNIC_AGENT_BINARY is not set");
  // A root holding the host's units (verify loads the unit's dependencies), this unit, and the
  // agent where the .deb puts it, so verify checks /usr/bin/psnic-agent without touching /usr.
  const root = mkdtempSync("/tmp/psnictest-systemd-");
  try {
    cpSync("/lib/systemd/system", join(root, "lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
    cpSync(unitPath, join(root, "lib/systemd/system/psnic-agent.service"));
    cpSync(agent, join(root, "usr/bin/psnic-agent"));
    const run = spawnSync("systemd-analyze", ["verify", `--root=${root}`, "psnic-agent.service"], { encoding: "utf8" });
    // verify exits 0 on a value it ignores ("Failed to parse ..., ignoring"): any line is a failure.
    assert.equal(run.stdout + run.stderr, "", "systemd-analyze verify said something");
    assert.equal(run.status, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test(`systemd-analyze security --offline: exposure below ${maxExposure}`, () => {
  const run = spawnSync("systemd-analyze",
    ["security", "--offline=yes", `--threshold=${maxExposure * 10}`, "--no-pager", unitPath], { encoding: "utf8" });
  const level = (run.stdout + run.stderr).match(/Overall exposure level for psnic-agent\.service: ([0-9.]+)/);
  assert.ok(level, `no exposure level in:\n${run.stdout}${run.stderr}`);
  console.log(`# systemd-analyze security exposure: ${level[1]}`);
  assert.ok(Number(level[1]) < maxExposure, `exposure ${level[1]}`);
  assert.equal(run.status, 0);
});

test("capabilities: ambient and bounding sets are deploy/runtime.json's", () => {
  const settings = serviceSettings(readFileSync(unitPath, "utf8"));
  const wanted = runtime.capabilities.map((c) => `CAP_${c.name}`).sort();
  assert.deepEqual(words(settings.get("CapabilityBoundingSet")).sort(), wanted);
  assert.deepEqual(words(settings.get("AmbientCapabilities")).sort(), wanted);
  assert.deepEqual(settings.get("NoNewPrivileges"), ["yes"]);
});

test("what the agent needs stays open: host namespaces, all of /proc, the pins writable", () => {
  const settings = serviceSettings(readFileSync(unitPath, "utf8"));
  assert.deepEqual(settings.get("ExecStart"), ["/usr/bin/psnic-agent"]);
  // Host PID and network namespaces (runtime.json), every process's /proc entries.
  assert.ok(runtime.host_pid && runtime.host_network);
  for (const key of ["PrivateNetwork", "PrivateUsers", "PrivatePIDs", "ProtectProc", "ProcSubset"])
    assert.equal(settings.get(key), undefined, `${key} is set`);
  // The read-write mount of runtime.json that is not a socket: the pins.
  const writable = runtime.mounts.filter((m) => !m.read_only).map((m) => m.path);
  assert.deepEqual(words(settings.get("ReadWritePaths")), writable);
  assert.deepEqual(settings.get("ProtectSystem"), ["strict"]);
  // setns(fd, CLONE_NEWNET) into containers' namespaces is all the agent enters.
  assert.deepEqual(settings.get("RestrictNamespaces"), ["net"]);
  assert.deepEqual(words(settings.get("RestrictAddressFamilies")).sort(),
                   ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]);
  const filter = words(settings.get("SystemCallFilter"));
  assert.ok(filter.includes("@system-service") && filter.includes("bpf"), filter.join(" "));
  // @system-service must hold setns and pidfd_open, which the resolver calls.
  const expanded = expand("@system-service");
  for (const call of ["setns", "pidfd_open", "signalfd4", "timerfd_create", "epoll_wait"])
    assert.ok(expanded.has(call), `${call} not in @system-service`);
});

// The system calls a group stands for, its nested groups expanded.
function expand(group, seen = new Set()) {
  const out = new Set();
  const text = execFileSync("systemd-analyze", ["syscall-filter", group], { encoding: "utf8" });
  for (const line of text.split("\n").slice(1)) {
    const name = line.trim();
    if (name === "" || name.startsWith("#")) continue;
    if (name.startsWith("@")) {
      if (!seen.has(name)) { seen.add(name); for (const call of expand(name, seen)) out.add(call); }
    } else out.add(name);
  }
  return out;
}
