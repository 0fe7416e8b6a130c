#!/usr/bin/env python3
"""Offline checks of the deployment files: deploy/kubernetes/ and the image's build context.

    python3 scripts/check_deploy.py manifests      # schemas + wif's own rules, all manifests
    python3 scripts/check_deploy.py context DIR [IGNORE]  # the .dockerignore (or IGNORE) context vs cargo's dep-info in DIR
    python3 scripts/check_deploy.py rendered FILE  # schemas only, e.g. for `kubectl kustomize` output
    python3 scripts/check_deploy.py self-test      # broken copies of the manifests must fail
    python3 scripts/check_deploy.py github         # deploy/github/*.yml: the bearer-token workflow examples

Schemas: kubernetes-validate (the Kubernetes OpenAPI schemas, bundled in the package, so no
network), strict (unknown fields are errors), against the oldest version the manifests
support (1.29: native sidecars) and the newest the package knows. A kind or apiVersion
without a schema is an error, except cert-manager's Certificate, checked by hand below.
Then the rules the schemas cannot express: the security context, kubelet probes on the
plain-HTTP metrics listener (never the mTLS port), names that must agree across objects and
with the Dockerfile; the bearer issuers file (bearer-issuers.yaml, the same as
examples/bearer-issuers.json) by the rules of docs/BEARER.md; and the consumer examples in
consumer/ (their own namespace, not in the kustomization): a projected token whose audience
is a trusted Kubernetes issuer's, read by wif-get --bearer-file without a certificate.
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
# Objects without a namespace: the kustomization's namespace is not theirs.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
# Consumer examples: manifests for the namespaces of wif-serve's clients, outside the kustomization.
CONSUMER_DIR = "consumer/"
BEARER_FILE = "bearer-issuers.yaml"
BEARER_EXAMPLE = os.path.join(ROOT, "examples", "bearer-issuers.json")
BEARER_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
BEARER_KINDS = {"oidc", "kubernetes", "github", "azure"}
BEARER_ISSUER_KEYS = {"name", "kind", "issuer", "audience", "jwks_uri", "jwks_file", "jwks_ca_file",
                      "algorithms", "max_lifetime", "leeway", "claims"}


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
            if rel.startswith(CONSUMER_DIR) or doc["kind"] in CLUSTER_SCOPED:
                pass
            elif ns != namespace:
                errors.append(f"{where}: namespace {ns!r}, not the kustomization's {namespace!r}")
            if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
                errors.append(f"{where}: a Secret with data does not belong in the repository")
            if rel in listed:
                objects.append((where, doc))
    unlisted = sorted(f for f in set(files) - set(listed) - {"kustomization.yaml"} if not f.startswith(CONSUMER_DIR))
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
    issuers = check_bearer_issuers(files, errors)
    for rel, docs in sorted(files.items()):
        if rel.startswith(CONSUMER_DIR):
            try:
                check_consumer(f"deploy/kubernetes/{rel}", docs, issuers, errors)
            except (KeyError, TypeError, AttributeError, IndexError) as e:
                errors.append(f"deploy/kubernetes/{rel}: malformed ({type(e).__name__}: {e})")
    return errors


def duration_secs(text):
    """Seconds of a duration such as 1h10m or 30s (wif's forms h, m, s), or None."""
    if not isinstance(text, str) or not re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", text) or not text:
        return None
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))


def https_or_loopback(url):
    return isinstance(url, str) and (
        url.startswith("https://") or re.match(r"http://(127\.[0-9.]+|\[::1\]|localhost)(:\d+)?/", url) is not None
    )


