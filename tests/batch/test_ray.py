import re

import pandas as pd
import pytest

from review_sentiment.batch.config import BatchConfig
from review_sentiment.batch.score_file import score_file
from review_sentiment.errors import UserError

from ..conftest import THREE_CLASSES, toy_reviews, toy_reviews_3class

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    # address="local": a new Ray for these tests, even where `ray start` runs a cluster on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_engine_equals_local_engine(exported, tmp_path, local_ray):
    folder = tmp_path / "reviews"
    folder.mkdir()
    # shuffled, as a user's sample is: pandas stores that index as a column, which both engines keep
    frames = [toy_reviews(40, seed=s).sample(frac=1, random_state=s) for s in (1, 2)]
    frames[0].iloc[3, frames[0].columns.get_loc("review")] = "  "
    for i, frame in enumerate(frames):
        frame.to_parquet(folder / f"part-{i}.parquet")
    model = str(exported["none"])
    out = tmp_path / "scored"
    summary = score_file(
        BatchConfig(input=str(folder / "*.parquet"), output=str(out), model=model, engine="ray", chunk_rows=16)
    )
    assert (summary.rows, summary.scored) == (80, 79)
    # Files in the order of their names, rows in file order: the same rows as the local engine, file by file.
    distributed = pd.read_parquet(out)
    local = pd.concat(
        [
            pd.read_parquet(tmp_path / f"local-{i}.parquet")
            for i in range(2)
            if score_file(
                BatchConfig(
                    input=str(folder / f"part-{i}.parquet"), output=str(tmp_path / f"local-{i}.parquet"), model=model
                )
            )
        ],
        ignore_index=True,
    )
    assert distributed["review"].tolist() == local["review"].tolist()
    # each row names the file it came from, relative to the input folder; Ray's own `path` is not kept
    by_file = pd.concat(
        [frames[0].assign(source_file="part-0.parquet"), frames[1].assign(source_file="part-1.parquet")]
    )
    assert dict(zip(distributed["review"], distributed["source_file"], strict=True)) == dict(
        zip(by_file["review"], by_file["source_file"], strict=True)
    )
    assert list(distributed.columns) == [*local.columns, "source_file"]
    assert distributed["status"].tolist() == local["status"].tolist()
    assert distributed["label"].fillna("").tolist() == local["label"].fillna("").tolist()
    pd.testing.assert_series_equal(distributed["score"].astype(float), local["score"].astype(float), atol=1e-5)


def test_ray_engine_equals_local_engine_for_three_labels(three_class_model, tmp_path, local_ray):
    source = tmp_path / "reviews3.parquet"
    frame = toy_reviews_3class(60, seed=4)
    frame.loc[[5, 6], "review"] = ["  ", "4/5"]
    frame.loc[7, "sentiment"] = "pos"  # names no class of three: left out of the accuracy on both engines
    frame.to_parquet(source)
    common = {"input": str(source), "model": str(three_class_model), "chunk_rows": 16, "label_column": "sentiment"}
    summaries = {
        "local": score_file(BatchConfig(output=str(tmp_path / "local.parquet"), **common)),
        "folder": score_file(BatchConfig(output=str(tmp_path / "shards"), engine="ray", **common)),
        "file": score_file(BatchConfig(output=str(tmp_path / "one.parquet"), engine="ray", **common)),
    }
    local = pd.read_parquet(tmp_path / "local.parquet")
    ours = ["label", "confidence", "p_negative", "p_neutral", "p_positive", "status"]
    assert list(local.columns) == ["review", "sentiment", *ours]
    assert local["status"].tolist().count("ok") == 58 and local.loc[[5, 6], "p_neutral"].isna().all()

    def plain(frame: pd.DataFrame) -> pd.DataFrame:
        """Values only: Ray's shards keep pandas' nullable and Arrow dtypes (NA), the local file reads back as
        NumPy's (NaN, None)."""
        text = {c: object for c in frame.columns if c not in ours[1:-1]}
        return frame.astype({c: float for c in ours[1:-1]}).astype(text).fillna(dict.fromkeys(text, ""))

    # One file and the shards (named in row order) both read back in input order.
    pd.testing.assert_frame_equal(plain(pd.read_parquet(tmp_path / "one.parquet")), plain(local))
    pd.testing.assert_frame_equal(plain(pd.read_parquet(tmp_path / "shards")), plain(local))
    for summary in summaries.values():
        assert summary.classes == THREE_CLASSES
        assert (summary.labels, summary.gold) == (summaries["local"].labels, summaries["local"].gold)
        assert summary.gold["unrecognised"] == 1


