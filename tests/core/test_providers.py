"""Provider selection, with the providers onnxruntime offers faked: no GPU needed to check the logic."""

import threading

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st

from review_sentiment import providers as ort_providers
from review_sentiment.errors import UserError

from ..conftest import skip_without_gpu, toy_reviews

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.fixture
def offered(monkeypatch):
    """Set what this onnxruntime build offers and whether a GPU seems present."""

    def fake(names, gpu):
        monkeypatch.setattr(ort, "get_available_providers", lambda: list(names))
        monkeypatch.setattr(ort_providers, "may_have_nvidia_gpu", lambda: gpu)

    return fake


@pytest.mark.parametrize(
    ("providers", "gpu", "asked", "quantization", "expected"),
    [
        ([CUDA, CPU], True, "auto", "none", [CUDA, CPU]),
        ([CUDA, CPU], False, "auto", "none", [CPU]),  # onnxruntime-gpu lists CUDA on any machine
        ([CUDA, CPU], True, "auto", "int8", [CPU]),  # int8 kernels run on CPU
        ([CPU], True, "auto", "none", [CPU]),
        ([TRT, CUDA, CPU], True, "tensorrt", "none", [TRT, CUDA, CPU]),
        ([TRT, CUDA, CPU], True, "cuda", "none", [CUDA, CPU]),
        ([CUDA, CPU], True, "cpu", "none", [CPU]),
    ],
)
def test_provider_chains(offered, providers, gpu, asked, quantization, expected):
    offered(providers, gpu)
    assert ort_providers._wanted_providers(asked, quantization) == expected


def test_cuda_is_refused_where_the_build_lacks_it(offered):
    offered([CPU], True)
    with pytest.raises(UserError, match="this onnxruntime build has no CUDAExecutionProvider"):
        ort_providers._wanted_providers("cuda", "none")


def test_a_cuda_session_that_fell_back_to_cpu_is_an_error(offered, monkeypatch, bag_of_words_model, caplog):
    offered([CUDA, CPU], True)

    opened = []

    class FellBack:  # what onnxruntime does when the CUDA libraries are missing: a CPU session
        def __init__(self, path, sess_options, providers, disabled_optimizers):
            self.asked, self.disabled, self.options = providers, disabled_optimizers, sess_options
            opened.append(self)

        def get_providers(self):
            return [CPU]

    def missing_library():  # onnxruntime.preload_dlls() reports with print(), not an exception
        print("Failed to load libcublasLt.so.13: cannot open shared object file")

    monkeypatch.setattr(ort, "InferenceSession", FellBack)
    monkeypatch.setattr(ort, "preload_dlls", missing_library, raising=False)
    with pytest.raises(
        UserError, match=r"the session got CPUExecutionProvider.*said: Failed to load libcublasLt\.so\.13"
    ):
        ort_providers.create_session(bag_of_words_model / "model.onnx", "cuda")
    opened.clear()
    session = ort_providers.create_session(bag_of_words_model / "model.onnx", "auto")
    # fp32 on CUDA without TF32: the GPU computes the fp32 that export verified on CPU; a GPU keeps every fusion.
    assert opened[0].asked == [(CUDA, {"use_tf32": "0"}), (CPU, {})] and opened[0].disabled == []
    # It fell back: the session returned is a CPU-only one, made as the scorer's single-thread session is.
    assert session.asked == [(CPU, {})] and session.disabled == list(ort_providers.CPU_SLOWER_FUSIONS)
    assert session.options is opened[0].options  # the caller's threads and profiling kept
    assert "could not be used here; onnxruntime.preload_dlls() said: Failed to load" in caplog.text


