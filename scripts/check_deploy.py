#!/usr/bin/env python3
"""Offline checks of the deployment files: deploy/kubernetes/ and the image's build context.

    python3 scripts/check_deploy.py manifests      # schemas + wif's own rules, all manifests
    python3 scripts/check_deploy.py context DIR [IGNORE]  # the .dockerignore (or IGNORE) context vs cargo's dep-info in DIR
    python3 scripts/check_deploy.py rendered FILE  # schemas only, e.g. for `kubectl kustomize` output
    python3 scripts/check_deploy.py self-test      # broken copies of the manifests must fail

Schemas: kubernetes-validate (the Kubernetes OpenAPI schemas, bundled in the package, so no
network), strict (unknown fields are errors), against the oldest version the manifests
support (1.29: native sidecars) and the newest the package knows. A kind or apiVersion
without a schema is an error, except cert-manager's Certificate, checked by hand below.
Then the rules the schemas cannot express: the security context, kubelet probes on the
plain-HTTP metrics listener (never the mTLS port), names that must agree across objects and
with the Dockerfile.
Called by scripts/check-deploy.sh; exit 1 with one line per problem.
"""

import copy
import json
import os
import re
import sys

import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
# The oldest Kubernetes with native sidecars on by default, and the newest with a schema.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
CERT_MANAGER_USAGES = {"server auth", "client auth", "digital signature", "key encipherment"}


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_all():
    """{relative path: [documents]} for kustomization.yaml and every manifest it can name."""
    files = {}
    for dirpath, _, names in os.walk(KDIR):
        for name in names:
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(dirpath, name)
                files[os.path.relpath(path, KDIR)] = load_docs(path)
    return files