def test_pool_takes_one_actor_per_cpu_of_each_alive_node():
    from review_sentiment.batch.ray_cluster import PoolPlan, plan_pool

    two_small = [{"Alive": True, "Resources": {"CPU": 1.0}}, {"Alive": True, "Resources": {"CPU": 1.0}}]
    assert plan_pool(two_small, "auto") == PoolPlan(actors=2, nodes=2, num_cpus=1, num_gpus=0, threads=1)
    uneven = [{"Resources": {"CPU": 0.5}}, {"Resources": {"CPU": 6.0}}, {"Alive": False, "Resources": {"CPU": 8.0}}]
    assert (plan_pool(uneven, "cpu").actors, plan_pool(uneven, "cpu").nodes) == (6, 1)
    gpus = [{"Resources": {"CPU": 16.0, "GPU": 2.0}}, {"Resources": {"CPU": 4.0}}, {"Resources": {"GPU": 1.0}}]
    assert plan_pool(gpus, "auto") == PoolPlan(actors=2, nodes=1, num_cpus=1, num_gpus=1, threads=None)
    assert plan_pool(gpus, "cpu").actors == 20  # --provider cpu leaves the GPUs alone
    with pytest.raises(UserError, match="needs a node with a GPU"):
        plan_pool(two_small, "cuda")
    with pytest.raises(UserError, match="no whole CPU"):
        plan_pool([{"Resources": {"CPU": 0.5}}], "auto")


@pytest.mark.timeout(180)
def test_ray_scores_on_a_one_cpu_cluster_instead_of_hanging(exported, tmp_path):
    """Issue 16: the only CPU went to the scoring actor, the read never ran and the job hung silently.
    Reads now take no CPU of their own."""
    folder = tmp_path / "reviews"
    folder.mkdir()
    toy_reviews(20, seed=1).to_parquet(folder / "part-0.parquet")
    ray.shutdown()  # a module fixture's 2-CPU Ray may be running; this test needs its own
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        summary = score_file(
            BatchConfig(input=str(folder), output=str(tmp_path / "o"), model=str(exported["none"]), engine="ray")
        )
        assert summary.rows == 20 and len(pd.read_parquet(tmp_path / "o")) == 20
    finally:
        ray.shutdown()  # later tests start their own Ray


def test_ray_output_is_a_sibling_of_the_input_never_inside_it(exported, tmp_path):
    from review_sentiment.batch.ray_engine import default_ray_output

    assert default_ray_output("reviews/part-*.parquet") == "reviews.scored"  # was reviews/part.scored, read back
    assert default_ray_output("reviews/") == default_ray_output("reviews.parquet") == "reviews.scored"
    assert default_ray_output("s3://b/reviews/*.csv") == "s3://b/reviews.scored"
    folder = tmp_path / "reviews"
    folder.mkdir()
    toy_reviews(3, seed=1).to_csv(folder / "part-0.csv", index=False)
    model = str(exported["none"])
    for source, output in [
        (str(folder), folder / "scored"),
        (str(folder / "*.csv"), folder / "scored.csv"),
        (str(folder / "*.csv"), folder),
    ]:
        with pytest.raises(UserError, match="is inside the input folder"):
            score_file(BatchConfig(input=source, output=str(output), model=model, engine="ray", overwrite=True))
    with pytest.raises(UserError, match="one file only on this machine"):
        score_file(BatchConfig(input=str(folder), output="s3://b/scored.csv", model=model, engine="ray"))
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.csv"]


