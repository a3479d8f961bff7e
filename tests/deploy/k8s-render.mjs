// Renders deploy/kubernetes the way kustomize does for the fields it uses, and validates each
// object against the Kubernetes OpenAPI schema (kubernetes-models) with unknown fields refused,
// as `kubectl apply` (strict field validation) refuses them.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

export const repo = new URL("../../", import.meta.url).pathname;

const models = new Map([
  ["v1/Namespace", Namespace],
  ["v1/Service", Service],
  ["apps/v1/DaemonSet", DaemonSet],
  ["monitoring.coreos.com/v1/PodMonitor", PodMonitor],
]);
const clusterScoped = new Set(["v1/Namespace"]);
// The kustomization fields render() applies; any other field would be silently ignored here, so
// it is refused instead.
const understood = new Set(["apiVersion", "kind", "namespace", "resources", "images"]);

export function parseYamlFile(path) {
  return parseAllDocuments(readFileSync(path, "utf8")).map((doc) => {
    if (doc.errors.length) throw new Error(`${path}: ${doc.errors[0].message}`);
    return doc.toJS();
  }).filter((object) => object !== null);
}

export function kustomization(dir) {
  const [k] = parseYamlFile(join(dir, "kustomization.yaml"));
  for (const field of Object.keys(k))
    if (!understood.has(field)) throw new Error(`${dir}/kustomization.yaml: ${field} is not rendered by this test`);
  return k;
}

const typeOf = (object) => `${object.apiVersion}/${object.kind}`;

// kustomize build DIR, for namespace, images and resources (files or kustomization directories).
export function render(dir) {
  const k = kustomization(dir);
  const objects = [];
  for (const resource of k.resources ?? []) {
    const path = join(dir, resource);
    objects.push(...(statSync(path).isDirectory() ? render(path) : parseYamlFile(path)));
  }
  for (const object of objects) {
    if (k.namespace && !clusterScoped.has(typeOf(object))) object.metadata.namespace = k.namespace;
    for (const container of containersOf(object)) {
      const name = container.image.replace(/[:@].*$/, "");
      const image = (k.images ?? []).find((i) => i.name === name);
      if (image) container.image = `${image.newName ?? name}:${image.newTag}`;
    }
  }
  return objects;
}

export function containersOf(object) {
  const spec = object.spec?.template?.spec;
  return spec ? [...(spec.initContainers ?? []), ...spec.containers] : [];
}

// Validates with the model's schema while recording every field the schema's validator reads;
// a field it never read is one the schema does not have. Maps (labels, limits) are listed by the
// validator, so their keys all count as read. Returns the unknown fields' paths.
export function validate(object) {
  const Model = models.get(typeOf(object));
  if (!Model) throw new Error(`${typeOf(object)} ${object.metadata?.name}: no schema for this kind here`);
  const read = new WeakMap();
  const listed = new WeakSet();
  const note = (target, key) => {
    if (typeof key !== "string") return;
    if (!read.has(target)) read.set(target, new Set());
    read.get(target).add(key);
  };
  const handler = {
    get(target, key, receiver) {
      note(target, key);
      return watch(Reflect.get(target, key, receiver));
    },
    has(target, key) {
      note(target, key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      listed.add(target);
      return Reflect.ownKeys(target);
    },
  };
  const watch = (value) => (value && typeof value === "object" ? new Proxy(value, handler) : value);
  Model.prototype.validate.call(watch(object));  // throws on a schema violation

  const unknown = [];
  const walk = (value, path) => {
    if (Array.isArray(value)) value.forEach((item, i) => walk(item, `${path}[${i}]`));
    else if (value && typeof value === "object")
      for (const key of Object.keys(value)) {
        if (!listed.has(value) && !read.get(value)?.has(key)) unknown.push(`${path}.${key}`);
        walk(value[key], `${path}.${key}`);
      }
  };
  walk(object, "");
  return unknown;
}
