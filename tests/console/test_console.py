"""The operator console in headless Chromium, on both stacks: every page against the
services it reads, checked against what the CLI prints for the same thing (the
matrix, the lag, the dead letters, the registry diff), the re-drive clicked and its
effect on the store and the topic, and who may see and do what (401, 403)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import start_http_server
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.streams.helpers import ingest_until_caught_up, send_raw, send_updates, update
from tests.streams.processes import settings_env
from vahini import wiring
from vahini.console.server import RunningConsole, start_console
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import publish
from vahini.registry.publish import read_published
from vahini.serving.auth import token_sha256
from vahini.serving.server import RunningServer, start_server

pytestmark = [pytest.mark.real_service, pytest.mark.slow]  # the browser is a real service: a skip fails CI

OPERATOR, VIEWER, RANKER = "operator-secret", "viewer-secret", "ranker-secret"
CALLERS = f"""callers:
  - name: operator
    token_sha256: {token_sha256(OPERATOR)}
    allow: [Console.Read, Console.Operate, ModelProxy.GetFeatures, FeatureService.*, InteractionService.*]
  - name: viewer
    token_sha256: {token_sha256(VIEWER)}
    allow: [Console.Read, ModelProxy.GetFeatures]
  - name: ranker
    token_sha256: {token_sha256(RANKER)}
    allow: [ModelProxy.GetFeatures]