class CallSizes:
    """A session that records the shape of each call and the thread that made it."""

    def __init__(self, session) -> None:
        self.session, self.shapes, self.threads = session, [], set()
        self.before_run = lambda: None

    def run(self, names, feeds):
        self.before_run()
        self.shapes.append(feeds["input_ids"].shape)
        self.threads.add(threading.get_ident())
        return self.session.run(names, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


TEXTS = [f"great film {'and more ' * (i % 7)}" for i in range(70)]


def _calls(scorer, batch_size=None) -> list[tuple[int, int]]:
    scorer.session = CallSizes(scorer.session)
    scorer.logits(TEXTS, batch_size)
    return scorer.session.shapes


def test_batching_follows_the_provider_that_really_runs(offered, monkeypatch, bag_of_words_model):
    """CPU: calls of at most 512 padded tokens (BENCHMARKS 'Scoring throughput'); GPU: 32 reviews a call; an
    explicit size wins. The GPU case is a CPU session that reports CUDA: what counts is the session's provider."""
    from review_sentiment.scorer import Scorer

    cpu = Scorer.load(bag_of_words_model, "cpu", threads=1)  # one call at a time: every call on `session`
    calls = _calls(cpu)
    assert cpu.provider == CPU and sum(rows for rows, _ in calls) == len(TEXTS) and len(calls) > 1
    assert all(rows * length <= ort_providers.CPU_TOKENS_PER_CALL for rows, length in calls)
    assert max(rows for rows, _ in _calls(Scorer.load(bag_of_words_model, "cpu", threads=1, batch_size=16))) == 16
    assert max(rows for rows, _ in _calls(Scorer.load(bag_of_words_model, "cpu", threads=1), batch_size=8)) == 8

    real_session = ort.InferenceSession

    class ReportsCuda(real_session):
        def __init__(self, path, sess_options=None, providers=None, **kwargs):
            super().__init__(path, sess_options=sess_options, providers=[CPU], **kwargs)

        def get_providers(self):
            return [CUDA, CPU]

    offered([CUDA, CPU], True)
    monkeypatch.setattr(ort, "InferenceSession", ReportsCuda)
    monkeypatch.setattr(ort, "preload_dlls", lambda: None, raising=False)
    gpu = Scorer.load(bag_of_words_model, "auto")
    assert gpu.provider == CUDA and gpu.batching == ort_providers.Batching(rows=32)
    assert [rows for rows, _ in _calls(gpu)] == [32, 32, 6]


def test_concurrent_calls_score_as_one_call_at_a_time(exported):
    """On CPU several calls run at once, each on one thread of a second session: the same logits, in input order,
    as one call at a time, and the scorer's own session stays free for lone calls."""
    from review_sentiment.scorer import Scorer

    texts = [*toy_reviews(60, seed=5)["review"].tolist(), "great", "awful dull " * 40]
    alone = Scorer.load(exported["int8"], "cpu", threads=1).logits(texts)
    scorer = Scorer.load(exported["int8"], "cpu", threads=3)
    assert scorer.batching.concurrent == 3
    scorer.logits(texts)  # opens the single-thread session
    scorer.concurrent_session = spy = CallSizes(scorer.concurrent_session)
    # The first two calls each wait for the other: one call at a time would time out here.
    met, first_two = threading.Barrier(2, timeout=10), iter(range(2))
    spy.before_run = lambda: next(first_two, None) is not None and met.wait()
    np.testing.assert_allclose(scorer.logits(texts), alone, atol=1e-6)
    assert len(spy.threads) > 1 and sum(rows for rows, _ in spy.shapes) == len(texts)


@given(
    lengths=st.lists(st.integers(1, 600), max_size=80).map(lambda xs: sorted(xs, reverse=True)),
    rows=st.none() | st.integers(1, 40),
    tokens=st.none() | st.integers(1, 2048),
)
def test_batches_cover_every_review_once_in_order_within_their_limits(lengths, rows, tokens):
    from review_sentiment.scorer import split_batches

    if rows is None and tokens is None:
        rows = 7
    batches = split_batches(lengths, rows, tokens)
    assert [i for b in batches for i in range(len(lengths))[b]] == list(range(len(lengths)))
    for b in batches:
        size = b.stop - b.start
        assert size >= 1 and (rows is None or size <= rows)
        assert tokens is None or size == 1 or size * lengths[b.start] <= tokens
        # greedy: the next review would have broken a limit
        if b.stop < len(lengths):
            assert (rows is not None and size == rows) or (
                tokens is not None and (size + 1) * lengths[b.start] > tokens
            )


@pytest.mark.parametrize(
    ("quantization", "optimization", "message"),
    [
        ("int8", "none", "cannot run this int8 model"),
        ("fp16", "O2", "cannot parse this fp16 export"),
        ("none", "O3", "cannot parse this fp32 export"),
    ],
)
def test_tensorrt_is_refused_for_graphs_it_cannot_parse(offered, quantization, optimization, message):
    offered([TRT, CUDA, CPU], True)
    with pytest.raises(UserError, match=f"{message}.*export the model with --quantize none --optimize none"):
        ort_providers._wanted_providers("tensorrt", quantization, optimization)
    for plain in ("none", "O1"):  # O1 is standard ONNX operators only
        assert ort_providers._wanted_providers("tensorrt", "none", plain) == [TRT, CUDA, CPU]


def test_tensorrt_gets_caches_fp16_and_one_profile_for_every_batch_shape(bag_of_words_model, tmp_path):
    from review_sentiment.manifest import read_manifest

    plan = ort_providers.SessionPlan.from_manifest(read_manifest(bag_of_words_model), max_batch=32)
    options = ort_providers.tensorrt_options(bag_of_words_model / "model.onnx", plan, cache_root=tmp_path)
    names = ort_providers.graph_input_names(bag_of_words_model / "model.onnx")
    cache = tmp_path / plan.model_id
    assert cache.is_dir() and plan.model_id != "model"  # keyed by the model's checksum: a new model, new engines
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(cache)
    assert options["trt_engine_cache_enable"] == options["trt_timing_cache_enable"] == options["trt_fp16_enable"]
    assert options["trt_profile_min_shapes"] == ",".join(f"{n}:1x1" for n in names)
    assert options["trt_profile_max_shapes"] == ",".join(f"{n}:32x{plan.max_length}" for n in names)


@pytest.mark.parametrize(
    ("present", "expected"),
    [((), False), (("proc/driver/nvidia/gpus/0000:01:00.0",), True), (("dev/dxg",), True), (("dev/nvidia0",), True)],
)
def test_gpu_presence_on_linux_wsl_and_containers(tmp_path, monkeypatch, present, expected):
    monkeypatch.setattr(ort_providers.sys, "platform", "linux")
    for path in present:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).mkdir() if path.startswith("proc") else (tmp_path / path).touch()
    assert ort_providers.may_have_nvidia_gpu(tmp_path) is expected