def check_issuers(where, doc, errors):
    """The issuers file by docs/BEARER.md ("The issuers file"); the issuers, or [] if unusable."""
    if not isinstance(doc, dict):
        errors.append(f"{where}: not a JSON object")
        return []
    for k in set(doc) - {"version", "max_token_bytes", "issuers"}:
        errors.append(f"{where}: {k}: unknown key")
    if doc.get("version") != 1:
        errors.append(f"{where}: version: must be 1")
    mtb = doc.get("max_token_bytes", 4096)
    if not isinstance(mtb, int) or not 512 <= mtb <= 7168:
        errors.append(f"{where}: max_token_bytes: must be 512..7168")
    issuers = doc.get("issuers")
    if not isinstance(issuers, list) or not issuers:
        errors.append(f"{where}: issuers: at least one issuer")
        return []
    names, urls = set(), set()
    for i, iss in enumerate(issuers):
        at = f"{where}: issuers[{i}]"
        if not isinstance(iss, dict):
            errors.append(f"{at}: not an object")
            continue
        for k in set(iss) - BEARER_ISSUER_KEYS:
            errors.append(f"{at}.{k}: unknown key")
        name = iss.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name) or name in names:
            errors.append(f"{at}.name: 1-64 of A-Za-z0-9._- and unique")
        names.add(name)
        if iss.get("kind", "oidc") not in BEARER_KINDS:
            errors.append(f"{at}.kind: one of {sorted(BEARER_KINDS)}")
        if not https_or_loopback(iss.get("issuer")) or iss.get("issuer") in urls:
            errors.append(f"{at}.issuer: an https URL (http on loopback), unique")
        urls.add(iss.get("issuer"))
        aud = iss.get("audience")
        auds = [aud] if isinstance(aud, str) else aud
        if not isinstance(auds, list) or not auds or not all(isinstance(a, str) and a for a in auds):
            errors.append(f"{at}.audience: a string or a non-empty list of strings")
        if ("jwks_uri" in iss) == ("jwks_file" in iss):
            errors.append(f"{at}: exactly one of jwks_uri and jwks_file")
        elif "jwks_uri" in iss and not https_or_loopback(iss["jwks_uri"]):
            errors.append(f"{at}.jwks_uri: an https URL (http on loopback)")
        if "jwks_ca_file" in iss and "jwks_uri" not in iss:
            errors.append(f"{at}.jwks_ca_file: only with jwks_uri")
        algs = iss.get("algorithms", ["RS256", "ES256"])
        if not isinstance(algs, list) or not algs or set(algs) - BEARER_ALGORITHMS:
            errors.append(f"{at}.algorithms: only asymmetric algorithms ({' '.join(sorted(BEARER_ALGORITHMS))}); never none or HS*")
        life = duration_secs(iss.get("max_lifetime", "2h"))
        if life is None or not 60 <= life <= 86400:
            errors.append(f"{at}.max_lifetime: a duration from 1m to 24h")
        leeway = duration_secs(iss.get("leeway", "30s"))
        if leeway is None or leeway > 300:
            errors.append(f"{at}.leeway: a duration from 0s to 5m")
        claims = iss.get("claims", [])
        if not isinstance(claims, list) or len(claims) > 16 or not all(isinstance(c, str) and c for c in claims):
            errors.append(f"{at}.claims: at most 16 claim names or JSON Pointers")
    return [i for i in issuers if isinstance(i, dict)]


def check_bearer_issuers(files, errors):
    """bearer-issuers.yaml's ConfigMap: a valid issuers file, the same as the example's."""
    docs = files.get(BEARER_FILE)
    if not docs:
        return []
    where = f"deploy/kubernetes/{BEARER_FILE}"
    cms = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ConfigMap"]
    text = ((cms[0].get("data") or {}) if cms else {}).get("issuers.json")
    if text is None:
        errors.append(f"{where}: needs a ConfigMap with the key issuers.json")
        return []
    try:
        doc = json.loads(text)
    except ValueError as e:
        errors.append(f"{where}: issuers.json is not JSON: {e}")
        return []
    issuers = check_issuers(f"{where}: issuers.json", doc, errors)
    with open(BEARER_EXAMPLE) as f:
        example = json.load(f)
    if doc != example:
        errors.append(f"{where}: issuers.json differs from examples/bearer-issuers.json (keep them the same)")
    return issuers


