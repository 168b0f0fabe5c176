"""`ratline logs`: which file a name means, following a file that grows or is replaced,
and the messages when there is nothing to show (no mesh needs to run: the files stay)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from ratline.cli.logs_command import follow, logs, resolve_instance, tail_bytes
from ratline.runtime.local.runfile import write_run_file
from ratline.settings import instance_log, logs_dir

ENTRIES = [
    {"name": "reviews-v2-0", "namespace": "default", "workload": "reviews-v2"},
    {"name": "reviews-v2-1", "namespace": "default", "workload": "reviews-v2"},
    {"name": "reviews-v2-0", "namespace": "other", "workload": "reviews-v2"},
    {"name": "istio-ingressgateway-0", "namespace": "istio-system"},
]


def test_names_resolve_to_instances() -> None:
    assert resolve_instance("reviews-v2-1", ENTRIES, []) == "reviews-v2-1"
    assert resolve_instance("reviews-v2", ENTRIES, []) == "reviews-v2-0"
    assert resolve_instance("reviews-v2.other", ENTRIES, []) == "reviews-v2-0"
    assert resolve_instance("istio-ingressgateway", ENTRIES, []) == "istio-ingressgateway-0"
    # No mesh running: the log files tell.
    files = ["ratings-v1-10.log", "ratings-v1-2.log", "ratings-v1-2.envoy.log"]
    assert resolve_instance("ratings-v1", [], files) == "ratings-v1-2"
    try:
        resolve_instance("nope", ENTRIES, files)
    except LookupError as exc:
        assert "reviews-v2-1" in str(exc) and "ratings-v1-2" in str(exc)
    else:
        raise AssertionError("no LookupError")


def test_tail() -> None:
    assert tail_bytes(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert tail_bytes(b"a\nb", -1) == b"a\nb" and tail_bytes(b"a\n", 0) == b""


def test_follow_reads_appends_and_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"old\n")
    got: list[bytes] = []

    def writer() -> None:
        time.sleep(0.3)
        with open(path, "ab") as f:
            f.write(b"appended\n")
        time.sleep(0.5)
        replacement = tmp_path / "new.log"
        replacement.write_bytes(b"restarted\n")
        os.replace(replacement, path)

    thread = threading.Thread(target=writer)
    thread.start()
    for chunk in follow(path, len(b"old\n"), stop_after_s=3.0):
        got.append(chunk)
        if b"restarted" in b"".join(got):
            break
    thread.join()
    assert b"".join(got) == b"appended\nrestarted\n"


def test_logs_after_the_mesh_stopped_and_the_access_log_hint(tmp_path: Path) -> None:
    instance_log(tmp_path, "hello-v1-0", "app").parent.mkdir(parents=True)
    instance_log(tmp_path, "hello-v1-0", "app").write_text("one\ntwo\n")
    instance_log(tmp_path, "hello-v1-0", "envoy").write_text("envoy says\n")
    run = CliRunner()
    result = run.invoke(logs, ["hello-v1", "--tail", "1", "--mesh", str(tmp_path)])
    assert result.exit_code == 0 and result.output == "two\n"
    result = run.invoke(logs, ["hello-v1-0", "--sidecar", "--mesh", str(tmp_path)])
    assert result.output == "envoy says\n"
    result = run.invoke(logs, ["hello-v1-0", "--access", "--mesh", str(tmp_path)])
    assert result.exit_code == 1
    assert "no access log for hello-v1-0" in result.output
    assert "accessLogFile" in result.output and "meshConfig.accessLogFile" in result.output
    (logs_dir(tmp_path) / "runner.log").write_text("runner line\n")
    assert run.invoke(logs, ["runner", "--mesh", str(tmp_path)]).output == "runner line\n"
    write_run_file(tmp_path, {"instances": [
        {"name": "job-0", "namespace": "default", "workload": "job", "error": "boom"}]})
    result = run.invoke(logs, ["job", "--mesh", str(tmp_path)])
    assert result.exit_code == 1 and "job-0: it did not start: boom" in result.output


def test_the_same_instance_name_in_two_namespaces_has_two_logs(tmp_path: Path) -> None:
    assert instance_log(tmp_path, "web-0", "app") != instance_log(tmp_path, "web-0", "app", "shop")
    for namespace, text in (("default", "default web\n"), ("shop", "shop web\n")):
        path = instance_log(tmp_path, "web-0", "app", namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    run = CliRunner()
    # After the mesh stopped: the files alone say where each is.
    assert run.invoke(logs, ["web-0.shop", "--mesh", str(tmp_path)]).output == "shop web\n"
    assert run.invoke(logs, ["web-0", "--mesh", str(tmp_path)]).output == "default web\n"
    # While it runs: run.json's namespaces.
    write_run_file(tmp_path, {"instances": [
        {"name": "web-0", "namespace": "shop", "workload": "web"},
        {"name": "web-0", "namespace": "default", "workload": "web"}]})
    assert run.invoke(logs, ["web.shop", "--mesh", str(tmp_path)]).output == "shop web\n"
    assert run.invoke(logs, ["web-0.default", "--mesh", str(tmp_path)]).output == "default web\n"
    assert run.invoke(logs, ["web-0", "--mesh", str(tmp_path)]).output == "default web\n"
