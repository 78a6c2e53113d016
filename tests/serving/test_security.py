"""The serving port with security on: TLS (and mutual TLS) with certificates the
test makes, bearer tokens per caller with rights per method, group and model, a
tokens file that reloads without a restart, and certificates that rotate."""

from __future__ import annotations

import shutil
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini_client import NO_RETRIES, VahiniClient
from vahini.serving.server import start_server
from vahini.serving.tls import channel_credentials
from tests.certs import make_ca, make_cert
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.processes_helpers import wait_for
from vahini.errors import BadSettings

RANKER, WRITER, ADMIN = "ranker-secret-token-1", "writer-secret-token-2", "admin-secret-token-3"


def sha(token: str) -> str:
    import hashlib
    return hashlib.sha256(token.encode()).hexdigest()


def callers_yaml(*extra: str) -> str:
    return "\n".join([
        "callers:",
        "  - name: ranker-home",
        f"    token_sha256: {sha(RANKER)}",
        "    allow: [FeatureService.Retrieve, ModelProxy.GetFeatures]",
        "    groups: [user_profile]",
        "    models: [home_ranker]",
        "  - name: writer",
        f"    token_sha256: {sha(WRITER)}",
        "    allow: [FeatureService.Persist]",
        *extra, ""])


@pytest.fixture
def pki(tmp_path):
    ca = make_ca(tmp_path / "pki", "vahini-test-ca")
    return {"ca": ca, "server": make_cert(ca, tmp_path / "pki", "server"),
            "client": make_cert(ca, tmp_path / "pki", "client", client=True), "dir": tmp_path / "pki"}


def secured(settings, tmp_path, pki, **tls_extra):
    tokens = tmp_path / "callers.yaml"
    tokens.write_text(callers_yaml())
    serving = settings.serving.model_copy(update={
        "tls": settings.serving.tls.model_copy(update={"cert_file": pki["server"].cert, "key_file": pki["server"].key,
                                                       **tls_extra}),
        "auth": settings.serving.auth.model_copy(update={"tokens_file": tokens, "reload_interval_s": 0.1})})
    return settings.model_copy(update={"serving": serving}), tokens


def retrieve(group: str) -> pb.RetrieveRequest:
    return pb.RetrieveRequest(entity="user", keys=["u1"], groups=[pb.GroupSelector(group=group)])