def test_a_gpu_space_asks_for_cuda_and_ships_the_cuda_libraries(exported, tmp_path):
    from review_sentiment.app.space import build_space

    space = build_space(str(exported["none"]), tmp_path / "gpu-space", hardware="t4-small")
    assert "provider='cuda'" in (space / "app.py").read_text()
    assert "onnxruntime-gpu[cuda,cudnn]==" in (space / "requirements.txt").read_text()


@pytest.fixture
def cuda_session(bag_of_words_model):
    """Skip unless a CUDA session really starts here (a GPU machine with onnxruntime-gpu)."""
    if CUDA not in ort.get_available_providers() or not ort_providers.may_have_nvidia_gpu():
        skip_without_gpu("this test needs the CUDA execution provider and an NVIDIA GPU")
    return ort_providers.create_session(bag_of_words_model / "model.onnx", "cuda")


@pytest.mark.gpu
def test_cuda_scores_what_cpu_scores(cuda_session, bag_of_words_model):
    from review_sentiment.scorer import Scorer

    texts = ["great wonderful film", "awful boring plot", "ok"]
    on_gpu, on_cpu = Scorer.load(bag_of_words_model, "cuda"), Scorer.load(bag_of_words_model, "cpu")
    assert on_gpu.provider == CUDA
    assert abs(on_gpu.logits(texts) - on_cpu.logits(texts)).max() < 1e-4


@pytest.mark.gpu
def test_tensorrt_session_builds_and_scores(cuda_session, bag_of_words_model, tmp_path, monkeypatch):
    from review_sentiment.scorer import Scorer

    if TRT not in ort.get_available_providers():
        skip_without_gpu("this onnxruntime-gpu has no TensorRT provider")
    monkeypatch.setenv("SENTIMENT_TENSORRT_CACHE", str(tmp_path))
    scorer = Scorer.load(bag_of_words_model, "tensorrt", max_batch=4)
    reference = Scorer.load(bag_of_words_model, "cpu")
    texts = ["great wonderful film", "awful boring plot", "ok", "great"]
    assert scorer.provider == TRT
    assert (scorer.logits(texts).argmax(1) == reference.logits(texts).argmax(1)).all()
    assert any(tmp_path.rglob("*")), "TensorRT wrote no engine cache"


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [(None, 64), ("max 100000\n", 64), ("200000 100000\n", 2), ("150000 100000", 2), ("50000 100000", 1)],
)
def test_cpus_are_bounded_by_a_cgroup_quota(tmp_path, monkeypatch, cpu_max, expected):
    """A container limited to 2 CPUs on a 64-core host runs 2 calls at once, not 64."""
    monkeypatch.setattr(ort_providers.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    if cpu_max is not None:
        (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
        (tmp_path / "sys/fs/cgroup/cpu.max").write_text(cpu_max)
    assert ort_providers.available_cpus(tmp_path) == expected


def test_batching_is_described_as_it_runs():
    assert ort_providers.Batching(rows=1).describe() == "1 review a call"
    assert (
        ort_providers.Batching(None, 512, 2).describe() == "up to 512 tokens a call, 2 calls at once on one thread each"
    )
    assert ort_providers.default_batching(CUDA, threads=8) == ort_providers.Batching(rows=32)


def test_threads_must_be_positive(bag_of_words_model):
    from review_sentiment.scorer import Scorer

    with pytest.raises(UserError, match="--threads must be 1 or more, not 0"):
        Scorer.load(bag_of_words_model, "cpu", threads=0)