def check_consumer(where, docs, issuers, errors):
    """A consumer pod without a certificate: its projected token's audience is a trusted
    Kubernetes issuer's, short-lived, and wif-get sends it (--bearer-file in that volume)."""
    accounts = {d["metadata"]["name"] for d in docs if d.get("kind") == "ServiceAccount"}
    pods = [d for d in docs if d.get("kind") == "Pod"]
    if not pods:
        errors.append(f"{where}: a consumer example needs a Pod")
    k8s = [i for i in issuers if i.get("kind") == "kubernetes"]
    for pod in pods:
        spec = pod["spec"]
        if spec.get("serviceAccountName") not in accounts:
            errors.append(f"{where}: serviceAccountName {spec.get('serviceAccountName')!r} is not a ServiceAccount of the file")
        if spec.get("automountServiceAccountToken") is not False:
            errors.append(f"{where}: automountServiceAccountToken must be false (the pod's only token is wif-serve's)")
        if (spec.get("securityContext") or {}).get("runAsNonRoot") is not True:
            errors.append(f"{where}: pod securityContext.runAsNonRoot must be true")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
        for c in containers:
            check_container(f"{where}: container {c['name']}", c, errors)
        gets = [c for c in containers if (c.get("command") or [None])[0] == "wif-get"]
        if not gets:
            errors.append(f"{where}: no wif-get container")
        for c in gets:
            cmd = c["command"]
            at = f"{where}: container {c['name']}"
            for f in ["--cert", "--key", "--key-password-file", "--key-password-env"]:
                if flag(cmd, f) is not None:
                    errors.append(f"{at}: {f} with --bearer-file: a bearer client presents no certificate")
            if not (flag(cmd, "--url") or "").startswith("https://"):
                errors.append(f"{at}: --url must be https://")
            md = flag(cmd, "--metadata-server")
            if md is not None and not re.match(r"(127\.[0-9.]+|\[::1\]):\d+$", md):
                errors.append(f"{at}: --metadata-server must be on loopback")
            path = flag(cmd, "--bearer-file")
            vol = volumes.get(mounted(c, path or "/nonexistent")) or {}
            mount = next((m for m in c.get("volumeMounts") or [] if m["name"] == mounted(c, path or "/nonexistent")), None)
            sources = [s["serviceAccountToken"] for s in (vol.get("projected") or {}).get("sources") or []
                       if "serviceAccountToken" in s]
            rel = path[len(mount["mountPath"].rstrip("/")) + 1:] if mount and path else None
            token = next((t for t in sources if t.get("path") == rel), None)
            if token is None:
                errors.append(f"{at}: --bearer-file must be a serviceAccountToken of a projected volume mounted here")
                continue
            trusting = [i for i in k8s if token.get("audience") in ([i["audience"]] if isinstance(i.get("audience"), str) else i.get("audience") or [])]
            if not trusting:
                errors.append(
                    f"{at}: the projected token's audience {token.get('audience')!r} is no Kubernetes issuer's audience in "
                    f"{BEARER_FILE} (never the API server's default: set one for wif-serve alone)"
                )
            secs = token.get("expirationSeconds", 3600)
            life = min((duration_secs(i.get("max_lifetime", "2h")) or 0 for i in trusting), default=7200)
            if not 600 <= secs <= life:
                errors.append(f"{at}: expirationSeconds {secs}: at least 600 (the API server's minimum) and at most the issuer's max_lifetime ({life} s)")


# Broken copies of the manifests the checks must reject: (what, file, change).
def _set(path, value, doc=0):
    def change(docs):
        node = docs[doc]
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
CONSUMER_POD = ["spec"]
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
    ("an HMAC bearer algorithm", BEARER_FILE, lambda d: d[0]["data"].update(
        {"issuers.json": d[0]["data"]["issuers.json"].replace('"RS256", "ES256"', '"RS256", "HS256"')})),
    ("issuers file unlike the example", BEARER_FILE, lambda d: d[0]["data"].update(
        {"issuers.json": d[0]["data"]["issuers.json"].replace('"wif-serve"', '"wif"')})),
    ("consumer token for the API server", "consumer/bearer-pod.yaml",
     _set(CONSUMER_POD + ["volumes", 0, "projected", "sources", 0, "serviceAccountToken", "audience"], _DELETE, doc=1)),
    ("consumer token too long-lived", "consumer/bearer-pod.yaml",
     _set(CONSUMER_POD + ["volumes", 0, "projected", "sources", 0, "serviceAccountToken", "expirationSeconds"], 86400, doc=1)),
    ("consumer with a certificate too", "consumer/bearer-pod.yaml",
     lambda d: d[1]["spec"]["initContainers"][0]["command"].append("--cert=/etc/wif/client.crt")),
    ("bearer file not the projected token", "consumer/bearer-pod.yaml",
     _set(CONSUMER_POD + ["initContainers", 0, "command", 3], "--bearer-file=/etc/wif/server-ca/ca.crt", doc=1)),
    ("consumer with the API token", "consumer/bearer-pod.yaml", _set(CONSUMER_POD + ["automountServiceAccountToken"], True, doc=1)),
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
    missed += workflow_self_test()
    if missed:
        print("check_deploy.py: self-test: these broken manifests passed: " + ", ".join(missed), file=sys.stderr)
        return 1
    print(f"check_deploy.py: self-test: all {len(MUTATIONS)} broken manifests and {len(WORKFLOW_MUTATIONS)} workflows rejected")
    return 0


def _step(i, old, new):
    def change(wf):
        step = wf["jobs"]["deploy"]["steps"][i]
        step["run"] = step["run"].replace(old, new)

    return change


# Broken copies of deploy/github/wif-token.yml the checks must reject.
WORKFLOW_MUTATIONS = [
    ("no id-token permission", lambda wf: wf["permissions"].pop("id-token")),
    ("GitHub's default audience", _step(2, "audience=$WIF_AUDIENCE", "audience=https://github.com/octo-org")),
    ("token file without umask 077", _step(2, "umask 077", "umask 022")),
    ("a certificate with the bearer token", _step(3, "--ca ", "--cert client.crt --key client.key --ca ")),
]


