"""`--engine ray` on a cluster of several nodes (Ray's own simulator: 1-CPU nodes in this process tree)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment.batch.config import BatchConfig
from review_sentiment.batch.ray_cluster import connect
from review_sentiment.batch.score_file import score_file
from review_sentiment.errors import UserError
from review_sentiment.manifest import DEFAULT_MODEL_DIR

from ..conftest import toy_reviews

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = pytest.mark.timeout(300)


def start_cluster(monkeypatch, nodes: int):
    ray.shutdown()  # another module's local Ray
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1) for _ in range(nodes - 1)]
    cluster.wait_for_nodes()
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)  # as a user points score-csv at a cluster
    return cluster, workers


def stop_cluster(cluster) -> None:
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def two_nodes(monkeypatch):
    cluster, workers = start_cluster(monkeypatch, 2)
    yield cluster, workers
    stop_cluster(cluster)


def reviews_folder(root: Path, files: int, rows: int) -> Path:
    folder = root / "reviews"
    folder.mkdir(parents=True)
    for i in range(files):
        toy_reviews(rows, seed=10 + i).assign(review_id=range(i * rows, (i + 1) * rows)).to_csv(
            folder / f"part-{i}.csv", index=False
        )
    return folder


def local_scores(folder: Path, tmp_path: Path, model: str | None) -> pd.DataFrame:
    """The local engine over the same files, in name order: what every engine must answer."""
    frames = []
    for path in sorted(folder.glob("*.csv")):
        out = tmp_path / f"local-{path.stem}.csv"
        score_file(BatchConfig(input=str(path), output=str(out), model=model))
        frames.append(pd.read_csv(out))
    return pd.concat(frames, ignore_index=True)


def test_every_node_scores_the_shipped_int8_model_from_relative_paths(two_nodes, tmp_path, monkeypatch):
    """Rows once and in order, both nodes scoring, the same answers as the local engine with the shipped
    int8 model; relative input, output and model paths, and a model folder that only the driver ever had."""
    monkeypatch.chdir(tmp_path)
    folder = reviews_folder(tmp_path, files=2, rows=600)
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "models" / "m")
    from review_sentiment.batch import ray_engine

    shipped = ray_engine.model_files

    def ship_then_delete(model: Path):
        files = shipped(model)
        shutil.rmtree(model)  # from here on the model exists only in Ray's object store
        return files

    monkeypatch.setattr(ray_engine, "model_files", ship_then_delete)
    summary = score_file(BatchConfig(input="reviews", output="scored.csv", model="models/m", engine="ray"))
    assert not (tmp_path / "models" / "m").exists()
    assert summary.rows == summary.scored == 1200
    assert len(summary.rows_per_node) == 2 and sum(summary.rows_per_node.values()) == 1200
    ours = pd.read_csv(tmp_path / "scored.csv")
    local = local_scores(folder, tmp_path, str(DEFAULT_MODEL_DIR))
    assert ours["review_id"].tolist() == list(range(1200))
    assert ours["source_file"].tolist() == ["part-0.csv"] * 600 + ["part-1.csv"] * 600
    assert ours["label"].tolist() == local["label"].tolist()
    pd.testing.assert_series_equal(ours["score"], local["score"], atol=1e-5)


def test_overwrite_twice_replaces_the_shards(two_nodes, tmp_path):
    folder = reviews_folder(tmp_path, files=3, rows=200)
    out = tmp_path / "scored"
    for _ in range(2):
        summary = score_file(
            BatchConfig(input=str(folder / "*.csv"), output=str(out), engine="ray", overwrite=True, chunk_rows=250)
        )
        assert summary.rows == 600
        assert sorted(p.name for p in out.iterdir()) == [f"part-{i:05d}.parquet" for i in range(3)]
        assert pd.read_parquet(out)["review_id"].tolist() == list(range(600))  # shard names keep row order
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging folder left behind


def test_a_node_lost_mid_run_loses_no_row(monkeypatch, tmp_path):
    """The worker node is removed once the driver has written two shards: Ray restarts its actor's work
    elsewhere, and every row still comes out once, in order."""
    cluster, (worker,) = start_cluster(monkeypatch, 2)
    try:
        folder = reviews_folder(tmp_path, files=1, rows=3000)
        out = tmp_path / "scored"
        result: dict = {}

        def run() -> None:
            try:
                result["summary"] = score_file(
                    BatchConfig(input=str(folder), output=str(out), engine="ray", chunk_rows=256)
                )
            except BaseException as error:  # re-raised by the test below
                result["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        staging = tmp_path / ".scored.partial"
        while thread.is_alive() and len(list(staging.glob("*.parquet"))) < 2:
            thread.join(0.2)
        assert thread.is_alive(), result
        cluster.remove_node(worker)
        thread.join(240)
        assert not thread.is_alive() and "error" not in result, result
        assert result["summary"].rows == 3000
        assert pd.read_parquet(out)["review_id"].tolist() == list(range(3000))
    finally:
        stop_cluster(cluster)


RAY_CLI = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_address_where_nothing_listens_is_refused_in_one_line(monkeypatch):
    ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    with pytest.raises(UserError, match=r"no Ray cluster answers at 127\.0\.0\.1"):
        connect()
    monkeypatch.setenv("RAY_ADDRESS", "head-node")
    with pytest.raises(UserError, match="is not host:port"):
        connect()


def score_csv(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "review_sentiment.batch.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_cluster_with_token_authentication(tmp_path):
    """`ray start --head` with tokens (a real head, as a user starts one): without RAY_AUTH_TOKEN the run
    stops with one line that says what to set; with it, the run scores."""
    ray.shutdown()
    head_home, user_home = tmp_path / "head", tmp_path / "user"
    user_home.mkdir()
    env = {**os.environ, "HOME": str(head_home), "RAY_AUTH_MODE": "token"}
    token = subprocess.run(
        [RAY_CLI, "get-auth-token", "--generate"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    port = free_port()
    head = subprocess.Popen(
        [RAY_CLI, "start", "--head", "--block", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        toy_reviews(50, seed=4).to_csv(tmp_path / "reviews.csv", index=False)
        user = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {
            "HOME": str(user_home),
            "RAY_ADDRESS": f"127.0.0.1:{port}",
        }
        args = [str(tmp_path / "reviews.csv"), "--engine", "ray", "--output", str(tmp_path / "scored")]
        for _ in range(60):  # the head takes a few seconds to listen
            refused = score_csv(args, user)
            if "no Ray cluster answers" not in refused.stderr:
                break
            time.sleep(1)
        assert refused.returncode == 2  # a user error
        assert refused.stderr.strip().splitlines()[-1].startswith("error: the Ray cluster at 127.0.0.1")
        assert "RAY_AUTH_TOKEN" in refused.stderr and "Traceback" not in refused.stderr
        scored = score_csv(args, user | {"RAY_AUTH_TOKEN": token})
        assert scored.returncode == 0, scored.stderr[-2000:]
        assert len(pd.read_parquet(tmp_path / "scored")) == 50
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(60)


def test_a_cluster_recorded_on_this_machine_but_gone_is_not_waited_for(tmp_path, monkeypatch):
    """`ray start` records its address in <tmp>/ray/ray_current_cluster; a cluster killed without `ray stop`
    leaves the record, and ray.init waited on it for minutes. A dead record starts a new Ray instead."""
    from review_sentiment.batch.ray_cluster import _init_address

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    record = tmp_path / "ray" / "ray_current_cluster"
    assert _init_address("") is None  # nothing recorded: Ray's own choice
    record.write_text(f"127.0.0.1:{free_port()}")
    assert _init_address("") == "local"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        record.write_text(f"127.0.0.1:{listening.getsockname()[1]}")
        assert _init_address("") is None  # alive: joined as before
    assert _init_address("127.0.0.1:6379") is None  # RAY_ADDRESS decides
