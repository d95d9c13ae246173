"""The workbench's routes through Starlette's test client: every page and API route, and the
security rules (Host, CSRF token, Origin, paths, body size, conflicting edits)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from analysis.core.config import REPO_ROOT
from analysis.toys.definitions import load_entries
from analysis.workbench.app import Settings, create_app
from analysis.workbench.security import allowed_hosts, contained, host_ok

TOKEN = "test-token"
BASE = "http://127.0.0.1:8765"
HEADERS = {"X-CSRF-Token": TOKEN}


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """A copy of the configs, an empty sessions root and an empty results root."""
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("default.yaml", "signals.yaml", "backgrounds.yaml", "wavelets.yaml"):
        shutil.copy(REPO_ROOT / "configs" / name, configs / name)
    return {"configs": configs, "sessions": tmp_path / "sessions", "results": tmp_path / "results"}


@pytest.fixture
def client(roots: dict[str, Path]):
    settings = Settings(config=roots["configs"] / "default.yaml", sessions=roots["sessions"], results=roots["results"])
    with TestClient(create_app(settings, token=TOKEN), base_url=BASE) as test_client:
        yield test_client


def _version(client: TestClient, kind: str = "signals") -> str:
    return client.get(f"/api/definitions/{kind}").json()["version"]


# -- pages ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "/definitions/signals", "/definitions/backgrounds", "/definitions/wavelets", "/definitions/signals/new",
    "/definitions/backgrounds/new?variant=dijet", "/definitions/signals/1", "/definitions/backgrounds/2",
    "/definitions/wavelets/0", "/plot", "/sessions", "/jobs", "/results", "/static/app.js", "/static/style.css",
])  # fmt: skip
def test_every_page_renders(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, response.text
    if url.endswith(".js") or url.endswith(".css"):
        return
    assert f'<meta name="csrf-token" content="{TOKEN}">' in response.text
    assert not any(f'{attr}="{scheme}' for attr in ("src", "href") for scheme in ("http", "//")
                   if f'{attr}="{scheme}' in response.text)  # every asset is local: no CDN


def test_index_redirects_to_the_plot_view(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/plot"


def test_pages_are_local_only_and_escaped(client: TestClient, roots: dict[str, Path]) -> None:
    for url in ("/plot", "/definitions/signals", "/jobs", "/sessions", "/results"):
        text = client.get(url).text
        assert "cdn" not in text.lower() and "<script src=\"/static/app.js\"" in text
    version = _version(client)
    response = client.post("/api/definitions/signals", headers=HEADERS, json={
        "version": version, "values": {"name": "<script>alert(1)</script>", "center": "256", "height": "10", "width": "5"}})  # fmt: skip
    assert response.status_code == 201
    text = client.get("/definitions/signals").text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text


def test_unknown_kind_and_entry_are_404(client: TestClient) -> None:
    assert client.get("/definitions/nothing").status_code == 404
    assert client.get("/definitions/signals/99").status_code == 404
    assert client.get("/api/definitions/nothing").status_code == 404


def test_the_form_has_the_models_fields(client: TestClient) -> None:
    text = client.get("/definitions/backgrounds/new?variant=dijet").text
    for field in ("p0", "p1", "p2", "p3", "sqrt_s", "binning.low", "binning.bins"):
        assert f'name="{field}"' in text
    assert 'name="amplitude"' not in text
    assert client.get("/definitions/backgrounds/new?variant=bogus").status_code == 400


# -- definitions ----------------------------------------------------------------------------------
def test_create_update_duplicate_delete_a_signal(client: TestClient, roots: dict[str, Path]) -> None:
    path = roots["configs"] / "signals.yaml"
    version = _version(client)
    response = client.post("/api/definitions/signals", headers=HEADERS, json={
        "version": version, "values": {"name": "train", "periods": "3", "center": "100*n + 50", "height": "40",
                                       "width": "2 + n", "decay_rate": ""}})  # fmt: skip
    assert response.status_code == 201, response.text
    new_id = response.json()["id"]
    assert new_id == 4
    entries = load_entries("signals", path)  # the CLI reads what the app wrote
    assert entries[-1].center == "100*n + 50" and entries[-1].periods == 3 and entries[-1].height == 40
    assert path.read_text().startswith("# Signal definitions")  # the comment block is kept

    version = response.json()["version"]
    response = client.put(f"/api/definitions/signals/{new_id}", headers=HEADERS, json={
        "version": version, "values": {"name": "train", "periods": "3", "center": "100*n + 60", "height": "40", "width": "3"}})  # fmt: skip
    assert response.status_code == 200, response.text
    assert load_entries("signals", path)[-1].center == "100*n + 60"

    response = client.post(f"/api/definitions/signals/{new_id}/duplicate", headers=HEADERS, json={"version": response.json()["version"]})
    assert response.status_code == 201
    copy = load_entries("signals", path)[-1]
    assert copy.id == 5 and copy.name == "copy of train" and copy.center == "100*n + 60"

    response = client.request("DELETE", f"/api/definitions/signals/{new_id}", headers=HEADERS, json={"version": response.json()["version"]})
    assert response.status_code == 200
    assert [e.id for e in load_entries("signals", path)] == [0, 1, 2, 3, 5]


def test_backgrounds_and_wavelets_are_edited_too(client: TestClient, roots: dict[str, Path]) -> None:
    response = client.post("/api/definitions/backgrounds", headers=HEADERS, json={
        "version": _version(client, "backgrounds"), "values": {"kind": "dijet", "name": "soft", "p0": "0.01", "p1": "9",
                                                               "p2": "4.5", "binning.low": "600", "binning.high": "1624", "binning.bins": "512"}})  # fmt: skip
    assert response.status_code == 201, response.text
    background = load_entries("backgrounds", roots["configs"] / "backgrounds.yaml")[-1]
    assert background.kind == "dijet" and background.binning.low == 600
    response = client.put("/api/definitions/wavelets/1", headers=HEADERS, json={
        "version": _version(client, "wavelets"), "values": {"bandwidth": "2", "center_frequency": "0.8"}})
    assert response.status_code == 200
    assert load_entries("wavelets", roots["configs"] / "wavelets.yaml")[1].pywt_name == "cmor2-0.8"


@pytest.mark.parametrize(("values", "field", "words"), [
    ({"center": "__import__('os').system('id')", "height": "1", "width": "1"}, "center", "unsafe or invalid expression"),
    ({"center": "n.__class__", "height": "1", "width": "1"}, "center", "unsafe or invalid expression"),
    ({"center": "100", "height": "1", "width": "n - 1", "periods": "2"}, "width", "not positive"),
    ({"center": "100", "height": "1", "width": "2", "periods": "0"}, "periods", "greater than or equal to 1"),
    ({"center": "100", "height": "1", "width": "2", "colour": "red"}, "colour", "unknown key"),
    ({"center": "100", "height": "1", "width": "2", "id": "0"}, "id", "duplicate"),
])  # fmt: skip
def test_an_invalid_field_is_named_and_nothing_is_written(client: TestClient, roots: dict[str, Path],
                                                          values: dict, field: str, words: str) -> None:  # fmt: skip
    path = roots["configs"] / "signals.yaml"
    before = path.read_bytes()
    response = client.post("/api/definitions/signals", headers=HEADERS, json={"version": _version(client), "values": values})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["error"]
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_conflicting_edit_is_refused_with_a_clear_message(client: TestClient, roots: dict[str, Path]) -> None:
    path = roots["configs"] / "signals.yaml"
    version = _version(client)  # two tabs load the same file
    first = client.put("/api/definitions/signals/0", headers=HEADERS, json={
        "version": version, "values": {"center": "200", "height": "150", "width": "8"}})
    assert first.status_code == 200
    second = client.put("/api/definitions/signals/0", headers=HEADERS, json={
        "version": version, "values": {"center": "300", "height": "150", "width": "8"}})
    assert second.status_code == 409
    assert "changed elsewhere" in second.json()["error"] and "reload" in second.json()["error"]
    assert load_entries("signals", path)[0].center == 200
    stale_delete = client.request("DELETE", "/api/definitions/signals/0", headers=HEADERS, json={"version": version})
    assert stale_delete.status_code == 409


def test_malformed_definition_requests_are_400(client: TestClient) -> None:
    version = _version(client)
    assert client.post("/api/definitions/signals", headers=HEADERS, content=b"not json").status_code == 400
    assert client.post("/api/definitions/signals", headers=HEADERS, json=[1]).status_code == 400
    assert client.post("/api/definitions/signals", headers=HEADERS, json={"values": {}}).status_code == 400
    assert client.post("/api/definitions/signals", headers=HEADERS, json={"version": version, "values": {"center": 1}}).status_code == 422
    assert client.put("/api/definitions/signals/42", headers=HEADERS, json={"version": version, "values": {}}).status_code == 400


def test_definitions_outside_the_configs_root_are_refused(client: TestClient, roots: dict[str, Path], tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yaml"
    shutil.copy(roots["configs"] / "signals.yaml", outside)
    config = roots["configs"] / "default.yaml"
    config.write_text(config.read_text().replace("signals: signals.yaml", f"signals: {outside}"))
    response = client.get("/api/definitions/signals")
    assert response.status_code == 400 and "outside the configs directory" in response.json()["error"]
    config.write_text(config.read_text().replace(f"signals: {outside}", "signals: signals.yaml"))
    (roots["configs"] / "signals.yaml").unlink()
    (roots["configs"] / "signals.yaml").symlink_to(outside)
    response = client.get("/api/definitions/signals")
    assert response.status_code == 400 and "symbolic links" in response.json()["error"]


# -- plot view ------------------------------------------------------------------------------------
def test_the_plot_view_renders_the_plot_commands_figures(client: TestClient) -> None:
    response = client.get("/api/plot", params={"signal_id": 1, "bg_id": 0, "wavelet_id": 0, "seed": 3, "n_toys": 2})
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert set(images) == {"clean", "fluctuations", "cwt-clean"}
    assert all(v.startswith("data:image/png;base64,") and len(v) > 1000 for v in images.values())
    fluctuated = client.get("/api/plot", params={"signal_id": 1, "bg_id": 0, "wavelet_id": 0, "seed": 4, "n_toys": 2,
                                                 "cwt": "cwt-fluctuations"}).json()["images"]  # fmt: skip
    assert "cwt-fluctuations" in fluctuated and fluctuated["fluctuations"] != images["fluctuations"]


@pytest.mark.parametrize(("params", "words"), [
    ({"signal_id": 9, "bg_id": 0, "wavelet_id": 0}, "valid ids: 0, 1, 2, 3"),
    ({"signal_id": 0, "bg_id": 0, "wavelet_id": 0, "n_toys": 0}, "between 1 and"),
    ({"signal_id": 0, "bg_id": 0, "wavelet_id": 0, "cwt": "pvalue"}, "cwt-clean or cwt-fluctuations"),
    ({"signal_id": "x", "bg_id": 0, "wavelet_id": 0}, "signal_id"),
    ({"signal_id": 0, "bg_id": 0, "wavelet_id": 0, "extra": 1}, "extra"),
])  # fmt: skip
def test_bad_plot_requests_name_the_problem(client: TestClient, params: dict, words: str) -> None:
    response = client.get("/api/plot", params=params)
    assert response.status_code == 400
    assert words in response.json()["error"]


# -- sessions -------------------------------------------------------------------------------------
def test_save_list_load_and_delete_a_session(client: TestClient, roots: dict[str, Path]) -> None:
    response = client.post("/api/sessions", headers=HEADERS, json={"name": "before-edit"})
    assert response.status_code == 201, response.text
    assert (roots["sessions"] / "before-edit" / "session.json").is_file()
    assert [s["name"] for s in client.get("/api/sessions").json()["sessions"]] == ["before-edit"]
    assert "before-edit" in client.get("/sessions").text
    assert client.post("/api/sessions", headers=HEADERS, json={"name": "before-edit"}).status_code == 400  # exists
    assert client.post("/api/sessions", headers=HEADERS, json={"name": "before-edit", "force": True}).status_code == 201

    client.put("/api/definitions/signals/0", headers=HEADERS, json={
        "version": _version(client), "values": {"center": "222", "height": "150", "width": "8"}})
    client.post("/api/definitions/signals/1/duplicate", headers=HEADERS, json={"version": _version(client)})
    changes = client.get("/api/sessions/before-edit").json()
    assert changes["definitions"]["signals"] == {"added": [], "removed": [4], "changed": [0]}
    assert changes["definitions"]["wavelets"] == {"added": [], "removed": [], "changed": []}
    loaded = client.post("/api/sessions/before-edit/load", headers=HEADERS)
    assert loaded.status_code == 200
    assert loaded.json()["definitions"]["signals"]["changed"] == [0] and "signals.yaml" in loaded.json()["written"]
    assert load_entries("signals", roots["configs"] / "signals.yaml")[0].center == 256
    assert client.get("/api/sessions/before-edit").json()["unchanged"] is True

    assert client.request("DELETE", "/api/sessions/before-edit", headers=HEADERS).status_code == 200
    assert client.get("/api/sessions").json()["sessions"] == []
    assert client.request("DELETE", "/api/sessions/before-edit", headers=HEADERS).status_code == 400


@pytest.mark.parametrize("name", ["..", "a.b", "a b", "x" * 65, "%2e%2e"])
def test_session_names_follow_the_cli_rules(client: TestClient, name: str) -> None:
    response = client.post("/api/sessions", headers=HEADERS, json={"name": name})
    assert response.status_code == 400
    assert "letters, digits" in response.json()["error"]
    assert client.get(f"/api/sessions/{name}").status_code in (400, 404)


def test_a_symlinked_session_is_refused(client: TestClient, roots: dict[str, Path], tmp_path: Path) -> None:
    roots["sessions"].mkdir()
    (tmp_path / "victim").mkdir()
    (roots["sessions"] / "linked").symlink_to(tmp_path / "victim")
    response = client.post("/api/sessions", headers=HEADERS, json={"name": "linked", "force": True})
    assert response.status_code == 400 and "symbolic link" in response.json()["error"]
    assert client.request("DELETE", "/api/sessions/linked", headers=HEADERS).status_code == 400
    assert (tmp_path / "victim").is_dir()


# -- jobs -----------------------------------------------------------------------------------------
def _wait(client: TestClient, seconds: float = 120.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get("/api/jobs").json()["job"]
        if job["state"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError(f"job still running after {seconds} s: {job}")


def test_a_build_dataset_job_runs_the_cli_and_lands_in_the_results(client: TestClient, roots: dict[str, Path]) -> None:
    assert client.get("/api/jobs").json() == {"job": None}
    response = client.post("/api/jobs", headers=HEADERS, json={
        "stage": "build-dataset", "name": "tiny", "signal_id": 1, "toys": 10, "train": 10, "test": 10, "signal_sizes": "0,100"})  # fmt: skip
    assert response.status_code == 202, response.text
    job = _wait(client)
    assert job["state"] == "finished", job["log"]
    assert job["progress"] == 100.0 and job["results"] == "tiny" and job["returncode"] == 0
    dataset = roots["results"] / "tiny" / "dataset"
    assert (dataset / "test_signals_100.npy").is_file()
    run = json.loads((dataset / "run.json").read_text())
    assert run["command"] == "build-dataset" and run["config"]["toys"]["signals"].endswith("signals.yaml")
    assert json.loads((dataset / "dataset_config.json").read_text())["source"]["ids"]["signal_id"] == 1
    assert any("p-value maps" in line for line in job["log"])
    assert (roots["results"] / "tiny" / "build-dataset.log").is_file()
    assert [r["path"] for r in client.get("/api/results").json()["runs"]] == ["tiny/dataset"]


def test_one_job_at_a_time_and_cancel_stops_it(client: TestClient) -> None:
    response = client.post("/api/jobs", headers=HEADERS, json={"stage": "build-dataset", "name": "big", "toys": 20000, "train": 10, "test": 10})
    assert response.status_code == 202
    pid = client.app.app.state.workbench.jobs.current.process.pid  # type: ignore[attr-defined]
    second = client.post("/api/jobs", headers=HEADERS, json={"stage": "build-dataset", "name": "other"})
    assert second.status_code == 400 and "already running" in second.json()["error"]
    cancelled = client.post("/api/jobs/cancel", headers=HEADERS).json()["job"]
    assert cancelled["state"] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone


def test_job_requests_are_validated(client: TestClient) -> None:
    bad = [
        {"stage": "run"}, {"stage": "build-dataset", "name": "../x"}, {"stage": "build-dataset", "toys": 5},
        {"stage": "train-ae", "models": "dense; rm -rf /"}, {"stage": "build-dataset", "extra": 1},
        {"stage": "build-dataset", "name": ".hidden"},
    ]  # fmt: skip
    for body in bad:
        assert client.post("/api/jobs", headers=HEADERS, json=body).status_code == 400, body
    assert client.get("/api/jobs").json() == {"job": None}


def test_train_ae_and_pvalue_scan_arguments() -> None:
    from analysis.workbench.jobs import JobRequest, stage_arguments

    out, config = Path("/r/x"), Path("/c/default.yaml")
    train = stage_arguments(JobRequest(stage="train-ae", models="dense", epochs=1), config, out)
    assert train == ["train-ae", "--config", str(config), "--dataset", "/r/x/dataset", "--out", "/r/x/ae",
                     "--models", "dense", "--epochs", "1"]  # fmt: skip
    scan = stage_arguments(JobRequest(stage="pvalue-scan"), config, out)
    assert scan == ["pvalue-scan", "--config", str(config), "--dataset", "/r/x/dataset", "--models-dir", "/r/x/ae", "--out", "/r/x/ae"]


# -- results --------------------------------------------------------------------------------------
def _fake_run(results: Path) -> Path:
    """A results directory as `run` writes it: run.json, sensitivity.json, a plot, report.md."""
    import matplotlib.pyplot as plt

    from analysis.core.atomic import write_json
    from analysis.core.plots import save
    from analysis.report import Section, build_report
    from analysis.sensitivity.model import Band, Crossing, MethodEntry, Point, Sensitivity

    run = results / "demo"
    run.mkdir(parents=True)
    write_json(run / "run.json", {"command": "run", "started": "2026-01-01T00:00:00+00:00", "seed": 1})
    band = Band(median=1.0, lo=0.5, hi=1.5)
    entry = MethodEntry(method="bumphunter", signal="xgg", background_events=1000, realizations=5, fingerprint="f",
                        points=[Point(n_signal=0, z_local=band, z_global=band)], null_p_global=[0.5], null_ks_pvalue=0.4,
                        n_signal_3sigma=Crossing(**{"global": 420.0}), n_signal_5sigma=Crossing(), z_global_meaning="m")  # fmt: skip
    Sensitivity(methods=[entry]).write(run / "sensitivity.json")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    (run / "toys").mkdir()
    save(fig, run / "toys" / "clean.png")
    build_report(run, [Section("Toys", ["<b>raw</b> text"], (["a", "b"], [["1", "2"]]), [("clean", "toys/clean.png")])])
    return run


def test_results_list_report_table_run_json_and_plots(client: TestClient, roots: dict[str, Path]) -> None:
    _fake_run(roots["results"])
    assert client.get("/api/results").json()["runs"] == [
        {"path": "demo", "command": "run", "started": "2026-01-01T00:00:00+00:00", "report": True}]
    assert 'href="/results/view/demo"' in client.get("/results").text
    page = client.get("/results/view/demo").text
    assert '<img src="/results/file/demo/toys/clean.png" alt="clean"' in page  # the report's image, served
    assert "<h2>Toys</h2>" in page and "&lt;b&gt;raw&lt;/b&gt;" in page  # rendered; raw HTML escaped
    assert "Method table: xgg" in page and "<td>bumphunter</td>" in page and "<td>420" in page
    assert "&#34;command&#34;: &#34;run&#34;" in page  # run.json, escaped
    image = client.get("/results/file/demo/toys/clean.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert client.get("/results/file/demo/run.json").json()["seed"] == 1


@pytest.mark.parametrize("url", [
    "/results/file/../configs/signals.yaml", "/results/file/%2e%2e/configs/signals.yaml",
    "/results/file/demo/..%2F..%2Fconfigs%2Fsignals.yaml", "/results/view/..%2Fconfigs", "/results/file/demo/report.html",
    "/results/file/demo/.secret.json", "/results/file//etc/passwd", "/results/view/nothing",
])  # fmt: skip
def test_no_path_reaches_outside_the_results(client: TestClient, roots: dict[str, Path], url: str) -> None:
    _fake_run(roots["results"])
    (roots["results"] / "demo" / ".secret.json").write_text("{}")
    response = client.get(url)
    assert response.status_code in (400, 404)
    assert "Signal definitions" not in response.text and "root:" not in response.text


def test_symlinks_in_the_results_are_refused(client: TestClient, roots: dict[str, Path]) -> None:
    run = _fake_run(roots["results"])
    (run / "link.json").symlink_to(roots["configs"] / "default.yaml")
    (roots["results"] / "linked").symlink_to(roots["configs"])
    assert client.get("/results/file/demo/link.json").status_code == 400
    assert client.get("/results/view/linked").status_code == 400
    assert [r["path"] for r in client.get("/api/results").json()["runs"]] == ["demo"]


# -- security -------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example:8765", "127.0.0.1:9999", "attacker.127.0.0.1.nip.io:8765", ""])
def test_a_foreign_host_header_is_refused(client: TestClient, host: str) -> None:
    for method, url in (("GET", "/plot"), ("GET", "/static/app.js"), ("POST", "/api/sessions")):
        response = client.request(method, url, headers={"Host": host, **HEADERS}, json={"name": "x"})
        assert response.status_code == 400, (method, url)
        assert "DNS rebinding" in response.json()["error"]


def test_localhost_names_are_this_server(client: TestClient) -> None:
    assert client.get("/plot", headers={"Host": "localhost:8765"}).status_code == 200


@pytest.mark.parametrize("route", [
    ("POST", "/api/definitions/signals"), ("PUT", "/api/definitions/signals/0"), ("DELETE", "/api/definitions/signals/0"),
    ("POST", "/api/definitions/signals/0/duplicate"), ("POST", "/api/sessions"), ("DELETE", "/api/sessions/a"),
    ("POST", "/api/sessions/a/load"), ("POST", "/api/jobs"), ("POST", "/api/jobs/cancel"),
])  # fmt: skip
def test_state_changes_need_the_csrf_token(client: TestClient, roots: dict[str, Path], route: tuple[str, str]) -> None:
    before = (roots["configs"] / "signals.yaml").read_bytes()
    method, url = route
    body = {"version": _version(client), "values": {"center": "1", "height": "1", "width": "1"}, "name": "a", "stage": "build-dataset"}
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        response = client.request(method, url, headers=headers, json=body)
        assert response.status_code == 403 and "CSRF" in response.json()["error"]
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        response = client.request(method, url, headers={**HEADERS, **headers}, json=body)
        assert response.status_code == 403
    assert (roots["configs"] / "signals.yaml").read_bytes() == before
    assert not roots["sessions"].exists() or not any(roots["sessions"].iterdir())
    assert client.get("/api/jobs").json() == {"job": None}


def test_the_same_origin_is_accepted(client: TestClient) -> None:
    response = client.post("/api/sessions", headers={**HEADERS, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}, json={"name": "ok"})
    assert response.status_code == 201


def test_oversized_bodies_are_refused(client: TestClient, roots: dict[str, Path]) -> None:
    before = (roots["configs"] / "signals.yaml").read_bytes()
    big = {"version": _version(client), "values": {"name": "x" * 300_000, "center": "1", "height": "1", "width": "1"}}
    response = client.post("/api/definitions/signals", headers=HEADERS, json=big)
    assert response.status_code == 413

    def chunks():  # no Content-Length: the limit holds on the streamed body too
        for _ in range(40):
            yield b"x" * 10_000

    response = client.post("/api/definitions/signals", headers=HEADERS, content=chunks())
    assert response.status_code == 413
    assert (roots["configs"] / "signals.yaml").read_bytes() == before


def test_responses_carry_the_security_headers(client: TestClient) -> None:
    headers = client.get("/plot").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert "server" not in headers or "uvicorn" not in headers["server"]


def test_host_rules() -> None:
    local = allowed_hosts("127.0.0.1", 8765)
    assert host_ok("127.0.0.1:8765", local, 8765) and host_ok("LOCALHOST:8765", local, 8765)
    assert not host_ok("evil.example:8765", local, 8765) and not host_ok("127.0.0.1", local, 8765)
    lan = allowed_hosts("192.168.1.5", 8000)
    assert host_ok("192.168.1.5:8000", lan, 8000) and not host_ok("localhost:8000", lan, 8000)
    anywhere = allowed_hosts("0.0.0.0", 8000)
    assert anywhere is None
    assert host_ok("10.0.0.7:8000", None, 8000) and host_ok("[::1]:8000", None, 8000)
    assert not host_ok("rebind.example:8000", None, 8000) and not host_ok("10.0.0.7:9000", None, 8000)


def test_contained_refuses_traversal_and_links(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert contained(tmp_path, ["a", "b.png"]) == tmp_path / "a" / "b.png"
    for parts in (["..", "x"], ["a", ".."], [".hidden"], ["a/b"], ["a\\..\\b"], [""], ["x\x00"]):
        with pytest.raises(Exception, match="letters, digits"):
            contained(tmp_path, parts)
    (tmp_path / "l").symlink_to(tmp_path / "a")
    with pytest.raises(Exception, match="symbolic links"):
        contained(tmp_path, ["l", "b.png"])


# -- the serve command ----------------------------------------------------------------------------
def test_serve_warns_on_a_non_local_host_and_checks_its_arguments(monkeypatch, capsys, roots: dict[str, Path]) -> None:
    import uvicorn

    from analysis.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    config = str(roots["configs"] / "default.yaml")
    dirs = ["--sessions-dir", str(roots["sessions"]), "--results-dir", str(roots["results"])]
    assert main(["serve", "--config", config, *dirs]) == 0
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8765
    assert "warning" not in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--port", "9000", "--config", config, *dirs]) == 0
    assert "warning: serving on 0.0.0.0, not a local address" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--config", config, *dirs]) == 2
    assert main(["serve", "--config", str(roots["configs"] / "missing.yaml"), *dirs]) == 2
    assert len(calls) == 2