def workflow_self_test():
    with open(BEARER_EXAMPLE) as f:
        issuers = json.load(f)["issuers"]
    with open(os.path.join(GITHUB_DIR, "wif-token.yml")) as f:
        baseline = yaml.safe_load(f)
    missed = []
    for what, change in WORKFLOW_MUTATIONS:
        broken = copy.deepcopy(baseline)
        change(broken)
        errors = check_workflow("deploy/github/wif-token.yml", broken, issuers)
        if errors:
            print(f"  caught {what}: {errors[0]}")
        else:
            missed.append(what)
    return missed


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


GITHUB_DIR = os.path.join(ROOT, "deploy", "github")


def check_workflow(where, wf, example_issuers):
    """A GitHub Actions example (docs/BEARER.md): id-token: write, the OIDC token asked for an
    audience wif-serve's github issuer trusts, written under umask 077 to RUNNER_TEMP, sent by
    wif-get --bearer-file (no certificate); each run: block passes shellcheck where installed."""
    import shutil
    import subprocess

    errors = []
    if not isinstance(wf, dict) or not isinstance(wf.get("jobs"), dict):
        return [f"{where}: not a workflow (no jobs)"]
    env = wf.get("env") or {}
    audiences = set()
    for i in example_issuers:
        if i.get("kind") == "github":
            aud = i.get("audience")
            audiences |= {aud} if isinstance(aud, str) else set(aud or [])
    for name, job in wf["jobs"].items():
        at = f"{where}: jobs.{name}"
        perms = {**(wf.get("permissions") or {}), **(job.get("permissions") or {})}
        if perms.get("id-token") != "write":
            errors.append(f"{at}: needs permissions id-token: write to get its OIDC token")
        runs = [st.get("run") for st in job.get("steps") or [] if st.get("run")]
        asks = [r for r in runs if "ACTIONS_ID_TOKEN_REQUEST_URL" in r]
        gets = [r for r in runs if re.search(r"(^|\n)\s*wif-get\s", r)]
        if not asks or not gets:
            errors.append(f"{at}: needs a step asking ACTIONS_ID_TOKEN_REQUEST_URL for the token and one running wif-get")
            continue
        for r in asks:
            m = re.search(r"ACTIONS_ID_TOKEN_REQUEST_URL&audience=([^\"\s]+)", r)
            aud = m and re.sub(r"\$\{?([A-Z_]+)\}?", lambda v: str(env.get(v.group(1), v.group(0))), m.group(1))
            if aud not in audiences:
                errors.append(f"{at}: the token's audience {aud!r} is no github issuer's audience in examples/bearer-issuers.json")
            if "umask 077" not in r or "RUNNER_TEMP" not in r:
                errors.append(f"{at}: write the OIDC token under umask 077 into $RUNNER_TEMP")
            if "ACTIONS_ID_TOKEN_REQUEST_TOKEN" in r.split("ACTIONS_ID_TOKEN_REQUEST_URL")[1].split("\n")[0]:
                errors.append(f"{at}: the request token belongs in the Authorization header, not the URL")
        for r in gets:
            if "--bearer-file" not in r or re.search(r"--(cert|key)\b", r):
                errors.append(f"{at}: wif-get must send the token with --bearer-file, without --cert/--key")
        if shutil.which("shellcheck"):
            for r in runs:
                sc = subprocess.run(["shellcheck", "-s", "bash", "-"], input=r, capture_output=True, text=True)
                if sc.returncode != 0:
                    errors.append(f"{at}: shellcheck: {sc.stdout.strip().splitlines()[1] if sc.stdout.strip() else sc.stderr.strip()}")
    return errors


def check_workflows():
    with open(BEARER_EXAMPLE) as f:
        issuers = check_issuers("examples/bearer-issuers.json", json.load(f), errors := [])
    names = sorted(n for n in os.listdir(GITHUB_DIR) if n.endswith((".yml", ".yaml"))) if os.path.isdir(GITHUB_DIR) else []
    for name in names:
        with open(os.path.join(GITHUB_DIR, name)) as f:
            errors += check_workflow(f"deploy/github/{name}", yaml.safe_load(f), issuers)
    if not errors:
        print(f"check_deploy.py: {len(names)} GitHub workflow example(s) ask for a trusted audience and send it as a bearer token")
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
    elif len(argv) == 2 and argv[1] == "github":
        errors = check_workflows()
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
