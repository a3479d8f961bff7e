// deploy/kubernetes, checked offline: every object against the Kubernetes OpenAPI schemas (no
// unknown fields), the API server's own cross-field rules this DaemonSet could break, and the
// DaemonSet against deploy/runtime.json, the one list of what the agent needs from a node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { containersOf, kustomization, parseYamlFile, render, repo, validate } from "./k8s-render.mjs";

const base = join(repo, "deploy/kubernetes");
const withPodMonitor = join(base, "podmonitor");
const runtime = JSON.parse(readFileSync(join(repo, "deploy/runtime.json"), "utf8"));
const version = readFileSync(join(repo, "CMakeLists.txt"), "utf8")
  .match(/project\(psnic\s+VERSION\s+([0-9.]+)/)[1];

const find = (objects, kind) => {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `one ${kind} rendered`);
  return found[0];
};
const daemonSet = () => find(render(base), "DaemonSet");
const agentContainer = (ds) => {
  assert.equal(ds.spec.template.spec.containers.length, 1);
  return ds.spec.template.spec.containers[0];
};

for (const dir of [base, withPodMonitor]) {
  test(`${dir.slice(repo.length)}: every object is valid against its schema, no unknown field`, () => {
    const objects = render(dir);
    assert.ok(objects.length >= 3);
    for (const object of objects)
      assert.deepEqual(validate(object), [], `${object.kind} ${object.metadata.name}: unknown fields`);
  });
}

test("the validator refuses what the API server would: a wrong type, a misspelt field", () => {
  const wrongType = daemonSet();
  agentContainer(wrongType).ports[0].containerPort = "9867";
  assert.throws(() => validate(wrongType), /containerPort must be integer/);
  const misspelt = daemonSet();
  agentContainer(misspelt).volumeMounts[0].mountPropogation = "HostToContainer";
  assert.deepEqual(validate(misspelt),
                   [".spec.template.spec.containers[0].volumeMounts[0].mountPropogation"]);
  assert.throws(() => kustomization(join(repo, "tests/deploy/testdata/unrendered")),
                /patches is not rendered/);
});

test("kustomization: namespace psnic everywhere, the image tagged with the project version", () => {
  const k = kustomization(base);
  assert.equal(k.namespace, "psnic");
  assert.deepEqual(k.images, [{ name: "psnic-agent", newTag: version }]);
  assert.equal(kustomization(withPodMonitor).namespace, "psnic");
  const objects = render(withPodMonitor);
  assert.deepEqual(objects.map((o) => o.kind).sort(),
                   ["DaemonSet", "Namespace", "PodMonitor", "Service"]);
  assert.equal(find(objects, "Namespace").metadata.name, "psnic");
  for (const o of objects.filter((o) => o.kind !== "Namespace"))
    assert.equal(o.metadata.namespace, "psnic", `${o.kind} namespace`);
  assert.equal(agentContainer(find(objects, "DaemonSet")).image, `psnic-agent:${version}`);
  // Every file in the directory is rendered by one of the two kustomizations.
  const files = (dir) => readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
  assert.deepEqual(files(base).sort(), [...kustomization(base).resources].sort());
  assert.deepEqual(files(withPodMonitor), ["podmonitor.yaml"]);
});

test("DaemonSet: capabilities, host PID and network, read-only root are deploy/runtime.json's", () => {
  const ds = daemonSet();
  const pod = ds.spec.template.spec;
  const sc = agentContainer(ds).securityContext;
  assert.deepEqual(sc.capabilities.drop, ["ALL"]);
  assert.deepEqual([...sc.capabilities.add].sort(), runtime.capabilities.map((c) => c.name).sort());
  assert.equal(pod.hostPID, runtime.host_pid);
  assert.equal(pod.hostNetwork, runtime.host_network);
  assert.equal(sc.readOnlyRootFilesystem, runtime.read_only_root_filesystem);
  assert.equal(sc.privileged, false);
  assert.equal(sc.runAsUser, 0);
});

test("DaemonSet: the port and --listen are deploy/runtime.json's, and so are the scrape targets'", () => {
  const objects = render(withPodMonitor);
  const ds = find(objects, "DaemonSet");
  const container = agentContainer(ds);
  assert.deepEqual(container.ports, [{ name: "metrics", containerPort: runtime.port, protocol: "TCP" }]);
  const listen = container.args.filter((a) => a.startsWith("--listen"));
  assert.equal(listen.length, 1);
  assert.equal(Number(listen[0].match(/:(\d+)$/)[1]), runtime.port);
  assert.deepEqual(container.args, listen, "no argument but --listen");
  const annotations = ds.spec.template.metadata.annotations;
  assert.equal(annotations["prometheus.io/scrape"], "true");
  assert.equal(annotations["prometheus.io/port"], String(runtime.port));
  assert.equal(annotations["prometheus.io/path"], "/metrics");
  const service = find(objects, "Service");
  assert.equal(service.spec.clusterIP, "None");
  assert.deepEqual(service.spec.ports, [{ name: "metrics", port: runtime.port, targetPort: "metrics", protocol: "TCP" }]);
  const endpoints = find(objects, "PodMonitor").spec.podMetricsEndpoints;
  assert.deepEqual(endpoints.map((e) => [e.port, e.path]), [["metrics", "/metrics"]]);
});