def calls(caller: str, method: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("vahini_grpc_calls_by_caller_total",
                                     {"caller": caller, "method": method, "outcome": outcome}) or 0.0


@pytest.mark.parametrize("stack", STACKS)
def test_tokens_decide_who_may_call_what_over_tls(stack, request, tmp_path, unique, pki):
    settings, _ = secured(with_sample_registry(stack_settings(stack, request, tmp_path, unique)), tmp_path, pki)
    running = start_server(settings, port=0)
    target = f"127.0.0.1:{running.port}"

    def stub(token: str | None):
        return pb_grpc.FeatureServiceStub(grpc.secure_channel(target, channel_credentials(pki["ca"].cert,
                                                                                          token=token)))
    try:
        before = calls("ranker-home", "FeatureService.Retrieve", "allowed")
        assert stub(RANKER).Retrieve(retrieve("user_profile"), timeout=10).groups[0].group == "user_profile"
        assert calls("ranker-home", "FeatureService.Retrieve", "allowed") == before + 1  # counted per caller
        for token in (None, "not-a-known-token"):
            with pytest.raises(grpc.RpcError) as info:
                stub(token).Retrieve(retrieve("user_profile"), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        denied = [(stub(RANKER).Persist, pb.PersistRequest(), "may not call FeatureService.Persist"),
                  (stub(RANKER).Retrieve, retrieve("product_core"), "may not read or write groups ['product_core']"),
                  (stub(WRITER).Retrieve, retrieve("user_profile"), "caller 'writer' may not call")]
        for call, message, detail in denied:
            with pytest.raises(grpc.RpcError) as info:
                call(message, timeout=10)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and detail in info.value.details()

        with VahiniClient(target, timeout_s=10, token=RANKER, ca_file=str(pki["ca"].cert)) as client:
            assert client.get_features("home_ranker", user_id="u1", product_ids=["p1"]).matrix.shape[0] == 1
            with pytest.raises(grpc.RpcError) as info:
                client.get_features("home_ranker_scored", user_id="u1", product_ids=["p1"])
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "home_ranker_scored" in \
                info.value.details()
        health = health_pb2_grpc.HealthStub(grpc.secure_channel(target, channel_credentials(pki["ca"].cert)))
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING  # health checks need no token
    finally:
        running.stop(0)


def test_reflection_needs_a_token_unless_settings_open_it(request, tmp_path, unique, pki):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    settings, tokens = secured(with_sample_registry(stack_settings("embedded", request, tmp_path, unique)),
                               tmp_path, pki)
    tokens.write_text(callers_yaml("  - name: ops", f"    token_sha256: {sha(ADMIN)}",
                                   "    allow: [ServerReflection.ServerReflectionInfo]"))

    def services(token: str | None, port: int) -> list[str]:
        channel = grpc.secure_channel(f"127.0.0.1:{port}", channel_credentials(pki["ca"].cert, token=token))
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        return [s.name for reply in replies for s in reply.list_services_response.service]

    running = start_server(settings, port=0)
    try:
        with pytest.raises(grpc.RpcError) as info:
            services(None, running.port)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "vahini.v1.ModelProxy" in services(ADMIN, running.port)
    finally:
        running.stop(0)
    auth = settings.serving.auth.model_copy(update={"open_reflection": True})
    running = start_server(settings.model_copy(update={"serving": settings.serving.model_copy(update={"auth": auth})}),
                           port=0)
    try:
        assert "vahini.v1.FeatureService" in services(None, running.port)
    finally:
        running.stop(0)


def test_the_tokens_file_reloads_and_a_broken_edit_keeps_the_last_good_one(request, tmp_path, unique, pki, capsys):
    settings, tokens = secured(with_sample_registry(stack_settings("embedded", request, tmp_path, unique)),
                               tmp_path, pki)
    running = start_server(settings, port=0)
    channel = lambda token: grpc.secure_channel(  # noqa: E731
        f"127.0.0.1:{running.port}", channel_credentials(pki["ca"].cert, token=token))

    def code_of(token: str) -> grpc.StatusCode:
        try:
            pb_grpc.FeatureServiceStub(channel(token)).Retrieve(retrieve("user_profile"), timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()
    try:
        assert code_of(ADMIN) == grpc.StatusCode.UNAUTHENTICATED
        tokens.write_text(callers_yaml("  - name: admin", f"    token_sha256: {sha(ADMIN)}", "    allow: ['*']"))
        wait_for(lambda: code_of(ADMIN) == grpc.StatusCode.OK, 10, "the new caller to be accepted")
        tokens.write_text(callers_yaml("  - name: admin", "    token_sha256: not-a-hash", "    allow: ['*']"))
        time.sleep(0.5)  # several reload intervals: the broken version was read and rejected
        assert code_of(ADMIN) == grpc.StatusCode.OK and code_of(RANKER) == grpc.StatusCode.OK
        said = capsys.readouterr()
        assert "callers_reload_rejected" in said.out + said.err  # logs: stdout, or stderr as JSON
        tokens.write_text(callers_yaml())  # admin revoked
        wait_for(lambda: code_of(ADMIN) == grpc.StatusCode.UNAUTHENTICATED, 10, "the revoked token to be refused")
    finally:
        running.stop(0)


def test_a_tokens_file_with_a_mistake_is_refused_at_start_with_file_and_line(request, tmp_path, unique, pki):
    settings, tokens = secured(stack_settings("embedded", request, tmp_path, unique), tmp_path, pki)
    tokens.write_text("callers:\n  - name: a\n    token_sha256: abc\n    allow: [FeatureService.Retrieve]\n")
    with pytest.raises(BadSettings, match=r"callers.yaml:3: caller 'a': token_sha256 must be 64 hex digits"):
        start_server(settings, port=0)
    tokens.write_text(f"callers:\n  - name: a\n    token_sha256: {sha('x')}\n    allow: [FeatureService.Delete]\n")
    with pytest.raises(BadSettings, match=r"callers.yaml:4: caller 'a': unknown method\(s\) \['FeatureService.Delete'\]"):
        start_server(settings, port=0)


def test_mutual_tls_plaintext_untrusted_and_expired_certificates_fail_fast_and_say_why(request, tmp_path, unique,
                                                                                       pki):
    settings, _ = secured(with_sample_registry(stack_settings("embedded", request, tmp_path, unique)), tmp_path, pki,
                          client_ca_file=pki["ca"].cert)
    running = start_server(settings, port=0)
    target = f"127.0.0.1:{running.port}"

    def attempt(credentials) -> grpc.RpcError | None:
        channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        try:
            pb_grpc.FeatureServiceStub(channel).Retrieve(retrieve("user_profile"), timeout=20,
                                                         metadata=[("authorization", f"Bearer {RANKER}")])
            return None
        except grpc.RpcError as exc:
            return exc
        finally:
            channel.close()
    try:
        with_client_cert = channel_credentials(pki["ca"].cert, pki["client"].cert, pki["client"].key)
        assert attempt(with_client_cert) is None
        other_ca = make_ca(tmp_path / "other", "other-ca")
        for credentials in (None, channel_credentials(pki["ca"].cert), channel_credentials(other_ca.cert)):
            error = attempt(credentials)
            # UNAVAILABLE, not DEADLINE_EXCEEDED at the 20 s deadline: a refused handshake is not a slow server
            assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE, error
        error = attempt(channel_credentials(other_ca.cert, pki["client"].cert, pki["client"].key))
        assert "CERTIFICATE_VERIFY_FAILED" in error.details(), error.details()  # the server is not trusted
    finally:
        running.stop(0)

    expired = make_cert(pki["ca"], tmp_path / "expired", "server", days=-1)
    settings, _ = secured(with_sample_registry(stack_settings("embedded", request, tmp_path, unique)), tmp_path,
                          {**pki, "server": expired})
    running = start_server(settings, port=0)
    target = f"127.0.0.1:{running.port}"
    try:
        error = attempt(channel_credentials(pki["ca"].cert))
        assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
        assert "certificate has expired" in error.details(), error.details()  # names the problem
    finally:
        running.stop(0)


def test_certificates_rotate_without_a_restart(request, tmp_path, unique, pki):
    settings, _ = secured(with_sample_registry(stack_settings("embedded", request, tmp_path, unique)), tmp_path, pki)
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(pki["server"].cert, live / "server.pem")
    shutil.copy(pki["server"].key, live / "server.key")
    tls = settings.serving.tls.model_copy(update={"cert_file": live / "server.pem", "key_file": live / "server.key"})
    running = start_server(settings.model_copy(update={"serving": settings.serving.model_copy(update={"tls": tls})}),
                           port=0)
    target = f"127.0.0.1:{running.port}"

    def works(ca) -> bool:
        with VahiniClient(target, timeout_s=10, retry=NO_RETRIES, token=RANKER, ca_file=str(ca)) as client:
            try:
                return client.get_features("home_ranker", user_id="u1", product_ids=["p1"]).matrix.shape == (1, 53)
            except grpc.RpcError:
                return False
    try:
        assert works(pki["ca"].cert)
        new_ca = make_ca(tmp_path / "rotated", "new-ca")
        new = make_cert(new_ca, tmp_path / "rotated", "server")
        shutil.copy(new.key, live / "server.key.tmp")
        shutil.copy(new.cert, live / "server.pem.tmp")
        (live / "server.key.tmp").rename(live / "server.key")
        (live / "server.pem.tmp").rename(live / "server.pem")
        wait_for(lambda: works(new_ca.cert), 10, "new connections to get the new certificate")
        assert not works(pki["ca"].cert)  # the old CA no longer verifies the server
    finally:
        running.stop(0)


def test_vahini_query_get_and_history_send_a_token_from_a_file_over_tls(request, tmp_path, unique, pki):
    import json
    import subprocess
    import sys

    from tests.streams.processes import settings_env

    settings, tokens = secured(with_sample_registry(stack_settings("embedded", request, tmp_path, unique)),
                               tmp_path, pki)
    tokens.write_text(callers_yaml("  - name: ops", f"    token_sha256: {sha(ADMIN)}",
                                   "    allow: [FeatureService.Retrieve, InteractionService.GetInteractions]"))
    running = start_server(settings, port=0)
    token_file = tmp_path / "token"
    token_file.write_text(RANKER + "\n")
    ops_token = tmp_path / "ops-token"
    ops_token.write_text(ADMIN)

    def query(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vahini.cli", "query", "home_ranker", "--set", "user_id=u1",
                               "--set", "product_ids=p1", "--target", f"127.0.0.1:{running.port}", "--json", *args],
                              env=settings_env(settings), capture_output=True, text=True, timeout=60)
    try:
        ok = query("--token-file", str(token_file), "--ca-file", str(pki["ca"].cert))
        assert ok.returncode == 0, ok.stderr
        refused = query("--ca-file", str(pki["ca"].cert))
        assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr and "--token-file" in refused.stderr
        plaintext = query("--token-file", str(token_file))  # a plaintext client against the TLS port
        assert plaintext.returncode == 3 and "UNAVAILABLE" in plaintext.stderr
        assert "if the server uses TLS, give --ca-file" in plaintext.stderr
        assert RANKER not in ok.stdout + ok.stderr + refused.stdout + refused.stderr
        remote = ["--target", f"127.0.0.1:{running.port}", "--token-file", str(ops_token), "--ca-file",
                  str(pki["ca"].cert)]
        got = subprocess.run([sys.executable, "-m", "vahini.cli", "get", "--entity", "user", "--keys", "u1",
                              "--groups", "user_profile", "--json", *remote], env=settings_env(settings),
                             capture_output=True,
                             text=True, timeout=60)
        assert got.returncode == 0, got.stderr
        profile = json.loads(got.stdout)["u1"]["user_profile"]
        assert profile["features"]["is_premium"] == {"value": False, "status": "missing"}
        history = subprocess.run([sys.executable, "-m", "vahini.cli", "history", "u1", "--json", *remote],
                                 env=settings_env(settings), capture_output=True, text=True, timeout=60)
        assert history.returncode == 0 and json.loads(history.stdout)["interactions"] == [], history.stderr
        denied = subprocess.run([sys.executable, "-m", "vahini.cli", "history", "u1", "--target",
                                 f"127.0.0.1:{running.port}", "--token-file", str(token_file), "--ca-file",
                                 str(pki["ca"].cert)], env=settings_env(settings), capture_output=True, text=True,
                                timeout=60)
        assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
        assert "may not call InteractionService.GetInteractions" in denied.stderr
    finally:
        running.stop(0)


def test_the_client_sdk_calls_over_tls_with_a_token_and_gets_precise_refusals(request, tmp_path, unique, pki):
    """vahini-client (clients/python) against the secured port: its token from a file,
    the CA's certificate, and each of the three services."""
    import vahini_client

    settings, tokens = secured(with_sample_registry(stack_settings("embedded", request, tmp_path, unique)),
                               tmp_path, pki)
    tokens.write_text(callers_yaml("  - name: ops", f"    token_sha256: {sha(ADMIN)}",
                                   "    allow: [FeatureService.Retrieve, InteractionService.GetInteractions]"))
    running = start_server(settings, port=0)
    target, ca = f"127.0.0.1:{running.port}", pki["ca"].cert
    token_file = tmp_path / "ranker-token"
    token_file.write_text(RANKER + "\n")
    try:
        with vahini_client.VahiniClient(target, token_file=token_file, ca_file=ca, timeout_s=10) as ranker:
            got = ranker.get_features("home_ranker", user_id="u1", product_ids=["p1", "p2"])
            assert got.row_ids == ["p1", "p2"] and got.matrix.shape == (2, len(got.columns))
            assert ranker.retrieve("user", ["u1"], ["user_profile"]).groups["user_profile"].status_names(
                "city") == ["missing"]
            with pytest.raises(grpc.RpcError) as denied:
                ranker.history("u1")
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with vahini_client.VahiniClient(target, token=ADMIN, ca_file=ca, timeout_s=10) as ops:
            assert ops.history("u1").interactions == []
        with vahini_client.VahiniClient(target, ca_file=ca, timeout_s=10) as anonymous:
            with pytest.raises(grpc.RpcError) as refused:
                anonymous.retrieve("user", ["u1"], ["user_profile"])
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        running.stop(0)