def dockerfile_uid():
    """The numeric UID of the Dockerfile's last USER line."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        users = re.findall(r"^USER\s+(\S+)", f.read(), re.M)
    if not users or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[-1]):
        return None
    return int(users[-1].split(":")[0])


def check_schema(where, doc, errors):
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if api == "cert-manager.io/v1" and kind == "Certificate":
        spec = doc.get("spec") or {}
        if not spec.get("secretName") or not (spec.get("issuerRef") or {}).get("name"):
            errors.append(f"{where}: a Certificate needs spec.secretName and spec.issuerRef.name")
        bad = set(spec.get("usages") or []) - CERT_MANAGER_USAGES
        if bad:
            errors.append(f"{where}: unknown Certificate usages {sorted(bad)}")
        return
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no Kubernetes {version} schema for {kind} {api} (wrong apiVersion or kind?)")
            return
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{where}: Kubernetes {version}: {path}: {e.message}")
            return


def flag(args, name):
    """The value of --name=VALUE or --name VALUE in a command list."""
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(args):
            return args[i + 1]
    return None


def mounted(container, path):
    """The volume name whose mount holds path in this container, or None."""
    best = None
    for m in container.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best[0]):
                best = (mp, m["name"])
    return best[1] if best else None


def check_container(where, c, errors):
    sc = c.get("securityContext") or {}
    if sc.get("readOnlyRootFilesystem") is not True:
        errors.append(f"{where}: securityContext.readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{where}: securityContext.allowPrivilegeEscalation must be false")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
        errors.append(f"{where}: securityContext.capabilities.drop must be [ALL]")
    if sc.get("privileged") or (sc.get("capabilities") or {}).get("add"):
        errors.append(f"{where}: no privileges or added capabilities")
    res = c.get("resources") or {}
    if not (res.get("requests") or {}).get("cpu") or not (res.get("requests") or {}).get("memory"):
        errors.append(f"{where}: resources.requests needs cpu and memory")
    if not (res.get("limits") or {}).get("memory"):
        errors.append(f"{where}: resources.limits.memory is required")


def check_deployment(where, dep, objects, errors):
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    labels = pod["metadata"].get("labels") or {}
    if dep["spec"].get("replicas", 1) < 2:
        errors.append(f"{where}: wif-serve needs at least 2 replicas")
    if dep["spec"]["selector"].get("matchLabels", {}).items() - labels.items():
        errors.append(f"{where}: spec.selector does not match the pod labels")
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        errors.append(f"{where}: pod securityContext.runAsNonRoot must be true")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        errors.append(f"{where}: pod seccompProfile must be RuntimeDefault")
    uid = dockerfile_uid()
    if uid is None:
        errors.append("Dockerfile: the last USER must be a numeric non-root UID")
    elif psc.get("runAsUser") != uid or psc.get("fsGroup") != uid:
        errors.append(f"{where}: runAsUser and fsGroup must be the image's UID {uid}")
    if spec.get("automountServiceAccountToken") is not False:
        errors.append(f"{where}: automountServiceAccountToken must be false (wif needs no API access)")

    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    containers = {c["name"]: c for c in spec.get("containers") or []}
    sidecars = {c["name"]: c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    for name, c in {**containers, **sidecars}.items():
        check_container(f"{where}: container {name}", c, errors)
        for m in c.get("volumeMounts") or []:
            if m["name"] not in volumes:
                errors.append(f"{where}: container {name} mounts volume {m['name']}, which the pod does not define")

    serve = containers.get("wif-serve")
    refresher = sidecars.get("refresher") or containers.get("refresher")
    if serve is None or refresher is None:
        errors.append(f"{where}: needs a wif-serve container and a refresher (native sidecar or container)")
        return
    scmd = serve.get("command") or []
    rcmd = refresher.get("command") or []
    if scmd[:1] != ["wif-serve"] or rcmd[:1] != ["wif-refresh-loop"]:
        errors.append(f"{where}: wif-serve runs wif-serve, the refresher wif-refresh-loop")
        return
    token = flag(scmd, "--token")
    if not token or flag(rcmd, "--token-out") != token:
        errors.append(f"{where}: the refresher's --token-out must be wif-serve's --token")
    elif mounted(serve, token) is None or mounted(serve, token) != mounted(refresher, token):
        errors.append(f"{where}: the token file must be on one volume mounted in both containers")
    elif "emptyDir" not in volumes[mounted(serve, token)]:
        errors.append(f"{where}: the token volume should be an emptyDir")
    for f in ["--cert", "--key", "--client-ca"]:
        path = flag(scmd, f)
        vol = volumes.get(mounted(serve, path or "/nonexistent")) or {}
        if not path or "secret" not in vol:
            errors.append(f"{where}: wif-serve {f} must be a file from a mounted Secret")
    for f in ["--cert", "--key"]:
        path = flag(scmd, f)
        if path and os.path.basename(path) != {"--cert": "tls.crt", "--key": "tls.key"}[f]:
            errors.append(f"{where}: wif-serve {f} should use the kubernetes.io/tls key name")
    config = flag(rcmd, "--config")
    vol = volumes.get(mounted(refresher, config or "/nonexistent")) or {}
    if "configMap" not in vol:
        errors.append(f"{where}: the refresher's --config must come from a mounted ConfigMap")
    else:
        check_config(where, vol["configMap"]["name"], os.path.basename(config), refresher, volumes, objects, errors)

    ports = {p.get("name"): p["containerPort"] for p in serve.get("ports") or []}
    check_probes(where, serve, scmd, ports, errors)

    listen = flag(scmd, "--listen") or ""
    if not listen.endswith(":8443") or ports.get("https") != 8443:
        errors.append(f"{where}: wif-serve listens on 8443 and names the port https")
    for obj_where, obj in objects:
        if obj["kind"] == "Service":
            sel = obj["spec"].get("selector") or {}
            if not sel or sel.items() - labels.items():
                errors.append(f"{obj_where}: the Service selector does not select the wif-serve pods")
            for p in obj["spec"]["ports"]:
                if p.get("targetPort") not in ports and p.get("targetPort") not in ports.values():
                    errors.append(f"{obj_where}: targetPort {p.get('targetPort')} is not a wif-serve port")
        if obj["kind"] == "PodDisruptionBudget":
            sel = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
            if not sel or sel.items() - labels.items():
                errors.append(f"{obj_where}: the PodDisruptionBudget selector does not select the wif-serve pods")


def pod_ip_variable(container, host):
    """The variable a --metrics-listen host $(VAR) or [$(VAR)] names, if the container's env
    sets it to the pod IP (downward API, status.podIP); else None."""
    m = re.fullmatch(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\[\$\(([A-Za-z_][A-Za-z0-9_]*)\)\]", host)
    if not m:
        return None
    name = m.group(1) or m.group(2)
    for e in container.get("env") or []:
        if e.get("name") == name:
            field = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            return name if field == "status.podIP" else None
    return None


def check_probes(where, serve, scmd, ports, errors):
    """Kubelet httpGet probes on the plain-HTTP metrics listener: no client certificate is
    involved, so no certificate or --allow change can fail every pod's probes at once.
    Readiness asks /healthz (503 without a token), liveness /livez. The listener is bound
    to the pod IP, the address the probes go to, and nothing wider."""
    metrics = flag(scmd, "--metrics-listen") or ""
    host, _, mport = metrics.rpartition(":")
    if not mport.isdigit() or ports.get("metrics") != int(mport):
        errors.append(f"{where}: wif-serve needs --metrics-listen on the port named metrics (the probes use it)")
        return
    if pod_ip_variable(serve, host) is None:
        errors.append(
            f"{where}: --metrics-listen must be on the pod IP, $(POD_IP) with POD_IP from the downward API's "
            f"status.podIP, not {host!r}: the kubelet probes that address, and no other needs the listener"
        )
    for kind, path in [("readinessProbe", "/healthz"), ("livenessProbe", "/livez")]:
        probe = serve.get(kind) or {}
        get = probe.get("httpGet")
        if get is None:
            errors.append(f"{where}: wif-serve {kind} must be httpGet {path} on the metrics port")
            continue
        if get.get("port") in ("https", ports.get("https")) or get.get("scheme", "HTTP") != "HTTP":
            errors.append(f"{where}: wif-serve {kind} on the mTLS port: the kubelet has no client certificate")
            continue
        if get.get("port") not in ("metrics", int(mport)):
            errors.append(f"{where}: wif-serve {kind} must use the metrics port, not {get.get('port')!r}")
        if get.get("path") != path:
            errors.append(f"{where}: wif-serve {kind} must ask {path}, not {get.get('path')!r}")
        if get.get("host"):
            errors.append(f"{where}: wif-serve {kind} must go to the pod IP (no httpGet.host)")


def check_config(where, cm_name, key, refresher, volumes, objects, errors):
    cms = [o for _, o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == cm_name]
    if not cms or key not in (cms[0].get("data") or {}):
        errors.append(f"{where}: ConfigMap {cm_name} with key {key} is not among the manifests")
        return
    try:
        cfg = json.loads(cms[0]["data"][key])
    except ValueError as e:
        errors.append(f"ConfigMap {cm_name}: {key} is not JSON: {e}")
        return
    for k in ["client_id", "tenant_id", "sts_audience"]:
        if not cfg.get(k):
            errors.append(f"ConfigMap {cm_name}: {key} lacks {k}")
    for k in ["key", "cert"]:
        path = cfg.get(k) or ""
        if "secret" not in (volumes.get(mounted(refresher, path)) or {}):
            errors.append(f"ConfigMap {cm_name}: {k} {path!r} is not a file of a Secret mounted in the refresher")
    for k in cfg:
        if re.search(r"secret$|password$", k):
            errors.append(f"ConfigMap {cm_name}: {k} is a secret; name a file (…_file) instead")


def check_manifests(files):
    errors = []
    kust = (files.get("kustomization.yaml") or [None])[0]
    if not kust or kust.get("kind") != "Kustomization":
        return ["deploy/kubernetes/kustomization.yaml is missing"]
    listed = kust.get("resources") or []
    objects = []
    for rel in listed:
        if rel not in files:
            errors.append(f"kustomization.yaml: resource {rel} does not exist")
    namespace = kust.get("namespace")
    for rel, docs in sorted(files.items()):
        if rel == "kustomization.yaml":
            continue
        for i, doc in enumerate(docs):
            where = f"deploy/kubernetes/{rel}" + (f"#{i + 1}" if len(docs) > 1 else "")
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                errors.append(f"{where}: not a Kubernetes object (no kind/apiVersion)")
                continue
            check_schema(where, doc, errors)
            ns = (doc.get("metadata") or {}).get("namespace")
            if doc["kind"] != "Namespace" and ns != namespace:
                errors.append(f"{where}: namespace {ns!r}, not the kustomization's {namespace!r}")
            if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
                errors.append(f"{where}: a Secret with data does not belong in the repository")
            if rel in listed:
                objects.append((where, doc))
    unlisted = sorted(set(files) - set(listed) - {"kustomization.yaml"})
    with open(os.path.join(KDIR, "kustomization.yaml")) as f:
        text = f.read()
    for rel in unlisted:
        if f"# - {rel}" not in text:
            errors.append(f"kustomization.yaml: {rel} is neither a resource nor an optional (commented) one")
    deployments = [(w, o) for w, o in objects if o.get("kind") == "Deployment"]
    if len(deployments) != 1:
        errors.append("kustomization.yaml: expected exactly one Deployment")
    for w, d in deployments:
        try:
            check_deployment(w, d, objects, errors)
        except (KeyError, TypeError, AttributeError) as e:
            errors.append(f"{w}: malformed ({type(e).__name__}: {e})")
    kinds = {o["kind"] for _, o in objects}
    for k in ["Service", "PodDisruptionBudget", "ConfigMap"]:
        if k not in kinds:
            errors.append(f"kustomization.yaml: no {k} among the resources")
    images = {i["name"] for i in kust.get("images") or []}
    for w, d in deployments:
        for c in d["spec"]["template"]["spec"].get("containers", []) + d["spec"]["template"]["spec"].get(
            "initContainers", []
        ):
            if c.get("image") not in images:
                errors.append(f"{w}: image {c.get('image')!r} is not set by the kustomization's images")
    return errors


# Broken copies of the manifests the checks must reject: (what, file, change).
def _set(path, value):
    def change(docs):
        node = docs[0]
        for p in path[:-1]:
            node = node[p]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


_DELETE = object()
POD = ["spec", "template", "spec"]
SERVE = POD + ["containers", 0]
SIDECAR = POD + ["initContainers", 0]
MUTATIONS = [
    ("wrong apiVersion", "deployment.yaml", _set(["apiVersion"], "apps/v2")),
    ("misspelt kind", "service.yaml", _set(["kind"], "Sevice")),
    ("missing selector", "deployment.yaml", _set(["spec", "selector"], _DELETE)),
    ("unknown field", "deployment.yaml", _set(SERVE + ["securityContext", "readOnlyRootFileSystem"], True)),
    ("port as a string", "service.yaml", _set(["spec", "ports", 0, "port"], "8443")),
    ("writable root filesystem", "deployment.yaml", _set(SIDECAR + ["securityContext", "readOnlyRootFilesystem"], False)),
    ("root allowed", "deployment.yaml", _set(POD + ["securityContext", "runAsNonRoot"], _DELETE)),
    ("no seccomp", "deployment.yaml", _set(POD + ["securityContext", "seccompProfile"], _DELETE)),
    ("capabilities kept", "deployment.yaml", _set(SERVE + ["securityContext", "capabilities", "drop"], ["NET_RAW"])),
    ("no memory limit", "deployment.yaml", _set(SERVE + ["resources", "limits"], _DELETE)),
    (
        "httpGet probe on an mTLS port",
        "deployment.yaml",
        _set(SERVE + ["readinessProbe", "httpGet"], {"path": "/healthz", "port": 8443, "scheme": "HTTPS"}),
    ),
    ("probe on the https port by name", "deployment.yaml", _set(SERVE + ["livenessProbe", "httpGet", "port"], "https")),
    ("exec probe", "deployment.yaml", _set(SERVE + ["livenessProbe"], {"exec": {"command": ["wif-probe", "live"]}})),
    ("liveness on /healthz", "deployment.yaml", _set(SERVE + ["livenessProbe", "httpGet", "path"], "/healthz")),
    ("probe to another host", "deployment.yaml", _set(SERVE + ["livenessProbe", "httpGet", "host"], "127.0.0.1")),
    ("metrics on loopback", "deployment.yaml", _set(SERVE + ["command", -1], "--metrics-listen=127.0.0.1:9464")),
    ("metrics on all addresses", "deployment.yaml", _set(SERVE + ["command", -1], "--metrics-listen=0.0.0.0:9464")),
    ("POD_IP from the node's IP", "deployment.yaml", _set(SERVE + ["env", 0, "valueFrom", "fieldRef", "fieldPath"], "status.hostIP")),
    ("POD_IP not set", "deployment.yaml", _set(SERVE + ["env"], _DELETE)),
    ("token file not shared", "deployment.yaml", _set(SIDECAR + ["command", 2], "--token-out=/tmp/wif_token.txt")),
    ("unmounted volume", "deployment.yaml", _set(SERVE + ["volumeMounts", 1, "name"], "server-cert")),
    ("Service selects nothing", "service.yaml", _set(["spec", "selector"], {"app.kubernetes.io/name": "wif"})),
    ("PDB selects nothing", "poddisruptionbudget.yaml", _set(["spec", "selector", "matchLabels"], {"app": "x"})),
    ("config is not JSON", "configmap.yaml", _set(["data", "wif.json"], "{client_id: x")),
    ("wrong namespace", "service.yaml", _set(["metadata", "namespace"], "default")),
    ("a Secret with data", "serviceaccount.yaml", lambda d: d.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k", "namespace": "wif"}, "data": {"a": "Yg=="}})),
    ("bad Certificate usage", "cert-manager/certificates.yaml", _set(["spec", "usages"], ["server-auth"])),
]


def self_test(files):
    baseline = check_manifests(files)
    if baseline:
        print("self-test needs clean manifests first:\n" + "\n".join(baseline), file=sys.stderr)
        return 1
    missed = []
    for what, rel, change in MUTATIONS:
        broken = copy.deepcopy(files)
        change(broken[rel])
        errors = check_manifests(broken)
        if errors:
            print(f"  caught {what}: {errors[0]}")
        else:
            missed.append(what)
    if missed:
        print("check_deploy.py: self-test: these broken manifests passed: " + ", ".join(missed), file=sys.stderr)
        return 1
    print(f"check_deploy.py: self-test: all {len(MUTATIONS)} broken manifests rejected")
    return 0


def check_context(dep_dir, ignore_file):
    """The image's build context (.dockerignore applied by docker-py's own implementation)
    holds every source cargo read for the binaries (the dep-info .d files in dep_dir) and no
    key material or build output."""
    from docker.utils.build import exclude_paths

    with open(ignore_file) as f:
        patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    context = {p for p in exclude_paths(ROOT, patterns, dockerfile="Dockerfile") if os.path.isfile(os.path.join(ROOT, p))}
    errors = []
    needed = {"Cargo.toml", "Cargo.lock", ".cargo/config.toml", "scripts/container/build-rootfs.sh",
              "scripts/wif-refresh", "scripts/container/wif-refresh-loop"}
    deps = [n for n in os.listdir(dep_dir) if n.startswith("wif-") and n.endswith(".d")]
    if not deps:
        return [f"no wif-*.d dep-info files in {dep_dir}: build the binaries first"]
    for name in deps:
        with open(os.path.join(dep_dir, name)) as f:
            text = f.read().replace("\\\n", " ")
        _, _, sources = text.partition(": ")
        for src in re.split(r"(?<!\\)\s+", sources.strip().splitlines()[0]):
            src = os.path.realpath(src.replace("\\ ", " "))
            if src.startswith(ROOT + os.sep):
                needed.add(os.path.relpath(src, ROOT))
    for path in sorted(needed - context):
        errors.append(f".dockerignore: the build needs {path}, which is not in the build context")
    for path in sorted(context):
        if re.search(r"(^|/)target/|\.(key|p12|pfx|pem|crt|tmp)$|(^|/)\.git/|wif_token", path):
            errors.append(f".dockerignore: {path} is in the build context (key material or build output)")
    if not errors:
        print(f"check_deploy.py: build context: {len(context)} files, all {len(needed)} the build reads, no keys")
    return errors


def main(argv):
    if len(argv) == 2 and argv[1] == "manifests":
        errors = check_manifests(load_all())
        if not errors:
            n = sum(len(d) for d in load_all().values())
            print(f"check_deploy.py: {n} manifests valid for Kubernetes {' and '.join(VERSIONS)}, wif's rules hold")
    elif len(argv) == 3 and argv[1] == "rendered":
        errors = []
        docs = load_docs(argv[2])
        for doc in docs:
            check_schema(f"{argv[2]}: {doc.get('kind')} {(doc.get('metadata') or {}).get('name')}", doc, errors)
        if not errors:
            print(f"check_deploy.py: the {len(docs)} objects kustomize renders are valid")
    elif len(argv) == 2 and argv[1] == "self-test":
        return self_test(load_all())
    elif len(argv) in (3, 4) and argv[1] == "context":
        errors = check_context(argv[2], argv[3] if len(argv) == 4 else os.path.join(ROOT, ".dockerignore"))
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for e in errors:
        print(f"check_deploy.py: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