test("DaemonSet: the mounts are deploy/runtime.json's that Kubernetes mounts, with their propagation", () => {
  const ds = daemonSet();
  const pod = ds.spec.template.spec;
  const mounts = agentContainer(ds).volumeMounts;
  const wanted = runtime.mounts.filter((m) => m.kubernetes);
  assert.deepEqual(mounts.map((m) => m.mountPath).sort(), wanted.map((m) => m.path).sort());
  for (const want of wanted) {
    const mount = mounts.find((m) => m.mountPath === want.path);
    assert.equal(mount.readOnly ?? false, want.read_only, `${want.path} readOnly`);
    assert.equal(mount.mountPropagation ?? "None", want.host_propagation ? "HostToContainer" : "None",
                 `${want.path} propagation`);
    const volume = pod.volumes.find((v) => v.name === mount.name);
    assert.ok(volume, `${want.path}: volume ${mount.name}`);
    assert.equal(volume.hostPath.path, want.path, `${want.path}: the host's own path`);
    assert.match(volume.hostPath.type, /^(Directory|DirectoryOrCreate)$/, `${want.path} hostPath type`);
  }
  assert.equal(pod.volumes.length, mounts.length, "no volume left unmounted");
});

test("DaemonSet: probes ask /healthz on the metrics port, a path the agent serves", () => {
  const container = agentContainer(daemonSet());
  for (const probe of [container.livenessProbe, container.readinessProbe])
    assert.deepEqual(probe.httpGet, { path: "/healthz", port: "metrics" });
  const exporter = join(repo, "exporter");
  const serving = readdirSync(exporter).filter((f) => /\.(cpp|h)$/.test(f) &&
    readFileSync(join(exporter, f), "utf8").includes('"/healthz"'));
  assert.ok(serving.length > 0, "exporter/ has no \"/healthz\" path");
});

test("DaemonSet: every node, critical, no token, rolling one node at a time, measured resources", () => {
  const ds = daemonSet();
  const pod = ds.spec.template.spec;
  assert.deepEqual(pod.tolerations, [{ operator: "Exists" }]);
  assert.equal(pod.priorityClassName, "system-node-critical");
  assert.equal(pod.automountServiceAccountToken, false);
  assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
  assert.deepEqual(ds.spec.updateStrategy, { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } });
  assert.ok(pod.terminationGracePeriodSeconds <= 10);
  const resources = agentContainer(ds).resources;
  // README's measurement: 23 MB RSS with 1100 interfaces. The request must cover it.
  assert.ok(mebibytes(resources.requests.memory) >= 23e6 / 2 ** 20);
  assert.ok(mebibytes(resources.limits.memory) >= 2 * mebibytes(resources.requests.memory));
  assert.equal(resources.limits.cpu, undefined, "no CPU limit: throttling delays attaches");
});

test("the API server's cross-field rules hold: selectors, volumes, privilege escalation", () => {
  const objects = render(withPodMonitor);
  const ds = find(objects, "DaemonSet");
  const labels = ds.spec.template.metadata.labels;
  const selects = (selector) => Object.entries(selector).every(([k, v]) => labels[k] === v);
  assert.ok(selects(ds.spec.selector.matchLabels), "DaemonSet selector matches its pods");
  assert.ok(selects(find(objects, "Service").spec.selector), "Service selects the agent pods");
  assert.ok(selects(find(objects, "PodMonitor").spec.selector.matchLabels), "PodMonitor selects them");
  const pod = ds.spec.template.spec;
  for (const container of containersOf(ds)) {
    for (const mount of container.volumeMounts)
      assert.ok(pod.volumes.some((v) => v.name === mount.name), `volume ${mount.name} exists`);
    // hostNetwork: a hostPort, if given, must equal the containerPort.
    for (const port of container.ports)
      assert.ok(port.hostPort === undefined || port.hostPort === port.containerPort);
    const sc = container.securityContext;
    // Bidirectional propagation is refused without privileged: true.
    assert.ok(container.volumeMounts.every((m) => m.mountPropagation !== "Bidirectional"));
    // allowPrivilegeEscalation: false is refused with privileged or CAP_SYS_ADMIN (the API only
    // checks the CAP_ spelling; the rule's reason holds for both).
    if (sc.allowPrivilegeEscalation === false) {
      assert.notEqual(sc.privileged, true);
      assert.ok(!sc.capabilities.add.some((c) => c.replace(/^CAP_/, "") === "SYS_ADMIN"),
                "allowPrivilegeEscalation: false with SYS_ADMIN");
    }
  }
});

function mebibytes(quantity) {
  const m = String(quantity).match(/^(\d+)(Mi|Gi)$/);
  assert.ok(m, `quantity ${quantity} in Mi or Gi`);
  return Number(m[1]) * (m[2] === "Gi" ? 1024 : 1);
}

test("kubectl apply -k deploy/kubernetes applies the Namespace, the DaemonSet and the Service", () => {
  // Each manifest file, and what it must hold: the kustomization's resources are exactly these.
  const files = {
    "namespace.yaml": "Namespace",
    "daemonset.yaml": "DaemonSet",
    "service.yaml": "Service",
  };
  assert.deepEqual(kustomization(base).resources, Object.keys(files));
  for (const [file, kind] of Object.entries(files)) {
    const objects = parseYamlFile(join(base, file));
    assert.deepEqual(objects.map((o) => o.kind), [kind], file);
    for (const object of objects) assert.deepEqual(validate(object), [], file);
  }
  const service = find(render(base), "Service");
  assert.equal(service.spec.clusterIP, "None");
  assert.equal(service.metadata.namespace, "psnic");
});