"""
PAGES = ("/registry", "/registry/diff", "/models", "/models/home_ranker", "/try", "/live", "/live/panel",
         "/dead-letters")


@dataclass
class Stack:
    settings: object
    console: RunningConsole
    server: RunningServer
    tokens: Path
    unique: str  # in every key a test writes: the real stack's keyspace is shared by every test

    def id(self, name: str) -> str:
        return f"{name}-{self.unique}"

    @property
    def url(self) -> str:
        return self.console.url

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture(params=STACKS)
def stack(request, tmp_path, unique):
    settings = with_sample_registry(stack_settings(request.param, request, tmp_path, unique))
    tokens = tmp_path / "callers.yaml"
    tokens.write_text(CALLERS)
    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={
        "auth": settings.serving.auth.model_copy(update={"tokens_file": tokens})})})
    server = start_server(settings, port=0)
    metrics, _ = start_http_server(0, addr="127.0.0.1")  # this process's own: the worker below runs here
    settings = settings.model_copy(update={"console": settings.console.model_copy(update={
        "target": f"127.0.0.1:{server.port}", "refresh_s": 1.0,
        "metrics_endpoints": [f"http://127.0.0.1:{metrics.server_port}/metrics"]})})
    console = start_console(settings, port=0)
    yield Stack(settings, console, server, tokens, unique)
    console.stop()
    server.stop(0)
    metrics.shutdown()


def vahini(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vahini.cli", *args], env=settings_env(stack.settings),
                          capture_output=True, text=True, timeout=120)


def sign_in(browser, stack: Stack, token: str) -> None:
    browser.get(f"{stack.url}/login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(lambda b: "/login" not in b.current_url)


def status_of(url: str, token: str | None = None, method: str = "GET", data: bytes | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=data)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def table_rows(browser, table_id: str) -> list[list[str]]:
    """The table's body cells, read in one script: the Live page swaps its panel every
    second, and a row found before a swap is gone after it."""
    return browser.execute_script(
        "const t = document.getElementById(arguments[0]);"
        "return Array.from(t.rows).slice(1).map(r => Array.from(r.cells).map(c => c.innerText.trim()));", table_id)


def text_of(browser, element_id: str) -> str:
    return browser.execute_script("return document.getElementById(arguments[0]).innerText.trim();", element_id)


def products(stack: Stack, event_ms: int) -> None:
    send_updates(stack.settings, [
        {"entity": "product", "keys": {"product_id": stack.id(f"p{i}")}, "group": "product_core", "producer_id": "test",
         "values": {"price": 10.0 * i, "brand": "acme", "category_id": f"c{i % 2}"}, "event_time_ms": event_ms}
        for i in range(1, 4)])


def test_every_page_shows_what_the_cli_shows(stack, browser, screenshot, tmp_path):
    t = int(time.time() * 1000) - 5000
    products(stack, t)
    send_updates(stack.settings, [update(stack.id(f"u{i}"), i, t) for i in range(5)]
                 + [{**update(stack.id("g1"), 1, t), "group": "flash_sale"}])  # dead-lettered: unknown_group
    send_raw(stack.settings, [b"\x00not avro"])  # dead-lettered: undecodable
    ingest_until_caught_up(stack.settings)
    send_updates(stack.settings, [update(stack.id(f"late{i}"), i, t) for i in range(7)])  # 7 events of lag
    _publish_a_second_revision(stack, tmp_path)
    sign_in(browser, stack, OPERATOR)

    browser.get(f"{stack.url}/registry")
    registry = read_published(wiring.config_store(stack.settings))
    for name in registry.groups:
        assert browser.find_element(By.ID, f"group-{name}").is_displayed()
    assert browser.find_element(By.ID, "counts").text.startswith(
        f"{len(registry.entities)} entities, {len(registry.groups)} feature groups, {len(registry.models)} models")
    models = {row[0]: row[5] for row in table_rows(browser, "model-list")}
    assert models["home_ranker"].startswith("models.yaml:")
    screenshot(f"registry-{_kind(stack)}")

    browser.get(f"{stack.url}/registry/diff?from=1&to=2")
    cli = json.loads(vahini(stack, "registry", "diff", "1", "--json").stdout)
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#changes .change")] == cli["changes"]
    assert cli["changes"], "the second revision adds a group"
    assert browser.find_element(By.CSS_SELECTOR, "#changes .where").text == "gifts.yaml:2 (revision 2)"
    screenshot(f"registry-diff-{_kind(stack)}")

    browser.get(f"{stack.url}/models/home_ranker")
    graph = registry.models["home_ranker"]
    kinds = [n.get_attribute("data-kind") for n in browser.find_elements(By.CSS_SELECTOR, "#dag g.node")]
    assert kinds.count("lookup") == len(graph.lookups) and kinds.count("column") == len(graph.columns)
    assert kinds.count("context") == len(graph.context) and kinds.count("sequence") == len(graph.sequences)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#dag path.edge")) >= len(graph.columns)
    screenshot(f"model-{_kind(stack)}")

    browser.get(f"{stack.url}/try?model=home_ranker")
    user, rows = stack.id("u1"), ",".join(stack.id(p) for p in ("p1", "p2", "p404"))
    browser.find_element(By.ID, "home_ranker-user_id").send_keys(user)
    browser.find_element(By.ID, "home_ranker-product_ids").send_keys(rows)
    browser.find_element(By.CSS_SELECTOR, "#form-home_ranker button").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#result-model table.matrix")))
    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#result-model table.matrix th")]
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in browser.find_elements(By.CSS_SELECTOR, "#result-model table.matrix tr")[1:]]
    query = vahini(stack, "query", "home_ranker", "--set", f"user_id={user}", "--set", f"product_ids={rows}",
                   "--json", "--target", stack.target, "--token-file", str(_token_file(tmp_path, OPERATOR)))
    assert query.returncode == 0, query.stderr
    cli = json.loads(query.stdout)
    assert header[1:] == cli["columns"] and [row[0] for row in cells] == cli["row_ids"]
    for shown, expected in zip(cells, cli["matrix"]):
        assert [float(v) for v in shown[1:]] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    defaulted = {th.text for th in browser.find_elements(By.CSS_SELECTOR, "#result-model th.defaulted")}
    assert defaulted == {c for c, n in cli["missing"].items() if n}  # p404 was never written
    assert "ms" in browser.find_element(By.CSS_SELECTOR, "#result-model .latency").text
    screenshot(f"try-{_kind(stack)}")

    keys = f"{stack.id('p1')},{stack.id('p404')}"
    browser.find_element(By.ID, "retrieve-keys").send_keys(keys)
    browser.find_element(By.ID, "retrieve-groups").send_keys("product_core")
    Select(browser.find_element(By.CSS_SELECTOR, "#form-retrieve select")).select_by_visible_text("product")
    browser.find_element(By.CSS_SELECTOR, "#form-retrieve button").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#result-retrieve table.matrix")))
    got = json.loads(vahini(stack, "get", "--entity", "product", "--keys", keys, "--groups", "product_core",
                            "--json").stdout)
    rows = [[td for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#result-retrieve table.matrix tr")[1:]]
    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#result-retrieve table.matrix th")]
    for row in rows:
        key, features = row[0].text, got[row[0].text]["product_core"]["features"]
        for name, cell in zip(header[1:], row[1:]):
            feature = features[name.split(".", 1)[1]]
            assert ("defaulted" in (cell.get_attribute("class") or "")) == (feature["status"] != "present")
            if not isinstance(feature["value"], list):
                value = re.sub(r"\s*\((missing|expired|unreadable)\)$", "", cell.text)
                assert value == _as_shown(feature["value"]), (key, name)
    browser.find_element(By.ID, "history-user").send_keys(user)
    browser.find_element(By.CSS_SELECTOR, "#form-history button").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#result-history .call-notes")))
    assert "newest first" in browser.find_element(By.CSS_SELECTOR, "#result-history .call-notes").text

    browser.get(f"{stack.url}/live")
    lag = json.loads(vahini(stack, "lag", "--json").stdout)
    shown = table_rows(browser, "lag")
    # A partition the first events missed has no commit: its lag shows as "–", as the CLI's null.
    assert [(r[2], int(r[3]), int(r[4]), r[6]) for r in shown] == \
        [(p["topic"], p["partition"], p["end"], "–" if p["lag"] is None else str(p["lag"])) for p in lag]
    assert int(text_of(browser, "total-lag")) == sum(p["lag"] or 0 for p in lag)
    assert sum(p["end"] - (p["committed"] or 0) for p in lag) == 7  # the late events, wherever they went
    freshness = {r[0]: float(r[1].split()[0]) for r in table_rows(browser, "freshness")}
    newest = _newest_event_s(stack, "user_activity")  # what the worker exports: this test's events, or newer
    assert newest >= t / 1000 and abs(freshness["user_activity"] - (time.time() - newest)) < 5.0
    WebDriverWait(browser, 10).until(lambda b: text_of(b, "ingest-rate") != "…")  # the refresh
    screenshot(f"live-{_kind(stack)}")

    browser.get(f"{stack.url}/dead-letters")
    cli = json.loads(vahini(stack, "dead-letters", "--json").stdout)
    assert browser.find_element(By.ID, "dead-total").text == f"{cli['total']} in all"
    rows = table_rows(browser, "dead-letters")
    assert sorted(r[1] for r in rows) == sorted(e["reason"] for e in cli["latest"]) == ["undecodable",
                                                                                         "unknown_group"]
    decoded = {r[1]: r[5] for r in rows}
    assert '"group": "flash_sale"' in decoded["unknown_group"] and "not decodable" in decoded["undecodable"]
    browser.get(f"{stack.url}/dead-letters?reason=unknown_group")
    assert [r[1] for r in table_rows(browser, "dead-letters")] == ["unknown_group"]
    send_updates(stack.settings, [{**update(stack.id("g2"), 1, t), "group": "flash_sale_2"}])  # read by the next view alone
    ingest_until_caught_up(stack.settings)
    browser.get(f"{stack.url}/dead-letters?reason=unknown_group")
    assert browser.find_element(By.ID, "dead-total").text == f"{cli['total'] + 1} in all"
    assert [r[4] for r in table_rows(browser, "dead-letters")] == [f"user:{stack.id('g2')}", f"user:{stack.id('g1')}"]  # newest first
    screenshot(f"dead-letters-{_kind(stack)}")


def test_a_redrive_asks_first_needs_operate_and_writes_what_is_valid_now(stack, browser, tmp_path):
    t = int(time.time() * 1000) - 1000
    gift = {"entity": "user", "keys": {"user_id": stack.id("g1")}, "group": "user_gifts", "values": {"gifts": 2},
            "event_time_ms": t, "producer_id": "test"}
    send_updates(stack.settings, [gift])
    ingest_until_caught_up(stack.settings)
    _publish_a_second_revision(stack, tmp_path)  # user_gifts exists now
    log = wiring.event_log(stack.settings)
    dead_end = log.end_offsets(stack.settings.topics.dead_letter)

    sign_in(browser, stack, VIEWER)
    browser.get(f"{stack.url}/dead-letters")
    assert not browser.find_elements(By.ID, "redrive-button")
    assert status_of(f"{stack.url}/dead-letters/redrive", VIEWER, "POST", b"confirm=yes") == 403

    sign_in(browser, stack, OPERATOR)
    browser.get(f"{stack.url}/dead-letters")
    browser.find_element(By.ID, "redrive-button").click()
    WebDriverWait(browser, 5).until(expected_conditions.alert_is_present()).dismiss()
    time.sleep(1)
    assert not browser.find_elements(By.ID, "redrive-summary") and _gifts(stack) is None
    browser.find_element(By.ID, "redrive-button").click()
    WebDriverWait(browser, 5).until(expected_conditions.alert_is_present()).accept()
    summary = WebDriverWait(browser, 60).until(expected_conditions.presence_of_element_located(
        (By.ID, "redrive-summary"))).text
    assert summary.startswith("Re-drive done: 1 events read, 1 rows written, 0 dead-lettered again, 0 still invalid")
    assert _gifts(stack) == 2
    assert log.end_offsets(stack.settings.topics.dead_letter) == dead_end  # nothing dead-lettered twice
    log.close()


def test_no_token_gets_401_and_a_token_without_the_right_gets_403(stack, browser):
    for page in PAGES:
        assert status_of(f"{stack.url}{page}") == 401, page
        assert status_of(f"{stack.url}{page}", "not-a-token") == 401, page
        assert status_of(f"{stack.url}{page}", RANKER) == 403, page
        assert status_of(f"{stack.url}{page}", VIEWER) == 200, page
    assert status_of(f"{stack.url}/dead-letters/redrive", None, "POST", b"confirm=yes") == 401
    assert status_of(f"{stack.url}/try/model", RANKER, "POST", b"model=home_ranker") == 403
    browser.delete_all_cookies()
    browser.get(f"{stack.url}/models")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"  # the 401 page asks for a token
    sign_in(browser, stack, RANKER)
    assert browser.find_element(By.ID, "message").text == "caller 'ranker' lacks Console.Read"


def _publish_a_second_revision(stack: Stack, tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, registry_dir)
    (registry_dir / "gifts.yaml").write_text("feature_groups:\n  - name: user_gifts\n    entity: user\n"
                                             "    version: 1\n    features: [{name: gifts, type: int32}]\n")
    store = wiring.config_store(stack.settings)
    publish.apply(registry_dir, store)
    store.close()
    deadline = time.monotonic() + 10
    while "user_gifts" not in stack.console.sources.registry().groups and time.monotonic() < deadline:
        time.sleep(0.05)  # the console follows publishes


def _gifts(stack: Stack) -> int | None:
    """The test's user g1's gifts as `vahini get` prints them, or None while never written."""
    got = vahini(stack, "get", "--entity", "user", "--keys", stack.id("g1"), "--groups", "user_gifts", "--json")
    assert got.returncode == 0, got.stderr
    feature = json.loads(got.stdout)[stack.id("g1")]["user_gifts"]["features"]["gifts"]
    return feature["value"] if feature["status"] == "present" else None


def _token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "token"
    path.write_text(token)
    return path


def _newest_event_s(stack: Stack, group: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(stack.settings.console.metrics_endpoints[0], timeout=10) as reply:
        text = reply.read().decode()
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "vahini_group_newest_event_timestamp_seconds" and s.labels["group"] == group)


def _as_shown(value) -> str:
    """A scalar of `vahini get --json` as the console shows it."""
    if isinstance(value, (bool, str)):
        return json.dumps(value) if isinstance(value, bool) else value
    return f"{float(value):.6g}"


def _kind(stack: Stack) -> str:
    return "embedded" if stack.settings.event_log.startswith("sqlite") else "real"


def test_the_console_speaks_tls_like_the_grpc_port_and_calls_the_server_over_tls(request, tmp_path, unique):
    import ssl

    from tests.certs import make_ca, make_cert

    ca = make_ca(tmp_path / "pki", "vahini-test-ca")
    server_pair = make_cert(ca, tmp_path / "pki", "server")
    tokens = tmp_path / "callers.yaml"
    tokens.write_text(CALLERS)
    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique))
    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={
        "tls": settings.serving.tls.model_copy(update={"cert_file": server_pair.cert, "key_file": server_pair.key}),
        "auth": settings.serving.auth.model_copy(update={"tokens_file": tokens})})})
    server = start_server(settings, port=0)
    settings = settings.model_copy(update={"console": settings.console.model_copy(update={
        "target": f"127.0.0.1:{server.port}", "target_ca_file": ca.cert})})
    console = start_console(settings, port=0)
    try:
        assert console.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(ca.cert))
        request_ = urllib.request.Request(f"{console.url}/try/model", method="POST",
                                          data=b"model=home_ranker&context.user_id=u1&context.product_ids=p1,p2",
                                          headers={"Authorization": f"Bearer {OPERATOR}"})
        with urllib.request.urlopen(request_, timeout=30, context=context) as reply:
            page = reply.read().decode()
        assert reply.status == 200 and "home_ranker v1, 2 rows x 53 columns" in page
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to the TLS port: no page
            urllib.request.urlopen(console.url.replace("https://", "http://") + "/registry", timeout=10)
    finally:
        console.stop()
        server.stop(0)