def test_ray_overwrite_replaces_and_a_file_name_gives_one_file(exported, tmp_path, local_ray):
    folder = tmp_path / "csvs"
    folder.mkdir()
    for i in range(2):
        toy_reviews(3, seed=i).to_csv(folder / f"part-{i}.csv", index=False)
    model = str(exported["none"])
    out = tmp_path / "scored"
    for _ in range(2):  # a folder of CSV files needs no --input-format; a re-run replaces, never appends
        summary = score_file(BatchConfig(input=str(folder), output=str(out), model=model, engine="ray", overwrite=True))
        assert summary.rows == 6 and len(pd.read_parquet(out)) == 6
    single = tmp_path / "scored.csv"
    summary = score_file(BatchConfig(input=str(folder), output=str(single), model=model, engine="ray"))
    assert single.is_file() and summary.rows == 6
    assert pd.read_csv(single)["status"].eq("ok").all() and len(pd.read_csv(single)) == 6
    assert sorted(set(pd.read_csv(single)["source_file"])) == ["part-0.csv", "part-1.csv"]
    assert "path" not in pd.read_csv(single).columns


def test_ray_refuses_what_its_readers_cannot_read_with_one_line(exported, tmp_path, local_ray):
    source = tmp_path / "dup.csv"
    source.write_text("text,text,id\ngreat,awful,1\n")
    model = str(exported["none"])
    with pytest.raises(UserError, match=r'"text" exists 2 times.*--engine local reads one file') as refused:
        score_file(BatchConfig(input=str(source), output=str(tmp_path / "o"), model=model, engine="ray"))
    assert "\n" not in str(refused.value)
    source.write_text("text,id\n")  # a header alone: Ray reads no columns from it
    with pytest.raises(UserError, match="has no rows to score"):
        score_file(BatchConfig(input=str(source), output=str(tmp_path / "o"), model=model, engine="ray"))


def test_ray_reads_a_cp1252_folder_as_the_local_engine_does(exported, tmp_path, local_ray):
    """The encoding is told from the files (or --encoding) and given to Ray's CSV reader: before, every
    row came out 'skipped: not text (bytes)' and the run still succeeded."""
    folder = tmp_path / "latin"
    folder.mkdir()
    frame = toy_reviews(30, seed=6)
    frame["review"] = frame["review"] + " café naïve"
    for i in range(2):
        frame.iloc[i * 15 : (i + 1) * 15].to_csv(folder / f"part-{i}.csv", index=False, encoding="cp1252")
    model = str(exported["none"])
    score_file(BatchConfig(input=str(folder), output=str(tmp_path / "ray.csv"), model=model, engine="ray"))
    ours = pd.read_csv(tmp_path / "ray.csv")
    assert ours["status"].eq("ok").all() and ours["review"].tolist() == frame["review"].tolist()
    local = pd.concat(
        [
            pd.read_csv(out)
            for i in range(2)
            if score_file(
                BatchConfig(input=str(folder / f"part-{i}.csv"), output=str(out := tmp_path / f"l{i}.csv"), model=model)
            )
        ],
        ignore_index=True,
    )
    assert ours["label"].tolist() == local["label"].tolist()


def ray_config(tmp_path, **given) -> BatchConfig:
    return BatchConfig(**({"input": str(tmp_path / "in"), "engine": "ray"} | given))


def test_ray_refuses_what_it_cannot_do_before_touching_anything(exported, tmp_path, monkeypatch):
    """Checked on the driver before any cluster is joined: nothing is read, written or deleted."""
    folder = tmp_path / "in"
    folder.mkdir()
    toy_reviews(5, seed=1).to_csv(folder / "a.csv", index=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    monkeypatch.chdir(folder)
    refusals = {
        "is inside the output folder": ray_config(tmp_path, output="..", overwrite=True),
        "also holds notes.txt": ray_config(tmp_path, input="a.csv", output=str(tmp_path / "other"), overwrite=True),
        "not stdin or stdout": ray_config(tmp_path, output="-"),
        "has no --resume": ray_config(tmp_path, resume=True, output=str(tmp_path / "o.csv")),
        "--on-bad-lines skip needs --engine local": ray_config(tmp_path, on_bad_lines="skip"),
        "no such file or folder": ray_config(tmp_path, input="missing.csv"),
    }
    for message, cfg in refusals.items():
        with pytest.raises(UserError, match=re.escape(message)):
            score_file(cfg)
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me" and (folder / "a.csv").is_file()
    toy_reviews(5, seed=1).assign(path="x").to_csv(folder / "a.csv", index=False)
    with pytest.raises(UserError, match="has a column named 'path'"):
        score_file(ray_config(tmp_path, output=str(tmp_path / "out")))
