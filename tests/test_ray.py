import pandas as pd
import pytest

from review_sentiment.batch import BatchConfig, score_file

from .conftest import toy_reviews

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_engine_equals_local_engine(exported, tmp_path, local_ray):
    folder = tmp_path / "reviews"
    folder.mkdir()
    frames = [toy_reviews(40, seed=s) for s in (1, 2)]
    frames[0].loc[3, "review"] = "  "
    for i, frame in enumerate(frames):
        frame.to_parquet(folder / f"part-{i}.parquet")
    model = str(exported["none"])
    out = tmp_path / "scored"
    summary = score_file(
        BatchConfig(input=str(folder / "*.parquet"), output=str(out), model=model, engine="ray", chunk_rows=16)
    )
    assert (summary.rows, summary.scored) == (80, 79)
    # Ray may read the files in another order; rows are compared by review (unique in this data).
    distributed = pd.read_parquet(out).sort_values("review").reset_index(drop=True)
    local = (
        pd.concat(
            [
                pd.read_parquet(tmp_path / f"local-{i}.parquet")
                for i in range(2)
                if score_file(
                    BatchConfig(
                        input=str(folder / f"part-{i}.parquet"),
                        output=str(tmp_path / f"local-{i}.parquet"),
                        model=model,
                    )
                )
            ],
            ignore_index=True,
        )
        .sort_values("review")
        .reset_index(drop=True)
    )
    assert distributed["review"].tolist() == local["review"].tolist()
    assert distributed["status"].tolist() == local["status"].tolist()
    assert distributed["label"].fillna("").tolist() == local["label"].fillna("").tolist()
    pd.testing.assert_series_equal(distributed["score"], local["score"], atol=1e-5, check_dtype=False)


def test_ray_plan_leaves_room_for_read_tasks():
    from review_sentiment.distributed import _plan

    assert _plan({"CPU": 2.0}, "auto") == {"concurrency": 1, "num_gpus": 0, "num_cpus": 1, "threads": 1}
    assert _plan({"CPU": 16.0}, "cpu")["concurrency"] == 8
    assert _plan({"CPU": 16.0, "GPU": 4.0}, "auto")["concurrency"] == 4
